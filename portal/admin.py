from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import NoReverseMatch, path, reverse
from django.utils.html import format_html

from portal.admin_kit import ScalableAdminMixin, choices_filter
from portal.auth import (
    PortalAdminAuthenticationForm,
    api_token_create,
    api_token_revoke,
)
from portal.exports import ExportMixin
from portal.jobs import job_progress
from portal.models import ApiToken, AuditEntry, Heartbeat, Job, VendorCall
from portal.roles import VIEW, RoleAwareAdminMixin, has_capability, require_capability
from portal.vendor_status import vendor_call_next_step

# The admin login form says plainly when sign-in is locked after repeated failures.
admin.site.login_form = PortalAdminAuthenticationForm
admin.site.site_header = "Integrator Portal"
admin.site.site_title = "Integrator Portal"
admin.site.index_title = "Dashboard"

VENDOR_SYSTEMS = [
    ("myadmin", "MyAdmin"),
    ("myadmin_shipping", "MyAdmin shipping"),
    ("mygeotab", "MyGeotab"),
    ("dig", "DIG"),
    ("navixy", "Navixy"),
]


class ReadOnlyAdmin(RoleAwareAdminMixin, admin.ModelAdmin):
    """Records nobody edits: the server refuses changes whatever the user's permissions."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(VendorCall)
class VendorCallAdmin(ExportMixin, ScalableAdminMixin, ReadOnlyAdmin):
    list_display = ("started_at", "system", "method", "outcome", "http_status", "error_name",
                    "duration_ms", "attempt", "target")
    # A fixed list of systems: a plain "system" filter would SELECT DISTINCT over the ledger.
    list_filter = (choices_filter("system", VENDOR_SYSTEMS), "outcome")
    search_fields = ("=target", "=request_id", "error_name", "method")
    list_per_page = 50
    readonly_fields = ("next_step", "same_request")
    export_fields = ("started_at", "system", "method", "outcome", "http_status", "error_name",
                     "error_message", "duration_ms", "attempt", "target", "request_id", "url")

    @admin.display(description="What the portal does next")
    def next_step(self, obj):
        return vendor_call_next_step(obj)

    @admin.display(description="Same request")
    def same_request(self, obj):
        if not obj.request_id or obj.request_id == "-":
            return "—"
        rid = obj.request_id
        return format_html(
            '<a href="{}?request_id={}">all its vendor calls</a> · <a href="{}?request_id={}">audit entries</a>'
            ' · <a href="{}?q={}">jobs</a>',
            reverse("admin:portal_vendorcall_changelist"), rid, reverse("admin:portal_auditentry_changelist"), rid,
            reverse("admin:portal_job_changelist"), rid,
        )


@admin.register(Heartbeat)
class HeartbeatAdmin(ReadOnlyAdmin):
    list_display = ("name", "beat_at", "worker")


@admin.register(Job)
class JobAdmin(ScalableAdminMixin, ReadOnlyAdmin):
    list_display = ("id", "kind", "status", "progress", "failed", "actor", "created_at", "finished_at")
    list_filter = ("status", choices_filter("kind", [
        ("provisioning", "Provisioning"), ("tracker_registration", "Tracker registration"),
        ("termination_import", "Termination sheet import"), ("order_sync", "Order sync"),
        ("replay", "Replay"),
    ]))
    list_select_related = ("actor",)
    search_fields = ("=request_id", "=target")
    change_form_template = "admin/portal/job/change_form.html"
    # Status, counters and result are in the live progress box above these fields.
    fields = ("kind", "target_link", "actor", "request_id", "created_at", "related")
    readonly_fields = fields

    @admin.display(description="Works on")
    def target_link(self, obj):
        """``target`` ("app_label.Model:pk") as a link to that object's page, where it has one."""
        from portal.jobs import admin_url

        label, _, pk = (obj.target or "").partition(":")
        url = admin_url(label, pk) if label and pk else ""
        if not url:
            return obj.target or "—"
        return format_html('<a href="{}">{}</a>', url, obj.target)

    @admin.display(description="Progress")
    def progress(self, obj):
        return f"{obj.done + obj.failed}/{obj.total} ({obj.percent}%)"

    @admin.display(description="Caused by the same request")
    def related(self, obj):
        if not obj.request_id:
            return "—"
        calls = reverse("admin:portal_vendorcall_changelist") + f"?request_id={obj.request_id}"
        audit = reverse("admin:portal_auditentry_changelist") + f"?request_id={obj.request_id}"
        return format_html('<a href="{}">vendor calls</a> · <a href="{}">audit entries</a>', calls, audit)

    def get_urls(self):
        return [
            path("<int:job_id>/progress/", self.admin_site.admin_view(self.progress_view),
                 name="portal_job_progress"),
        ] + super().get_urls()

    def progress_view(self, request, job_id: int):
        if not self.has_view_permission(request):
            raise PermissionDenied
        job = get_object_or_404(Job, pk=job_id)
        return JsonResponse(job_progress(job=job))


class ContentTypeFilter(admin.SimpleListFilter):
    """Models that have audit entries, listed from the content types table (no DISTINCT scan)."""

    title = "model"
    parameter_name = "content_type"

    def lookups(self, request, model_admin):
        from django.contrib.contenttypes.models import ContentType

        keep = ("portal", "devices", "orders", "ingestion", "auth")
        return [(str(ct.pk), f"{ct.app_label}.{ct.model}") for ct in
                ContentType.objects.filter(app_label__in=keep).order_by("app_label", "model")]

    def queryset(self, request, queryset):
        return queryset.filter(content_type_id=self.value()) if self.value() else queryset


@admin.register(AuditEntry)
class AuditEntryAdmin(ExportMixin, ScalableAdminMixin, ReadOnlyAdmin):
    list_display = ("created_at", "actor_name", "action", "object_link", "summary", "request_link")
    list_filter = ("actor", ContentTypeFilter, "action")
    search_fields = ("=request_id", "=object_id", "object_repr", "actor_name")
    list_select_related = ("content_type",)
    list_per_page = 100
    readonly_fields = ("created_at", "actor_name", "action", "content_type", "object_id", "object_repr",
                       "message", "changes", "object_count", "object_ids", "request_id")
    export_fields = ("created_at", "actor_name", "action", "content_type__app_label", "content_type__model",
                     "object_id", "object_repr", "message", "changes", "object_count", "request_id")

    @admin.display(description="Object")
    def object_link(self, entry):
        ct = entry.content_type
        if entry.object_id and entry.action not in (AuditEntry.Action.DELETE, AuditEntry.Action.BULK_DELETE):
            try:
                url = reverse(f"admin:{ct.app_label}_{ct.model}_history", args=[entry.object_id])
            except NoReverseMatch:  # the model has no admin page
                return f"{ct.app_label}.{ct.model} {entry.object_repr}"
            return format_html('<a href="{}">{}.{} {}</a>', url, ct.app_label, ct.model, entry.object_repr)
        return f"{ct.app_label}.{ct.model} {entry.object_repr}"

    @admin.display(description="Changes")
    def summary(self, entry):
        text = entry.message or ", ".join(list(entry.changes or {})[:6])
        return text[:120]

    @admin.display(description="Request")
    def request_link(self, entry):
        if not entry.request_id:
            return "—"
        url = reverse("admin:portal_vendorcall_changelist") + f"?request_id={entry.request_id}"
        return format_html('<a href="{}" title="vendor calls of this request">{}</a>', url, entry.request_id[:12])


@admin.register(ApiToken)
class ApiTokenAdmin(RoleAwareAdminMixin, admin.ModelAdmin):
    """Staff create a named token (its key is shown once), see when each was last used, and
    revoke it. Users manage their own tokens; superusers see everyone's."""

    list_display = ("name", "user", "prefix", "created_at", "last_used_at", "state")
    list_filter = ("user",)
    list_select_related = ("user",)
    fields = ("name", "user")
    actions = ["revoke"]

    @admin.display(description="State")
    def state(self, obj):
        return "active" if obj.is_active else f"revoked {obj.revoked_at:%Y-%m-%d %H:%M}"

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        return qs if request.user.is_superuser else qs.filter(user=request.user)

    def has_view_permission(self, request, obj=None):
        return has_capability(request.user, VIEW) and (obj is None or request.user.is_superuser or obj.user_id == request.user.pk)

    def has_module_permission(self, request):
        return has_capability(request.user, VIEW)

    def has_add_permission(self, request):
        return has_capability(request.user, VIEW)

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # revoke instead: the row stays as a record of who had access

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        if not request.user.is_superuser and "user" in form.base_fields:
            form.base_fields["user"].queryset = form.base_fields["user"].queryset.filter(pk=request.user.pk)
            form.base_fields["user"].initial = request.user.pk
        return form

    def save_model(self, request, obj, form, change):
        if not request.user.is_superuser and obj.user_id != request.user.pk:
            raise PermissionDenied
        try:
            token, key = api_token_create(user=obj.user, name=obj.name)
        except ValidationError as exc:
            self.message_user(request, "; ".join(exc.messages), level=messages.ERROR)
            return
        obj.pk, obj.prefix, obj.key_digest, obj.created_at = token.pk, token.prefix, token.key_digest, token.created_at
        self.message_user(
            request,
            format_html("Token “{}” created. Copy the key now, it is not shown again: <code id=\"api-token-key\">{}</code>",
                        token.name, key),
            level=messages.WARNING,
        )

    @admin.action(description="Revoke selected tokens")
    @require_capability(VIEW)
    def revoke(self, request, queryset):
        n = api_token_revoke(token_ids=list(queryset.values_list("pk", flat=True)), actor=request.user)
        self.message_user(request, f"{n} token(s) revoked.")


class ActionsNeedChangePermission:
    """Third-party admins whose actions declare no permission (django-celery-beat's enable,
    disable, toggle and "run now"): only users who may change the model see or run them."""

    def get_actions(self, request):
        if not self.has_change_permission(request):
            return {}
        return super().get_actions(request)

    def response_action(self, request, queryset):
        if not self.has_change_permission(request):
            raise PermissionDenied
        return super().response_action(request, queryset)


def _audit_existing_admins(site, labels):
    """Re-register third-party ModelAdmins (schedules, users and groups: the portal's settings
    and who holds which role) with the audit trail mixed in, keeping their behaviour."""
    from django.apps import apps

    from portal.admin_kit import AuditedAdminMixin

    for label in labels:
        try:
            model = apps.get_model(label)
        except LookupError:
            continue
        current = site._registry.get(model)
        if current is None or isinstance(current, AuditedAdminMixin):
            continue
        audited = type(
            f"Audited{type(current).__name__}", (AuditedAdminMixin, ActionsNeedChangePermission, type(current)), {}
        )
        site.unregister(model)
        site.register(model, audited)


_audit_existing_admins(admin.site, [
    "auth.User", "auth.Group",
    "django_celery_beat.PeriodicTask", "django_celery_beat.IntervalSchedule",
    "django_celery_beat.CrontabSchedule", "django_celery_beat.ClockedSchedule",
    "django_celery_beat.SolarSchedule",
])
