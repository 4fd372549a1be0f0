"""The provisioning intent ledger (DESIGN §3 "No double billing").

Each MyAdmin provisioning call mints a billable serial and carries no idempotency key, so the
portal writes its intent first, commits, and only then calls. A request asks for ``quantity``
serials of one product on one account; it is worked one vendor call at a time, and the call in
progress is recorded on the row (``call_started_at`` / ``call_quantity``) before it is sent.
Whatever happens next, the row says exactly which call may have minted serials that the portal
has not stored yet: that is what the reconciler resolves.
"""

from django.conf import settings
from django.db import models


class ProvisioningRequest(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending (waiting for a worker)"
        IN_FLIGHT = "in_flight", "In flight (calling MyAdmin)"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed (nothing more will be minted)"
        UNKNOWN = "unknown", "Unknown outcome (reconciling)"
        NEEDS_STAFF = "needs_staff", "Needs staff (reconciler could not decide)"

    OPEN_STATUSES = (Status.PENDING, Status.IN_FLIGHT, Status.UNKNOWN)
    FINAL_STATUSES = (Status.SUCCEEDED, Status.FAILED)

    product_id = models.PositiveIntegerField()
    erp_no = models.CharField("partner account (ERP no.)", max_length=32, db_index=True)
    quantity = models.PositiveIntegerField(default=1)
    use_bulk = models.BooleanField(default=False, help_text="One ProvisionDevicesBulk call instead of one call per device")
    note = models.CharField(max_length=300, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)

    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    idempotency_key = models.CharField(max_length=128, null=True, blank=True, unique=True)
    # SHA-256 of the request body: the same key with a different body is a conflict (409).
    fingerprint = models.CharField(max_length=64, blank=True)

    # The vendor call in progress: set and committed BEFORE the call is sent, cleared in the
    # transaction that stores its serials. Non-null after a crash = "may have minted".
    call_started_at = models.DateTimeField(null=True, blank=True)
    call_quantity = models.PositiveIntegerField(default=0)
    calls_made = models.PositiveIntegerField(default=0)
    attempts = models.PositiveIntegerField(default=0, help_text="Not-executed failures retried so far")
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    reconcile_note = models.CharField(max_length=500, blank=True)
    minted_count = models.PositiveIntegerField(default=0)

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["status", "updated_at"], name="provreq_status_updated")]

    def __str__(self):
        return f"Provisioning #{self.pk}: {self.quantity} × {self.product_id} on {self.erp_no} ({self.status})"

    @property
    def marker(self) -> str:
        """Written into the MyAdmin contract comments of every serial this request minted,
        so the reconciler can tell its serials from anyone else's."""
        return f"portal-provisioning-{self.pk}"

    @property
    def remaining(self) -> int:
        return max(0, self.quantity - self.minted_count)

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN_STATUSES
