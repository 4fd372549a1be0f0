"""The Navixy simulator's own tables: its users, sessions, model catalogue, plugins, groups,
activation codes and registered trackers. Nothing here is shared with the portal."""

from django.db import models


class SimUser(models.Model):
    login = models.CharField(max_length=254, unique=True)
    password = models.CharField(max_length=40)
    # Registration plugins this user may use (plugin/list is per user on the real platform).
    plugin_ids = models.JSONField(default=list)

    def __str__(self):
        return self.login


class SimSession(models.Model):
    """A session hash (from user/auth) or an API key; both are 32 hex characters."""

    class Kind(models.TextChoices):
        SESSION = "session", "Session"
        API_KEY = "api_key", "API key"

    user = models.ForeignKey(SimUser, on_delete=models.CASCADE, related_name="sessions")
    hash = models.CharField(max_length=32, unique=True)
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.SESSION)
    ended = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)


class SimModel(models.Model):
    navixy_id = models.PositiveIntegerField(unique=True)
    code = models.CharField(max_length=64, unique=True)
    vendor = models.CharField(max_length=64)
    name = models.CharField(max_length=120)
    type = models.CharField(max_length=16, default="vehicle")
    id_type = models.CharField(max_length=32)
    has_phone = models.BooleanField(default=True)
    has_apn_settings = models.BooleanField(default=True)
    register = models.BooleanField(default=True)

    class Meta:
        ordering = ["navixy_id"]


class SimPlugin(models.Model):
    plugin_id = models.PositiveIntegerField(unique=True)
    module = models.CharField(max_length=120)
    ui_module = models.CharField(max_length=120)
    filter_exclusion = models.BooleanField(default=True)
    filter_values = models.JSONField(default=list)
    activation_code_mandatory = models.BooleanField(default=False)
    mobile = models.BooleanField(default=False)

    class Meta:
        ordering = ["plugin_id"]


class SimGroup(models.Model):
    user = models.ForeignKey(SimUser, on_delete=models.CASCADE, related_name="groups")
    title = models.CharField(max_length=60)
    color = models.CharField(max_length=6)

    class Meta:
        ordering = ["id"]


class SimActivationCode(models.Model):
    code = models.CharField(max_length=20, unique=True)
    tariff_id = models.PositiveIntegerField(default=12163)
    activated = models.BooleanField(default=False)
    activation_date = models.DateTimeField(null=True, blank=True)
    device_id = models.PositiveIntegerField(default=0)  # the tracker it activated, 0 = none


class SimTracker(models.Model):
    user = models.ForeignKey(SimUser, on_delete=models.CASCADE, related_name="trackers")
    label = models.CharField(max_length=60)
    group_id = models.PositiveIntegerField(default=0)
    source_id = models.PositiveIntegerField(null=True, unique=True)
    device_id = models.CharField(max_length=64)
    model = models.CharField(max_length=64)
    phone = models.CharField(max_length=20, null=True, blank=True)
    blocked = models.BooleanField(default=False)
    tariff_id = models.PositiveIntegerField(default=12163)
    creation_date = models.DateField()
    tariff_end_date = models.DateField(null=True, blank=True)
    clone = models.BooleanField(default=False)
    corrupted = models.BooleanField(default=False)
    connected = models.BooleanField(default=False)
    apn_name = models.CharField(max_length=40, blank=True)
    apn_user = models.CharField(max_length=40, blank=True)
    last_retry_at = models.DateTimeField(null=True, blank=True)
    register_commands_sent = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["id"]
        constraints = [
            # "Two devices with the same ID can never be active on the platform" (224); the
            # database enforces it so concurrent registrations cannot both win.
            models.UniqueConstraint(
                fields=["device_id"], condition=models.Q(corrupted=False), name="sim_navixy_active_device_id"
            ),
            models.UniqueConstraint(
                fields=["phone"], condition=models.Q(corrupted=False, phone__isnull=False),
                name="sim_navixy_active_phone",
            ),
        ]
