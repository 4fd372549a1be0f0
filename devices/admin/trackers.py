"""Navixy trackers in the admin: register one (a form whose fields follow the plugin), bulk
registration from CSV/XLSX with a dry-run preview and per-row results, the list filtered by
state / plugin / model / group, and the actions retry registration, resend setup
(register_retry) and refresh from Navixy. Registration work needs the FULFIL capability."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Exists, OuterRef
from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.urls import path, reverse
from django.utils.html import format_html

from devices.forms.trackers import BulkUploadForm, PluginChoiceForm, TrackerRegisterForm
from devices.models import NavixyGroup, NavixyModel, NavixyPlugin, Tracker, TrackerEvent
from devices.services import trackers as svc
from portal.admin_kit import PortalAdminMixin, choices_filter
from portal.jobs import admin_url, job_advance, job_start, redirect_to_job
from portal.roles import FULFIL, RoleAwareAdminMixin, has_capability, require_capability


class TrackerEventInline(admin.TabularInline):
    model = TrackerEvent
    extra = 0
    can_delete = False
    fields = ("created_at", "kind", "from_state", "to_state", "message", "actor", "request_id")
    readonly_fields = fields
    ordering = ("-created_at",)

    def has_add_permission(self, request, obj=None):
        return False


def tracker_model_choices():
    """The catalogue's models that some tracker uses: driven from the catalogue (hundreds of
    rows), one probe each into the trackers' model index, never a DISTINCT over the trackers."""
    used = Exists(Tracker.objects.filter(model_code=OuterRef("code")))
    return [(code, f"{code} ({name})" if name and name != code else code)
            for code, name in NavixyModel.objects.filter(used).order_by("code").values_list("code", "name")]


@admin.register(Tracker)
class TrackerAdmin(PortalAdminMixin, RoleAwareAdminMixin, admin.ModelAdmin):
    list_display = ("label", "state", "plugin_id", "model_code", "device_id", "group", "navixy_tracker_id",
                    "source_blocked", "tariff_end_date", "portal_device", "updated_at")
    list_filter = ("state", "plugin_id", choices_filter("model_code", tracker_model_choices, title="model"), "group",
                   "source_blocked")
    list_select_related = ("group", "portal_device")
    search_fields = ("=device_id", "label", "=phone", "=navixy_tracker_id")
    show_full_result_count = False
    list_per_page = 100
    actions = ["retry_registration", "resend_setup", "refresh_from_navixy"]
    inlines = [TrackerEventInline]
    exclude = ("apn_password", "activation_code", "lease_until")
    change_list_template = "devices/tracker_change_list.html"

    def get_readonly_fields(self, request, obj=None):
        # Input changes go through the register form / API so they are validated the same way.
        return [f.name for f in Tracker._meta.fields if f.name not in self.exclude] + [
            "activation_code_state", "fix_link"]

    @admin.display(description="fix input")
    def fix_link(self, obj):
        if obj.pk and obj.state in (Tracker.State.DRAFT, Tracker.State.FAILED):
            url = reverse("admin:devices_tracker_register") + f"?edit={obj.pk}"
            return format_html('<a href="{}">Edit and register again</a>', url)
        return "—"

    @admin.display(description="activation code")
    def activation_code_state(self, obj):
        if obj.activation_code_used_at:
            return f"used {obj.activation_code_used_at:%Y-%m-%d %H:%M}"
        return "set (hidden)" if obj.activation_code else "—"

    def has_add_permission(self, request):
        return has_capability(request.user, FULFIL)

    def has_delete_permission(self, request, obj=None):
        return False

    def add_view(self, request, form_url="", extra_context=None):
        return HttpResponseRedirect(reverse("admin:devices_tracker_register"))

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("register/", view(self.register_view), name="devices_tracker_register"),
            path("bulk/", view(self.bulk_view), name="devices_tracker_bulk"),
            path("refresh-catalogues/", view(self.refresh_catalogues_view), name="devices_tracker_refresh_catalogues"),
            *super().get_urls(),
        ]

    def _require_fulfil(self, request):
        if not has_capability(request.user, FULFIL):
            raise PermissionDenied("Your role does not allow registering trackers.")

    def register_view(self, request):
        """Step 1 picks the plugin (GET ?plugin=); step 2 shows that plugin's fields."""
        self._require_fulfil(request)
        context = {**self.admin_site.each_context(request), "opts": self.model._meta, "title": "Register a tracker"}
        editing = None
        if request.GET.get("edit"):
            editing = Tracker.objects.filter(pk=request.GET["edit"]).first()
            if editing is None or editing.state not in (Tracker.State.DRAFT, Tracker.State.FAILED):
                self.message_user(request, "Only draft or failed trackers can be edited.", messages.ERROR)
                return HttpResponseRedirect(reverse("admin:devices_tracker_changelist"))
            chooser = PluginChoiceForm({"plugin": editing.plugin_id})
            context["title"] = f"Fix and register {editing.label}"
        else:
            chooser = PluginChoiceForm(request.GET or None)
        if not chooser.is_valid():
            return render(request, "devices/tracker_register.html", {**context, "chooser": chooser})
        plugin_id = chooser.cleaned_data["plugin"]
        form = TrackerRegisterForm(request.POST or None, plugin_id=plugin_id, tracker=editing)
        if request.method == "POST" and form.is_valid():
            try:
                data = {**form.tracker_data, "plugin_id": plugin_id}
                if editing is not None:
                    tracker = svc.tracker_update(tracker=editing, data=data, actor=request.user)
                    tracker = svc.tracker_submit(tracker=tracker, actor=request.user)
                else:
                    tracker = svc.tracker_create(data=data, actor=request.user, catalogue=form.catalogue)
            except svc.TrackerError as exc:
                form.add_error(None, str(exc))
            except ValidationError as exc:
                for name, msgs in exc.message_dict.items():
                    for msg in msgs:
                        form.add_error(name if name in form.fields else None, msg)
            else:
                self.message_user(request, f"Tracker {tracker.label!r} queued for registration on Navixy.",
                                  messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:devices_tracker_change", args=[tracker.pk]))
        return render(request, "devices/tracker_register.html", {
            **context, "chooser": chooser, "form": form, "plugin": Tracker.Plugin(plugin_id).label,
        })

    def refresh_catalogues_view(self, request):
        """POST only: queue the refresh of Navixy models, plugins and groups."""
        from devices.tasks.trackers import navixy_catalogue_refresh_task

        self._require_fulfil(request)
        if request.method == "POST":
            navixy_catalogue_refresh_task.delay_on_commit()
            self.message_user(request, "Navixy catalogue refresh queued.", messages.INFO)
        return HttpResponseRedirect(reverse("admin:devices_tracker_changelist"))

    def bulk_view(self, request):
        """Upload → per-row results. With "dry run" ticked nothing is written."""
        self._require_fulfil(request)
        context = {**self.admin_site.each_context(request), "opts": self.model._meta,
                   "title": "Register trackers from a file"}
        form = BulkUploadForm(request.POST or None, request.FILES or None)
        results = None
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                rows = svc.tracker_rows_from_upload(filename=upload.name, content=upload.read())
            except svc.UploadError as exc:
                form.add_error("file", str(exc))
            else:
                dry_run = form.cleaned_data["dry_run"]
                job = None
                if not dry_run and rows:
                    # The registrations run on workers: staff watch them on the job's page.
                    job = job_start(kind="tracker_registration", total=len(rows), actor=request.user,
                                    target="")
                results = svc.tracker_bulk_import(rows=rows, actor=request.user, dry_run=dry_run,
                                                  job_id=job.pk if job else None)
                good = sum(r.ok for r in results)
                bad = len(results) - good
                if dry_run:
                    self.message_user(request, f"Dry run: {good} row(s) valid, {bad} with errors. Nothing written.",
                                      messages.INFO)
                else:
                    self.message_user(request, f"{good} tracker(s) queued for registration; {bad} row(s) rejected.",
                                      messages.SUCCESS if not bad else messages.WARNING)
                    if job is not None:
                        return redirect_to_job(job)
                context["dry_run"] = dry_run
        return render(request, "devices/tracker_bulk.html", {**context, "form": form, "results": results})

    @admin.action(description="Register / retry registration on Navixy")
    @require_capability(FULFIL)
    def retry_registration(self, request, queryset):
        """One job for the selection: each tracker counts when its registration ends, a
        tracker the action refuses counts as failed at once (with its reason and link)."""
        trackers = list(queryset.order_by("pk"))
        candidates = [t for t in trackers if t.state != Tracker.State.REGISTERING]
        busy = len(trackers) - len(candidates)
        if busy:
            self.message_user(request, f"{busy} tracker(s) already being registered, left as they are.",
                              messages.INFO)
        if not candidates:
            return None
        job = job_start(kind="tracker_registration", total=len(candidates), actor=request.user,
                        target=f"devices.Tracker:{candidates[0].pk}" if len(candidates) == 1 else "")
        for tracker in candidates:
            try:
                svc.tracker_submit(tracker=tracker, actor=request.user, job_id=job.pk)
            except svc.TrackerError as exc:
                job_advance(job_id=job.pk, failed=1, complete=True, failure={
                    "label": tracker.label, "url": admin_url("devices.Tracker", tracker.pk), "message": str(exc)})
        return redirect_to_job(job)

    @admin.action(description="Resend setup commands (register_retry)")
    @require_capability(FULFIL)
    def resend_setup(self, request, queryset):
        from devices.tasks.trackers import tracker_register_retry_task

        ids = list(queryset.filter(navixy_tracker_id__isnull=False).values_list("pk", flat=True))
        for pk in ids:
            tracker_register_retry_task.delay_on_commit(pk, request.user.pk)
        skipped = queryset.count() - len(ids)
        self.message_user(request, f"Setup commands will be resent for {len(ids)} tracker(s)."
                          + (f" {skipped} not registered yet, skipped." if skipped else ""), messages.INFO)

    @admin.action(description="Refresh from Navixy")
    @require_capability(FULFIL)
    def refresh_from_navixy(self, request, queryset):
        from devices.tasks.trackers import tracker_refresh_task

        ids = list(queryset.filter(navixy_tracker_id__isnull=False).values_list("pk", flat=True))
        for pk in ids:
            tracker_refresh_task.delay_on_commit(pk)
        self.message_user(request, f"Refresh queued for {len(ids)} registered tracker(s).", messages.INFO)


class CatalogueAdmin(RoleAwareAdminMixin, admin.ModelAdmin):
    """Read-only caches of Navixy; refreshed by beat or the action."""

    actions = ["refresh_catalogues"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Refresh Navixy catalogues (models, plugins, groups)")
    @require_capability(FULFIL)
    def refresh_catalogues(self, request, queryset):
        from devices.tasks.trackers import navixy_catalogue_refresh_task

        navixy_catalogue_refresh_task.delay_on_commit()
        self.message_user(request, "Catalogue refresh queued.", messages.INFO)


@admin.register(NavixyModel)
class NavixyModelAdmin(CatalogueAdmin):
    list_display = ("code", "name", "vendor", "id_type", "has_phone", "has_apn_settings", "registrable", "present")
    list_filter = ("present", "registrable", "has_phone", "vendor")
    search_fields = ("code", "name")


@admin.register(NavixyPlugin)
class NavixyPluginAdmin(CatalogueAdmin):
    list_display = ("plugin_id", "module", "filter_exclusion", "available", "refreshed_at")


@admin.register(NavixyGroup)
class NavixyGroupAdmin(CatalogueAdmin):
    list_display = ("navixy_id", "title", "color", "present", "refreshed_at")
