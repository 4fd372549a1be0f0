"""Terminations in the admin: the list (by date, source, account, reason, status), manual
termination through MyAdmin (the "add" page asks for the device, a MyAdmin reason and comments),
cancel and reconcile actions. Everything that bills or stops billing needs the BILL capability."""

from django import forms
from django.contrib import admin, messages

from devices.models import Device, Termination
from devices.services.terminations import (
    TerminationError,
    device_terminate,
    termination_cancel,
    termination_reasons,
    termination_reconcile,
)
from portal.admin_confirm import confirm_action, confirm_post, is_confirmed
from portal.admin_kit import DateRangeFilter, PortalAdminMixin, text_filter
from portal.roles import BILL, RoleAwareAdminMixin, has_capability, require_capability


class ManualTerminationForm(forms.ModelForm):
    """Terminate a device's billing in MyAdmin. The reasons come from `GetTerminationReasons`."""

    device_serial = forms.CharField(label="Device serial", max_length=32)
    reason = forms.TypedChoiceField(label="Reason", coerce=int, choices=())
    comments = forms.CharField(required=False, max_length=500, widget=forms.Textarea(attrs={"rows": 3}))

    class Meta:
        model = Termination
        fields = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        try:
            self.fields["reason"].choices = [("", "---------")] + termination_reasons()
        except Exception as exc:  # noqa: BLE001 — a vendor outage must not break the page
            self.fields["reason"].choices = [("", "---------")]
            self.fields["reason"].help_text = f"MyAdmin reasons unavailable right now ({exc}); try again later."

    def clean_device_serial(self):
        serial = self.cleaned_data["device_serial"].strip().upper()
        device = Device.objects.filter(serial=serial).first()
        if device is None:
            raise forms.ValidationError(f"No device with serial {serial}.")
        if device.status == Device.Status.TERMINATED:
            raise forms.ValidationError(f"Device {serial} is already terminated.")
        live = Termination.objects.filter(serial=serial, status__in=Termination.LIVE_STATUSES).first()
        if live is not None:
            raise forms.ValidationError(f"Termination #{live.pk} of {serial} is already {live.get_status_display().lower()}.")
        self.device = device
        return serial


@admin.register(Termination)
class TerminationAdmin(PortalAdminMixin, RoleAwareAdminMixin, admin.ModelAdmin):
    list_display = ("serial", "device", "status", "source", "terminated_on", "reason_name", "account",
                    "actor", "import_run", "created_at")
    # Reasons and accounts are free text with many values: typed, not listed (a plain name would
    # SELECT DISTINCT over the terminations); dates by range (date_hierarchy selects DISTINCT dates).
    list_filter = ("status", "source", ("terminated_on", DateRangeFilter),
                   text_filter("reason_name", title="reason", lookup="iexact", parameter_name="reason"),
                   text_filter("account", title="account / ERP no.", placeholder="ERP no."))
    search_fields = ("=serial", "=account", "=imei")
    list_select_related = ("device", "actor", "import_run")
    show_full_result_count = False
    list_per_page = 100
    readonly_fields = ("device", "serial", "source", "status", "terminated_on", "reason_id", "reason_name",
                       "account", "imei", "comments", "previous_status", "error", "actor", "import_run",
                       "applied_at", "created_at", "updated_at")
    actions = ["cancel_terminations", "reconcile_terminations"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = ManualTerminationForm
            kwargs["fields"] = ["device_serial", "reason", "comments"]
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return [(None, {"fields": ["device_serial", "reason", "comments"],
                            "description": "Terminates the device's billing in MyAdmin (TerminateDeviceBilling)."})]
        return super().get_fieldsets(request, obj)

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else ()

    def has_add_permission(self, request):
        return has_capability(request.user, BILL) and super().has_add_permission(request)

    def add_view(self, request, form_url="", extra_context=None):
        """A valid manual termination is confirmed first (it stops the device's billing in
        MyAdmin); the confirmation posts the same fields back and only then is MyAdmin called."""
        if request.method == "POST" and not is_confirmed(request) and self.has_add_permission(request):
            form = ManualTerminationForm(request.POST)
            if form.is_valid():
                device = form.device
                reason = dict(form.fields["reason"].choices).get(form.cleaned_data["reason"], "")
                return confirm_post(
                    request, title="Terminate device billing", count=1, opts=self.model._meta, objects=[device],
                    noun=("device", "devices"),
                    effect=f"terminate the billing of device {device.serial} in MyAdmin (TerminateDeviceBilling, "
                           f"reason: {reason}): Geotab stops billing it, the portal stops accepting its data and "
                           "flags its tracker and open order items",
                    cancel_url=request.get_full_path())
        return super().add_view(request, form_url, extra_context)

    def has_change_permission(self, request, obj=None):
        # Read-only record: changes happen only through the actions (services).
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        try:
            termination = device_terminate(device=form.device, reason_id=form.cleaned_data["reason"],
                                           comments=form.cleaned_data.get("comments", ""), actor=request.user)
        except TerminationError as exc:
            self.message_user(request, str(exc), level=messages.ERROR)
            termination = Termination.objects.filter(serial=form.device.serial).order_by("-pk").first()
            if termination is None:
                raise
        obj.__dict__.update({k: v for k, v in termination.__dict__.items() if not k.startswith("_")})
        if termination.status == Termination.Status.FAILED:
            self.message_user(request, termination.error, level=messages.ERROR)
        elif termination.status == Termination.Status.UNKNOWN_OUTCOME:
            self.message_user(request, f"MyAdmin's answer was lost: {termination.error}", level=messages.WARNING)

    def log_addition(self, request, obj, message):
        return super().log_addition(request, obj, message) if obj.pk else None

    @admin.action(description="Cancel termination in MyAdmin (portal terminations only)")
    @require_capability(BILL)
    def cancel_terminations(self, request, queryset):
        # Cancelling puts the devices back on billing: staff confirm with the count first.
        page = confirm_action(request, queryset, title="Cancel terminations", count=min(queryset.count(), 100),
                              effect="cancel {count} termination(s) in MyAdmin (CancelDeviceTerminationAsync): "
                                     "Geotab bills those devices again and the portal takes their data again",
                              action_name="cancel_terminations", noun=("termination", "terminations"))
        if page is not None:
            return page
        for termination in queryset[:100]:
            try:
                termination_cancel(termination=termination, actor=request.user)
            except TerminationError as exc:
                self.message_user(request, f"{termination.serial}: {exc}", level=messages.ERROR)
            else:
                self.message_user(request, f"{termination.serial}: termination cancelled.")

    @admin.action(description="Reconcile with MyAdmin (unknown outcomes)")
    @require_capability(BILL)
    def reconcile_terminations(self, request, queryset):
        for termination in queryset.filter(status__in=[Termination.Status.PENDING,
                                                       Termination.Status.UNKNOWN_OUTCOME])[:100]:
            result = termination_reconcile(termination=termination)
            self.message_user(request, f"{result.serial}: {result.get_status_display()}"
                                       f"{' — ' + result.error if result.error else ''}")
