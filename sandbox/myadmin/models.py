"""The simulated MyAdmin's own tables. They never reference the portal's tables."""

import uuid

from django.db import models


class SandboxAccount(models.Model):
    """A MyAdmin ERP account (``accountId`` / ``erpNo``)."""

    account_id = models.CharField(max_length=32, unique=True)
    currency_code = models.CharField(max_length=3, default="USD")

    class Meta:
        ordering = ["account_id"]

    def __str__(self):
        return self.account_id


class SandboxUser(models.Model):
    username = models.CharField(max_length=254, unique=True)
    # The sandbox is a test double; its demo password is a public default, kept as given.
    password = models.CharField(max_length=128)
    user_id = models.UUIDField(default=uuid.uuid4, unique=True)  # the ``apiKey``
    accounts = models.ManyToManyField(SandboxAccount, related_name="users", blank=True)

    def __str__(self):
        return self.username


class SandboxSession(models.Model):
    session_id = models.UUIDField(default=uuid.uuid4, unique=True)
    user = models.ForeignKey(SandboxUser, on_delete=models.CASCADE, related_name="sessions")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()

    def __str__(self):
        return f"{self.user} until {self.expires_at:%Y-%m-%d %H:%M}"


class SandboxDevice(models.Model):
    """A minted serial and its billing contract."""

    serial = models.CharField(max_length=12, unique=True)
    product_id = models.PositiveIntegerField()
    account = models.ForeignKey(SandboxAccount, on_delete=models.PROTECT, related_name="devices")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    comments = models.CharField(max_length=500, blank=True)
    promo_code = models.CharField(max_length=64, blank=True)
    group_id = models.CharField(max_length=64, blank=True)
    imei = models.CharField(max_length=20, blank=True)
    sim_number = models.CharField(max_length=22, blank=True)
    terminated_at = models.DateTimeField(null=True, blank=True)
    termination_reason_id = models.IntegerField(null=True, blank=True)
    termination_comments = models.CharField(max_length=500, blank=True)
    termination_pending = models.BooleanField(default=False)
    database_name = models.CharField(max_length=120, blank=True)
    shared_database_names = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return self.serial


class SandboxTerminationReason(models.Model):
    reason_id = models.IntegerField(unique=True)
    name = models.CharField(max_length=120)
    sort_id = models.IntegerField(default=0)

    class Meta:
        ordering = ["sort_id", "reason_id"]

    def __str__(self):
        return self.name


class SandboxRateWindow(models.Model):
    """Requests counted per caller (apiKey or IP) per one-minute window, for HTTP 429."""

    key = models.CharField(max_length=80)
    window = models.BigIntegerField()
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["key", "window"], name="sandbox_myadmin_rate_key_window")]
