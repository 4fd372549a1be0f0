"""The simulated MyGeotab server's own state: databases, users, sessions, devices, rate windows.

Nothing here is shared with the portal; the MyAdmin part of the sandbox is told about
devices added here (sandbox.mygeotab.service) so `GetDeviceDatabaseNamesAsync` reports them.
"""

import secrets
from datetime import UTC, datetime

from django.db import models

MAX_DATE = datetime(2050, 1, 1, tzinfo=UTC)  # what MyGeotab forces activeTo to on Add [C G4]
MIN_DATE = datetime(1986, 1, 1, tzinfo=UTC)


def new_entity_id() -> str:
    # Opaque, short ids like the real server's ("b3C"); clients must never parse them.
    return "b" + secrets.token_hex(4)


def new_session_id() -> str:
    return secrets.token_urlsafe(24)


class SandboxDatabase(models.Model):
    name = models.CharField(max_length=120, unique=True)
    # What Authenticate returns as ``path``: "ThisServer" or the server that hosts the database.
    path = models.CharField(max_length=300, default="ThisServer")
    session_lifetime_seconds = models.PositiveIntegerField(default=14 * 24 * 3600)
    # Per (method, user, database), per minute [C G7 shape; numbers are the sandbox's choice].
    authenticate_per_minute = models.PositiveIntegerField(default=10)
    write_per_minute = models.PositiveIntegerField(default=100)
    read_per_minute = models.PositiveIntegerField(default=1000)

    def __str__(self):
        return self.name


class SandboxUser(models.Model):
    database = models.ForeignKey(SandboxDatabase, on_delete=models.CASCADE, related_name="users")
    username = models.CharField(max_length=254)
    password = models.CharField(max_length=128)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["database", "username"], name="sbx_myg_user_unique")]

    def __str__(self):
        return f"{self.username} @ {self.database}"


class SandboxSession(models.Model):
    session_id = models.CharField(max_length=64, unique=True, default=new_session_id)
    user = models.ForeignKey(SandboxUser, on_delete=models.CASCADE, related_name="sessions")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()


class SandboxAsset(models.Model):
    """A MyGeotab ``Device`` entity. A serial lives in one database only (MyAdmin's owner)."""

    entity_id = models.CharField(max_length=32, unique=True, default=new_entity_id)
    database = models.ForeignKey(SandboxDatabase, on_delete=models.CASCADE, related_name="assets")
    serial_number = models.CharField(max_length=12, unique=True)
    name = models.CharField(max_length=50)
    device_type = models.CharField(max_length=32)
    product_id = models.PositiveIntegerField(null=True, blank=True)
    groups = models.JSONField(default=list)
    comment = models.CharField(max_length=1024, blank=True)
    time_zone_id = models.CharField(max_length=64, default="UTC")
    vehicle_identification_number = models.CharField(max_length=17, blank=True)
    license_plate = models.CharField(max_length=20, blank=True)
    license_state = models.CharField(max_length=20, blank=True)
    active_from = models.DateTimeField(default=MIN_DATE)
    active_to = models.DateTimeField(default=MAX_DATE)
    version = models.PositiveIntegerField(default=1)

    def __str__(self):
        return f"{self.serial_number} in {self.database}"


class SandboxRateWindow(models.Model):
    """Calls counted per rule key and minute window (in the database: shared by every process)."""

    key = models.CharField(max_length=300)
    window = models.BigIntegerField()
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["key", "window"], name="sbx_myg_ratewindow_unique")]
