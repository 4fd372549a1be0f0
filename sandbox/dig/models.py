"""Tables of the simulated Data Intake Gateway. The sandbox never reads the portal's tables:
what it knows arrives over HTTP, like the real DIG."""

from django.db import models


class DigSettings(models.Model):
    """Run-time knobs of the simulator (one row; admin-editable, tests change it too)."""

    bearer_lifetime_seconds = models.PositiveIntegerField(default=24 * 3600)
    refresh_lifetime_seconds = models.PositiveIntegerField(default=30 * 24 * 3600)
    # Published limit: 5 requests per minute on each authentication endpoint.
    auth_requests_per_minute = models.PositiveIntegerField(default=5)
    max_records_per_post = models.PositiveIntegerField(default=5000)
    # The real byte limit is not published; 413 above this many bytes.
    max_body_bytes = models.PositiveIntegerField(default=16 * 1024 * 1024)
    # Well-formed records that DIG rejects later (surfaced through /invalidrecords):
    max_record_age_days = models.PositiveIntegerField(default=365)
    unassigned_serials = models.TextField(
        blank=True, help_text="Serials DIG treats as not assigned to a database (comma or newline separated)"
    )

    class Meta:
        verbose_name = verbose_name_plural = "DIG settings"

    @classmethod
    def current(cls) -> "DigSettings":
        obj = cls.objects.order_by("id").first()
        return obj or cls.objects.create()

    def unassigned(self) -> set[str]:
        return {s.strip() for s in self.unassigned_serials.replace(",", "\n").splitlines() if s.strip()}


class DigAccount(models.Model):
    """A MyAdmin user with the DIG-Access role."""

    username = models.CharField(max_length=120, unique=True)
    password = models.CharField(max_length=120)

    def __str__(self):
        return self.username


class DigToken(models.Model):
    account = models.ForeignKey(DigAccount, on_delete=models.CASCADE)
    bearer = models.CharField(max_length=80, unique=True)
    refresh = models.CharField(max_length=80, unique=True)
    created_at = models.DateTimeField()
    bearer_expires_at = models.DateTimeField()
    refresh_expires_at = models.DateTimeField()
    refreshed_at = models.DateTimeField(null=True, blank=True)  # refresh token used (single-use)
    revoked_at = models.DateTimeField(null=True, blank=True)  # bearer blocked


class DigAuthHit(models.Model):
    """Per-endpoint, per-minute counter for the authentication rate limit."""

    endpoint = models.CharField(max_length=32)
    window = models.BigIntegerField()
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = (models.UniqueConstraint(fields=["endpoint", "window"], name="dig_auth_hit_window"),)


class DigBatch(models.Model):
    """One accepted POST /records, stored as sent; processed asynchronously into records."""

    guid = models.CharField(max_length=36, unique=True)
    account = models.ForeignKey(DigAccount, on_delete=models.CASCADE)
    body = models.TextField()
    count = models.PositiveIntegerField()
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True, db_index=True)


class DigRecord(models.Model):
    """A record as DIG keeps it, one per (serial, type, DateTime): a repeat is not stored twice."""

    serial = models.CharField(max_length=32)
    record_type = models.CharField(max_length=40)
    recorded_at = models.DateTimeField()
    data = models.JSONField()
    first_batch = models.ForeignKey(DigBatch, null=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        constraints = (
            models.UniqueConstraint(fields=["serial", "record_type", "recorded_at"], name="dig_record_unique"),
        )


class DigInvalidRecord(models.Model):
    """A record DIG accepted and rejected later; the id is the /invalidrecords cursor."""

    account = models.ForeignKey(DigAccount, on_delete=models.CASCADE)
    base_record = models.JSONField()
    cause = models.CharField(max_length=300)
    created_at = models.DateTimeField(auto_now_add=True)
