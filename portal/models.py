"""Cross-cutting records: the vendor-call ledger, shared vendor sessions, liveness."""

from django.conf import settings
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


class Job(models.Model):
    """A piece of long work (provisioning N devices, a sheet import, an order sync, a replay)
    whose progress staff watch: counters are advanced atomically by any number of workers."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        PARTIAL = "partial", "Finished with failures"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    FINISHED = (Status.SUCCEEDED, Status.PARTIAL, Status.FAILED, Status.CANCELLED)

    kind = models.CharField(max_length=64, db_index=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    # Free-form outcome; "failures" holds [{"label", "url", "message"}] links to what failed.
    result = models.JSONField(default=dict, blank=True)
    # "app_label.Model:pk" of what the job works on (an order, an import run), when there is one.
    target = models.CharField(max_length=120, blank=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    request_id = models.CharField(max_length=64, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["status", "-id"], name="job_status_id"),
            models.Index(fields=["kind", "-id"], name="job_kind_id"),
            # The dashboard counts jobs finished in the last 24 hours.
            models.Index(fields=["finished_at"], name="job_finished"),
        ]

    def __str__(self):
        return f"{self.kind} #{self.pk}"

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED

    @property
    def percent(self) -> int:
        if not self.total:
            return 100 if self.is_finished else 0
        return min(100, int(100 * (self.done + self.failed) / self.total))

    @property
    def result_links(self) -> list[dict]:
        """``result["links"]``: [{"label", "url"}] to what the job produced (an import run, a
        sync run, the rows to look at)."""
        links = (self.result or {}).get("links") or []
        return [link for link in links if isinstance(link, dict) and link.get("url")]

    @property
    def result_summary(self) -> dict:
        return {k: v for k, v in (self.result or {}).items() if k != "links"}


class JobFailure(models.Model):
    """One item a job could not do, with a link to it: rows, so concurrent workers just insert."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="failures")
    label = models.CharField(max_length=200)
    url = models.CharField(max_length=500, blank=True)
    message = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return f"{self.label}: {self.message}"



class AuditEntry(models.Model):
    """Who changed what, when, with the values before and after (see portal.audit)."""

    class Action(models.TextChoices):
        CREATE = "create", "Created"
        UPDATE = "update", "Changed"
        DELETE = "delete", "Deleted"
        BULK_UPDATE = "bulk_update", "Changed in bulk"
        BULK_DELETE = "bulk_delete", "Deleted in bulk"
        ACTION = "action", "Action"

    content_type = models.ForeignKey("contenttypes.ContentType", on_delete=models.PROTECT, related_name="+")
    # Text, so one table serves integer and string primary keys alike; empty for bulk entries.
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=200, blank=True)
    action = models.CharField(max_length=16, choices=Action.choices)
    # What was done, in words, when it is more than a field edit ("provisioned", "shipped").
    message = models.CharField(max_length=300, blank=True)
    # {"field": [before, after]} for changes; the full snapshot on create/delete.
    changes = models.JSONField(default=dict, blank=True)
    # Bulk writes: the primary keys they touched (capped; object_count is exact).
    object_ids = models.JSONField(default=list, blank=True)
    object_count = models.PositiveIntegerField(default=1)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(max_length=150, blank=True)
    request_id = models.CharField(max_length=64, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = "audit entry"
        verbose_name_plural = "audit trail"
        indexes = [
            models.Index(fields=["content_type", "object_id", "-id"], name="audit_object"),
            models.Index(fields=["actor", "-id"], name="audit_actor"),
            models.Index(fields=["created_at"], name="audit_created"),
        ]

    def __str__(self):
        return f"{self.get_action_display()} {self.object_repr or self.content_type_id}"


class ApiToken(models.Model):
    """A named API token of one user. Only a digest of the key is stored: the key is shown once,
    when it is created. Revoked tokens stay listed (who had access, until when)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, help_text="What uses this token, e.g. “ERP sync”.")
    prefix = models.CharField(max_length=8, db_index=True, editable=False)
    key_digest = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-id"]
        verbose_name = "API token"

    def __str__(self):
        return f"{self.name} (pt_{self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class VendorCallHourly(models.Model):
    """Vendor calls counted per hour, system and outcome (portal.ledger_rollup): the dashboard's
    30-day error rates read these instead of scanning millions of ledger rows. Every rolled-up
    hour has a marker row (system "" / outcome "") so gaps and coverage are explicit."""

    hour = models.DateTimeField()
    system = models.CharField(max_length=32, blank=True)
    outcome = models.CharField(max_length=16, blank=True)
    calls = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-hour"]
        constraints = [
            models.UniqueConstraint(fields=["hour", "system", "outcome"], name="vendorcallhourly_unique"),
        ]

    def __str__(self):
        return f"{self.hour:%Y-%m-%d %H}:00 {self.system} {self.outcome} {self.calls}"
