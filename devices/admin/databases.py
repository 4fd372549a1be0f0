"""Admin for customer MyGeotab databases, and the "add to a customer database" flow for devices.

Credentials (BILL): the password is write-only — the form never shows the stored value, and a
blank password field keeps it. Adding devices (FULFIL): from the device list, an action leads
to a confirmation page where staff pick the database; up to MAX_SYNC_ADDS devices are added
while they wait (with a per-device report), more are queued as background tasks.
"""

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponseRedirect
from django.template import engines
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from devices.models import CustomerDatabase, CustomerDatabaseAccount, Device
from portal.admin_kit import PortalAdminMixin
from portal.crypto import UndecryptableSecret, encryption_problem
from portal.roles import (
    BILL,
    FULFIL,
    RoleAwareAdminMixin,
    has_capability,
    require_capability,
)

_ADD_DEVICES_TEMPLATE = """{% extends "admin/base_site.html" %}
{% block content %}
<p>Add these {{ devices|length }} device(s) as assets of a customer's MyGeotab database.
Devices already in that database are attached (their MyGeotab id is recorded), not added twice.</p>
<ul>{% for d in devices|slice:":50" %}<li>{{ d.serial }} — account {{ d.erp_no }}
{% if d.database_name %}(MyAdmin: in {{ d.database_name }}){% endif %}</li>{% endfor %}
{% if devices|length > 50 %}<li>… and {{ devices|length|add:"-50" }} more</li>{% endif %}</ul>
{% if form.fields.database.queryset.exists %}
<form method="post">{% csrf_token %}
{{ form.as_p }}
<input type="hidden" name="ids" value="{{ ids }}">
<input type="submit" value="Add to the database">
<a href="{{ back_url }}">Cancel</a>
</form>
{% else %}
<p>No active customer database is linked to the accounts of these devices. A billing user can
link one under Customer databases (ERP numbers).</p><p><a href="{{ back_url }}">Back</a></p>
{% endif %}
{% endblock %}
"""


class AddDevicesForm(forms.Form):
    database = forms.ModelChoiceField(queryset=CustomerDatabase.objects.none(), label="Customer database")


def _parse_ids(raw: str) -> list[int]:
    ids = []
    for part in (raw or "").split(","):
        part = part.strip()
        if part.isdigit():
            ids.append(int(part))
    return ids[:10000]


# The Device admin lists this action (devices/admin/device.py).
@admin.action(description="Add to a customer's MyGeotab database…")
@require_capability(FULFIL)
def add_to_customer_database(modeladmin, request, queryset):
    ids = ",".join(str(pk) for pk in queryset.values_list("pk", flat=True)[:10000])
    return HttpResponseRedirect(f"{reverse('admin:devices_customerdatabase_add_devices')}?ids={ids}")


@admin.display(description="first data sent")
def first_data_sent(obj):
    """When the DIG forwarder first delivered a record for the device (billing starts then)."""
    feed = getattr(obj, "feed", None)  # ingestion's DeviceFeed, absent until data flowed
    return getattr(feed, "first_sent_at", None) or "—"


class CustomerDatabaseAccountInline(admin.TabularInline):
    model = CustomerDatabaseAccount
    extra = 1
    verbose_name = "linked partner account"
    verbose_name_plural = "linked partner accounts (ERP numbers whose devices may go to this database)"


class CustomerDatabaseForm(forms.ModelForm):
    password = forms.CharField(
        label="Service password", required=False, strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Stored encrypted. Leave blank to keep the current password.",
    )

    class Meta:
        model = CustomerDatabase
        fields = ("label", "server", "database", "username", "password", "default_groups", "active")

    def clean_password(self):
        value = self.cleaned_data.get("password")
        problem = encryption_problem()
        if problem:
            raise forms.ValidationError(f"The password cannot be stored: {problem}")
        if value:
            return value
        if isinstance(self.instance.password, UndecryptableSecret):
            raise forms.ValidationError(UndecryptableSecret.problem)
        if self.instance.pk:
            return self.instance.password  # keep the stored one
        raise forms.ValidationError("A password is required for a new database.")


@admin.register(CustomerDatabase)
class CustomerDatabaseAdmin(PortalAdminMixin, RoleAwareAdminMixin, admin.ModelAdmin):
    form = CustomerDatabaseForm
    list_display = ("__str__", "database", "server_display", "username", "active", "connection", "last_checked_at")
    list_filter = ("active", "last_check_ok")
    search_fields = ("database", "label", "accounts__erp_no")
    readonly_fields = ("last_checked_at", "last_check_ok", "last_check_message", "created_at", "updated_at")
    inlines = [CustomerDatabaseAccountInline]
    actions = ["test_connection"]

    @admin.display(description="server")
    def server_display(self, obj):
        return obj.server or "(portal default)"

    @admin.display(description="connection", boolean=True)
    def connection(self, obj):
        return obj.last_check_ok

    # Credentials are billing work (or a superuser's); everyone with a role may look.
    def has_add_permission(self, request):
        return has_capability(request.user, BILL)

    def has_change_permission(self, request, obj=None):
        return has_capability(request.user, BILL)

    def has_delete_permission(self, request, obj=None):
        return has_capability(request.user, BILL)

    def has_view_permission(self, request, obj=None):
        return has_capability(request.user, "view")

    def has_module_permission(self, request):
        return has_capability(request.user, "view")

    @admin.action(description="Test connection (sign in with the service account)")
    @require_capability(BILL)
    def test_connection(self, request, queryset):
        from devices.services.databases import customer_database_test_connection

        for database in queryset[:20]:
            ok, message = customer_database_test_connection(database=database, actor=request.user)
            self.message_user(request, f"{database}: {message}", level=messages.SUCCESS if ok else messages.ERROR)

    def get_urls(self):
        return [
            path("add-devices/", self.admin_site.admin_view(self.add_devices_view),
                 name="devices_customerdatabase_add_devices"),
            *super().get_urls(),
        ]

    def add_devices_view(self, request):
        from devices.services.databases import (
            MAX_SYNC_ADDS,
            AddOutcome,
            devices_add_to_database,
        )
        from devices.tasks.databases import device_add_to_database_task

        back_url = reverse("admin:devices_device_changelist")
        if not has_capability(request.user, FULFIL):
            self.message_user(request, "Your role does not allow this action.", level=messages.ERROR)
            return HttpResponseRedirect(back_url)
        ids = _parse_ids(request.POST.get("ids") if request.method == "POST" else request.GET.get("ids", ""))
        devices = list(Device.objects.filter(pk__in=ids).order_by("pk"))
        if not devices:
            self.message_user(request, "Select at least one device.", level=messages.WARNING)
            return HttpResponseRedirect(back_url)
        form = AddDevicesForm(request.POST or None)
        erp_nos = {d.erp_no for d in devices}
        form.fields["database"].queryset = CustomerDatabase.objects.filter(
            active=True, accounts__erp_no__in=erp_nos).distinct()
        if request.method == "POST" and form.is_valid():
            database = form.cleaned_data["database"]
            if len(devices) > MAX_SYNC_ADDS:
                for device in devices:
                    device_add_to_database_task.delay_on_commit(device.pk, database.pk, request.user.pk)
                self.message_user(request, f"{len(devices)} devices queued for '{database}'; "
                                           "their history shows each result.", level=messages.INFO)
                return HttpResponseRedirect(back_url)
            results = devices_add_to_database(devices=devices, database=database, actor=request.user)
            levels = {AddOutcome.ADDED: messages.SUCCESS, AddOutcome.ATTACHED: messages.SUCCESS,
                      AddOutcome.NEEDS_STAFF: messages.WARNING, AddOutcome.FAILED: messages.ERROR}
            for result in results:
                self.message_user(request, format_html("{}: {}", result.device.serial, result.message),
                                  level=levels[result.outcome])
            return HttpResponseRedirect(back_url)
        context = {
            **self.admin_site.each_context(request),
            "title": "Add devices to a customer's MyGeotab database",
            "devices": devices, "form": form, "ids": ",".join(str(d.pk) for d in devices), "back_url": back_url,
            "opts": self.model._meta,
        }
        template = engines["django"].from_string(_ADD_DEVICES_TEMPLATE)
        return TemplateResponse(request, template, context)
