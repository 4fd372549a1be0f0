"""Device records on their way to the Data Intake Gateway: the outbox, the per-device queue
clocks and feed stats, the forwarder's shared state and the intake idempotency keys."""

from django.conf import settings
from django.db import models
from django.db.models import Q


class DeviceRecord(models.Model):
    """One accepted device record (the outbox row). Durable before the intake API answers;
    forwarded at least once; unique per (serial, type, DateTime) so a repeat is stored once."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued for DIG"
        HELD = "held", "Held (not sent, not dropped)"
        SENT = "sent", "Sent to DIG"
        REJECTED = "rejected", "Rejected by DIG"

    class HoldReason(models.TextChoices):
        NOT_READY = "not_ready", "Device not assigned to a database yet"
        TERMINATED = "terminated", "Device terminated"
        STAFF = "staff", "Held by staff"

    device = models.ForeignKey("devices.Device", on_delete=models.PROTECT, related_name="records", db_index=False)
    serial = models.CharField(max_length=12)
    record_type = models.CharField(max_length=32)
    recorded_at = models.DateTimeField(help_text="The record's own DateTime (UTC)")
    # The record exactly as it will be sent (DIG's format, DateTime normalised to UTC "Z").
    payload = models.TextField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    hold_reason = models.CharField(max_length=200, blank=True)
    cause = models.CharField("rejection cause", max_length=300, blank=True)
    # Fair queueing: a per-device virtual clock (ms) so one device's backlog cannot starve others.
    fair_key = models.BigIntegerField()
    received_at = models.DateTimeField()
    # When the row may next be claimed: after a backoff, or after a forwarder's lease lapses
    # (a worker killed mid-batch leaves its rows leased; they become claimable again).
    available_at = models.DateTimeField()
    attempts = models.PositiveIntegerField(default=0)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = (
            models.UniqueConstraint(fields=["serial", "record_type", "recorded_at"], name="devicerecord_dedup"),
        )
        # Few and partial indexes: every forwarded record is updated twice (lease, then sent), and
        # each index a new row version must enter costs forwarding throughput. Sent rows enter only
        # the primary key, the dedup key and the retention index. The claim must walk the queue
        # index in order (LIMIT 5000), so no other index has the "queued" predicate.
        indexes = (
            models.Index(fields=["fair_key", "id"], condition=Q(status="queued"), name="devicerecord_queue"),
            models.Index(fields=["device", "status"], condition=Q(status__in=["queued", "held", "rejected"]),
                         name="devicerecord_device_open"),
            models.Index(fields=["sent_at"], condition=Q(status="sent"), name="devicerecord_sent"),
            models.Index(fields=["status", "cause"], condition=Q(status="rejected"), name="devicerecord_rejected"),
        )

    def __str__(self):
        return f"{self.serial} {self.record_type} {self.recorded_at:%Y-%m-%d %H:%M:%S}"


class DeviceQueueClock(models.Model):
    """A device's virtual clock in the fair forwarding queue: intake advances it by a fixed cost
    per record and gives each record its place (``DeviceRecord.fair_key``). Only intake writes
    it. It has a table of its own, apart from the forwarder's per-device stats (DeviceFeed), so
    an intake and a settlement never wait for each other's row locks: when both lived in one row,
    50 concurrent intakes and the forwarders queued behind each other's locks (p95 15 s a batch
    in the load proof)."""

    device = models.OneToOneField("devices.Device", on_delete=models.CASCADE, primary_key=True, related_name="+")
    fair_clock = models.BigIntegerField(default=0)

    def __str__(self):
        return f"queue clock of {self.device_id}"


class DeviceFeed(models.Model):
    """Per-device data-feed state: when billing started (first record sent), volumes, lag.
    Created by intake with a device's first record; updated by the forwarder only."""

    device = models.OneToOneField("devices.Device", on_delete=models.CASCADE, primary_key=True, related_name="feed")
    first_sent_at = models.DateTimeField("first record sent (billing start)", null=True, blank=True)
    last_sent_at = models.DateTimeField(null=True, blank=True)
    last_record_at = models.DateTimeField("last record time", null=True, blank=True)
    records_sent = models.BigIntegerField(default=0)
    records_rejected = models.BigIntegerField(default=0)
    last_lag_ms = models.BigIntegerField("intake-to-delivery lag of the last batch (ms)", null=True, blank=True)

    def __str__(self):
        return f"feed of {self.device_id}"


class ForwarderState(models.Model):
    """Shared state of the DIG forwarder and feedback poller (one row)."""

    paused_until = models.DateTimeField(null=True, blank=True)
    pause_reason = models.CharField(max_length=300, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    invalid_cursor = models.BigIntegerField(null=True, blank=True)
    invalid_polled_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"forwarder paused until {self.paused_until}" if self.paused_until else "forwarder running"

    @classmethod
    def current(cls) -> "ForwarderState":
        obj, _ = cls.objects.get_or_create(pk=1)
        return obj


class RecordIntakeKey(models.Model):
    """An Idempotency-Key seen on POST /records: a retried POST replays the stored answer."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField(default=202)
    response = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = (models.UniqueConstraint(fields=["user", "key"], name="recordintakekey_unique"),)

    def __str__(self):
        return f"{self.user_id}:{self.key}"

