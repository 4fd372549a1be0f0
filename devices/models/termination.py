"""Termination of a device's billing: from the daily termination sheet, by staff in the portal
(MyAdmin `TerminateDeviceBilling`), or found by reconciliation with MyAdmin.

One row per termination. A serial is terminated at most once while a termination of it is live
(pending, applied, unmatched or of unknown outcome): a database constraint, not a check in
Python, so two imports or two clicks racing each other cannot terminate a device twice.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q


class Termination(models.Model):
    class Source(models.TextChoices):
        DAILY_SHEET = "daily_sheet", "Daily termination sheet"
        MANUAL = "manual", "Manual (portal)"
        RECONCILED = "reconciled", "Reconciled from MyAdmin"

    class Status(models.TextChoices):
        # Manual: the intent is committed, the MyAdmin call not yet answered.
        PENDING = "pending", "Pending (call in progress)"
        APPLIED = "applied", "Applied"
        # The MyAdmin call may have executed (timeout, 5xx): reconciliation decides, never a retry.
        UNKNOWN_OUTCOME = "unknown_outcome", "Unknown outcome (reconciling)"
        # A sheet row for a serial the portal does not know: kept so it applies if the device appears.
        UNMATCHED = "unmatched", "Unknown serial (waiting for the device)"
        FAILED = "failed", "Failed (MyAdmin refused)"
        CANCELLED = "cancelled", "Cancelled"

    LIVE_STATUSES = (Status.PENDING, Status.APPLIED, Status.UNKNOWN_OUTCOME, Status.UNMATCHED)

    device = models.ForeignKey(
        "devices.Device", null=True, blank=True, on_delete=models.PROTECT, related_name="terminations"
    )
    # Normalised serial, kept even when no Device matches (the sheet may name devices we never saw).
    serial = models.CharField(max_length=32)
    source = models.CharField(max_length=16, choices=Source.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    terminated_on = models.DateField(null=True, blank=True)
    reason_id = models.IntegerField(null=True, blank=True)
    reason_name = models.CharField(max_length=200, blank=True)
    account = models.CharField("account / ERP no.", max_length=64, blank=True)
    imei = models.CharField("IMEI", max_length=32, blank=True)
    comments = models.CharField(max_length=500, blank=True)
    # The device status before termination: a cancelled manual termination restores it.
    previous_status = models.CharField(max_length=16, blank=True)
    error = models.CharField(max_length=500, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    import_run = models.ForeignKey(
        "ingestion.TerminationImportRun", null=True, blank=True, on_delete=models.SET_NULL,
        related_name="terminations",
    )
    applied_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["serial"],
                condition=Q(status__in=["pending", "applied", "unknown_outcome", "unmatched"]),
                name="termination_one_live_per_serial",
            ),
        ]
        indexes = [
            models.Index(fields=["terminated_on", "-id"], name="termination_date_id"),
            # Applied is what nearly every row is and ends as: the status filter and the services
            # look for the others (pending, unknown outcome, unmatched, failed, cancelled), and
            # indexing only those spares each applied row an index entry.
            models.Index(fields=["status", "-id"], name="termination_open_status_id", condition=~Q(status="applied")),
            models.Index(fields=["account", "-id"], name="termination_account_id"),
            # Exact lookups only: no LIKE-pattern twin (db_index=True would add one on PostgreSQL).
            models.Index(fields=["serial"], name="termination_serial"),
        ]

    def __str__(self):
        return f"{self.serial} ({self.get_status_display()})"
