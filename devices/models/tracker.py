"""Navixy trackers registered by the portal, their history, and the Navixy catalogues
(models, plugins, groups) cached so that input is validated before any call."""

from django.conf import settings
from django.db import models

from portal.crypto import EncryptedTextField

MOBILE_MODEL_PREFIXES = ("navixymobile", "mobile_unknown", "iosnavixytracker")


class NavixyModel(models.Model):
    """A device model from `tracker/list_models`; `code` is what `tracker/register` takes."""

    code = models.CharField(max_length=64, unique=True)
    navixy_id = models.PositiveIntegerField(null=True, blank=True)
    name = models.CharField(max_length=120)
    vendor = models.CharField(max_length=64, blank=True)
    type = models.CharField(max_length=16, blank=True)
    id_type = models.CharField(max_length=32, help_text="imei, meid, id,N, ascii,MIN,MAX, or N,M (generated)")
    has_phone = models.BooleanField(default=False)
    has_apn_settings = models.BooleanField(default=False)
    registrable = models.BooleanField(default=True)
    present = models.BooleanField(default=True, help_text="Still listed by Navixy at the last refresh")
    refreshed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["vendor", "name"]
        verbose_name = "Navixy model"

    def __str__(self):
        return f"{self.name} ({self.code})"

    @property
    def is_mobile(self) -> bool:
        return self.code.startswith(MOBILE_MODEL_PREFIXES)

    @property
    def generates_id(self) -> bool:
        """`N,M` id types: the platform assigns the device id; none is sent."""
        parts = self.id_type.split(",")
        return len(parts) == 2 and all(p.isdigit() for p in parts)


class NavixyPlugin(models.Model):
    """A registration plugin the Navixy user may use (`plugin/list`)."""

    plugin_id = models.PositiveIntegerField(unique=True)
    type = models.CharField(max_length=32, blank=True)
    module = models.CharField(max_length=200, blank=True)
    filter_exclusion = models.BooleanField(default=True)
    filter_values = models.JSONField(default=list, blank=True)
    available = models.BooleanField(default=True, help_text="Listed for the user at the last refresh")
    refreshed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["plugin_id"]
        verbose_name = "Navixy plugin"

    def __str__(self):
        return f"{self.plugin_id} {self.module}".strip()


class NavixyGroup(models.Model):
    """A tracker group (`tracker/group/list`). Group 0, the implicit default, is not stored:
    a tracker with no group is registered with group_id 0."""

    navixy_id = models.PositiveIntegerField(unique=True)
    title = models.CharField(max_length=60)
    color = models.CharField(max_length=6, blank=True)
    present = models.BooleanField(default=True)
    refreshed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["title"]
        verbose_name = "Navixy group"

    def __str__(self):
        return f"{self.title} (#{self.navixy_id})"


class Tracker(models.Model):
    """One unit to be registered on Navixy, and what Navixy made of it."""

    class Plugin(models.IntegerChoices):
        DEVICE = 44, "44 — GPS device (activation code optional)"
        DEVICE_CODE = 37, "37 — GPS device (activation code required)"
        MOBILE = 35, "35 — X-GPS mobile app (activation code optional)"
        MOBILE_CODE = 68, "68 — X-GPS mobile app (activation code required)"

    class State(models.TextChoices):
        DRAFT = "draft", "Draft"
        REGISTERING = "registering", "Registering"
        REGISTERED = "registered", "Registered"
        FAILED = "failed", "Failed"
        NEEDS_ATTENTION = "needs_attention", "Needs attention"

    TRANSITIONS = {
        State.DRAFT: {State.REGISTERING, State.NEEDS_ATTENTION},
        State.REGISTERING: {State.REGISTERED, State.FAILED, State.NEEDS_ATTENTION},
        State.FAILED: {State.REGISTERING, State.DRAFT, State.NEEDS_ATTENTION},
        State.REGISTERED: {State.NEEDS_ATTENTION},
        State.NEEDS_ATTENTION: {State.REGISTERING, State.REGISTERED, State.FAILED, State.DRAFT},
    }
    DEVICE_PLUGINS = (44, 37)
    MOBILE_PLUGINS = (35, 68)
    CODE_REQUIRED_PLUGINS = (37, 68)

    label = models.CharField(max_length=60)
    group = models.ForeignKey(
        NavixyGroup, null=True, blank=True, on_delete=models.PROTECT, related_name="trackers",
        help_text="Empty = Navixy's default group (0)",
    )
    plugin_id = models.PositiveSmallIntegerField("plugin", choices=Plugin.choices)
    model_code = models.CharField("model", max_length=64)
    phone = models.CharField(max_length=15, blank=True, help_text="International format without '+'")
    # Null rather than blank so that the unique constraint ignores the platform-assigned case
    # until Navixy answers.
    device_id = models.CharField("device ID", max_length=64, null=True, blank=True, unique=True)
    apn_name = models.CharField("APN name", max_length=40, blank=True)
    apn_user = models.CharField("APN user", max_length=40, blank=True)
    apn_password = EncryptedTextField("APN password", blank=True)
    # Kept (encrypted) only until Navixy consumes it; write-only everywhere.
    activation_code = EncryptedTextField(blank=True)
    activation_code_used_at = models.DateTimeField(null=True, blank=True)
    notification_email = models.EmailField(blank=True)
    notification_phone = models.CharField(max_length=15, blank=True)

    state = models.CharField(max_length=16, choices=State.choices, default=State.DRAFT)
    state_message = models.CharField(max_length=500, blank=True)
    last_error_code = models.IntegerField(null=True, blank=True)
    field_errors = models.JSONField(default=dict, blank=True)

    # The intent ledger: set (and committed) just before tracker/register is sent, cleared when
    # the outcome is known. Found set later → the call may have executed: reconcile first.
    register_call_started_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    submitted_at = models.DateTimeField(null=True, blank=True)

    navixy_tracker_id = models.PositiveIntegerField("Navixy tracker id", null=True, blank=True, unique=True)
    source_id = models.PositiveIntegerField("source.id", null=True, blank=True)
    source_blocked = models.BooleanField("blocked", default=False)
    tariff_id = models.PositiveIntegerField(null=True, blank=True)
    creation_date = models.DateField(null=True, blank=True)
    tariff_end_date = models.DateField(null=True, blank=True)
    registered_at = models.DateTimeField(null=True, blank=True)
    refreshed_at = models.DateTimeField(null=True, blank=True)

    portal_device = models.ForeignKey(
        "devices.Device", null=True, blank=True, on_delete=models.SET_NULL, related_name="trackers",
        help_text="The portal device with the same IMEI, where there is one",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["state", "-id"], name="tracker_state_id"),
            models.Index(fields=["plugin_id", "-id"], name="tracker_plugin_id"),
            models.Index(fields=["model_code", "-id"], name="tracker_model_id"),
        ]

    def __str__(self):
        return f"{self.label} ({self.device_id or 'mobile app'})"

    @property
    def is_mobile(self) -> bool:
        return self.plugin_id in self.MOBILE_PLUGINS

    @property
    def group_navixy_id(self) -> int:
        return self.group.navixy_id if self.group_id else 0


class TrackerEvent(models.Model):
    """History of a tracker: state changes, vendor outcomes, staff actions."""

    tracker = models.ForeignKey(Tracker, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=32)
    from_state = models.CharField(max_length=16, blank=True)
    to_state = models.CharField(max_length=16, blank=True)
    message = models.CharField(max_length=500, blank=True)
    data = models.JSONField(default=dict, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    request_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.tracker_id} {self.kind} {self.from_state}->{self.to_state}"
