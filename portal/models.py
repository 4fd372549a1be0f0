"""Cross-cutting records: the vendor-call ledger, shared vendor sessions, liveness."""

from django.db import models


class VendorCall(models.Model):
    """One outbound call to a vendor API: what staff and the reconcilers read."""

    class Outcome(models.TextChoices):
        OK = "ok", "OK"
        NOT_EXECUTED = "not_executed", "Not executed (safe to retry)"
        REJECTED = "rejected", "Rejected by the vendor"
        UNKNOWN = "unknown", "Unknown (may have executed)"

    system = models.CharField(max_length=32, db_index=True)
    method = models.CharField(max_length=64)
    url = models.CharField(max_length=500, blank=True)
    # "app_label.Model:pk" of the object the call was made for, e.g. "devices.Device:42".
    target = models.CharField(max_length=120, blank=True, db_index=True)
    request_digest = models.CharField(max_length=64, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, db_index=True)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error_name = models.CharField(max_length=120, blank=True)
    error_message = models.CharField(max_length=500, blank=True)
    response_summary = models.CharField(max_length=500, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    attempt = models.PositiveSmallIntegerField(default=1)
    request_id = models.CharField(max_length=64, blank=True, db_index=True)
    started_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [
            models.Index(fields=["system", "-started_at"], name="vendorcall_system_time"),
            models.Index(fields=["outcome", "-started_at"], name="vendorcall_outcome_time"),
        ]

    def __str__(self):
        return f"{self.system}.{self.method} {self.outcome} @ {self.started_at:%Y-%m-%d %H:%M:%S}"


class VendorToken(models.Model):
    """A vendor session or token pair shared by every worker (one row per credential)."""

    key = models.CharField(max_length=120, unique=True)
    value = models.JSONField(default=dict)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return self.key


class Heartbeat(models.Model):
    """Written by a beat-scheduled task executed on a worker: proves both are alive."""

    name = models.CharField(max_length=64, unique=True)
    beat_at = models.DateTimeField()
    worker = models.CharField(max_length=200, blank=True)

    def __str__(self):
        return f"{self.name} @ {self.beat_at}"
