"""Provisioning in the admin: "Provision devices" (product, account, count → a confirmation that
names the count → the request's page, which shows progress until it settles), the intent list,
reconcile (selected, or every due one) and the staff resolution of escalated requests.
Everything here that can mint a serial needs the BILL capability."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.templatetags.static import static
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from devices.models import ProvisioningRequest
from devices.services.provisioning import (
    IdempotencyConflict,
    provisioning_accounts,
    provisioning_reconcile,
    provisioning_reconcile_due,
    provisioning_request_cancel,
    provisioning_request_create,
    provisioning_staff_resolve,
)
from integrations.myadmin import BULK_MAX, PRODUCT_TYPES
from portal.admin_kit import PortalAdminMixin, choices_filter
from portal.models import VendorCall
from portal.roles import BILL, RoleAwareAdminMixin, has_capability, require_capability


def provisioning_progress(req: ProvisioningRequest) -> dict:
    """A provisioning request's progress in the shape of a job's (portal.jobs.job_progress), so
    the same live bar shows it."""
    failed = req.status in (ProvisioningRequest.Status.FAILED, ProvisioningRequest.Status.NEEDS_STAFF)
    return {
        "status": req.status,
        "status_label": req.get_status_display(),
        "finished": not req.is_open,
        "total": req.quantity,
        "done": req.minted_count,
        "failed": max(0, req.quantity - req.minted_count) if failed else 0,
        "percent": int(100 * req.minted_count / req.quantity) if req.quantity else 0,
        "failures": [{"label": f"request #{req.pk}", "url": "", "message": req.last_error}] if failed and req.last_error else [],
        "result": {},
        "finished_at": req.updated_at.isoformat() if not req.is_open and req.updated_at else None,
    }

FORM_TEMPLATE = "admin/devices/provisioning_form.html"


class ProvisionForm(forms.Form):
    product_id = forms.TypedChoiceField(
        label="Product", coerce=int,
        choices=[(pid, f"{pid} — {name}") for pid, name in PRODUCT_TYPES.items()],
    )
    erp_no = forms.CharField(label="Partner account (ERP no.)", max_length=32)
    quantity = forms.IntegerField(label="Number of devices", min_value=1, max_value=BULK_MAX, initial=1,
                                  help_text=f"1 to {BULK_MAX}. Each device is a billable serial.")
    use_bulk = forms.BooleanField(label="One bulk call (ProvisionDevicesBulk)", required=False, initial=True)
    note = forms.CharField(required=False, max_length=300)

    def __init__(self, *args, accounts=None, **kwargs):
        super().__init__(*args, **kwargs)
        if accounts:
            self.fields["erp_no"] = forms.ChoiceField(label="Partner account (ERP no.)",
                                                      choices=[(a, a) for a in sorted(accounts)])


class ResolveForm(forms.Form):
    serials = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 4}),
        help_text="Serials the unresolved call minted, one per line. Leave empty if it minted none "
                  "(the request then continues and may mint again).",
    )


def vendor_calls_table(targets: list[str], limit: int = 50):
    calls = VendorCall.objects.filter(target__in=targets).order_by("-started_at", "-id")[:limit]
    if not calls:
        return "No vendor calls recorded."
    rows = format_html_join(
        "", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} ms</td><td>{}</td></tr>",
        ((c.started_at.strftime("%Y-%m-%d %H:%M:%S"), c.method, c.get_outcome_display(), c.http_status or "",
          (c.error_name + " " + c.error_message).strip() or c.response_summary, c.duration_ms, c.request_id)
         for c in calls),
    )
    return format_html(
        '<table class="portal-vendor-calls"><thead><tr><th>When (UTC)</th><th>Method</th><th>Outcome</th>'
        "<th>HTTP</th><th>Detail</th><th>Duration</th><th>Request id</th></tr></thead><tbody>{}</tbody></table>", rows)


@admin.register(ProvisioningRequest)
class ProvisioningRequestAdmin(PortalAdminMixin, RoleAwareAdminMixin, admin.ModelAdmin):
    list_display = ("id", "product_id", "erp_no", "quantity", "progress", "use_bulk", "status", "requested_by",
                    "created_at")
    # The products MyAdmin mints: a plain "product_id" would SELECT DISTINCT over the requests.
    list_filter = ("status", choices_filter("product_id", [(pid, f"{pid} {name}") for pid, name in PRODUCT_TYPES.items()],
                                            title="product"), "use_bulk")
    search_fields = ("=erp_no", "=idempotency_key", "=devices__serial")
    list_select_related = ("requested_by",)
    show_full_result_count = False
    actions = ["reconcile_selected", "cancel_selected"]
    fields = ("status", "progress_live", "product_id", "erp_no", "quantity", "use_bulk", "note", "requested_by",
              "idempotency_key", "calls_made", "attempts", "next_attempt_at", "call_started_at", "call_quantity",
              "last_error", "reconcile_note", "serials", "vendor_calls", "created_at", "updated_at", "completed_at")
    readonly_fields = fields

    # ----------------------------------------------------------------- permissions
    def has_add_permission(self, request):
        return has_capability(request.user, BILL)

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # the ledger is kept

    # ----------------------------------------------------------------- display
    @admin.display(description="Minted")
    def progress(self, obj):
        return f"{obj.minted_count} / {obj.quantity}"

    @admin.display(description="Progress")
    def progress_live(self, obj):
        # The job progress bar (portal/jobs.js) polling this request's own progress URL: the
        # count grows without a reload; once the request settles the page reloads once, to show
        # the serials and calls it made.
        data = provisioning_progress(obj)
        return format_html(
            '<div class="portal-job" id="provisioning-progress" data-job-progress-url="{}" data-finished="{}" '
            'data-reload-when-finished="{}">'
            '<div class="portal-job-head"><span data-field="status_label">{}</span></div>'
            '<div class="portal-job-bar" role="progressbar" aria-valuemin="0" aria-valuemax="100" '
            'aria-valuenow="{}"><div class="portal-job-fill" style="width: {}%"></div></div>'
            '<div class="portal-job-counts"><span data-field="done">{}</span> of <span data-field="total">{}</span> '
            'minted (<span data-field="percent">{}</span>%)</div></div>'
            '<script src="{}" defer></script>',
            reverse("admin:devices_provisioningrequest_progress", args=[obj.pk]),
            "1" if data["finished"] else "0", "0" if data["finished"] else "1",
            data["status_label"], data["percent"], data["percent"], data["done"], data["total"], data["percent"],
            static("portal/jobs.js"),
        )

    @admin.display(description="Serials")
    def serials(self, obj):
        devices = obj.devices.order_by("id")[:200]
        if not devices:
            return "—"
        return format_html_join(", ", '<a href="{}">{}</a>', (
            (reverse("admin:devices_device_change", args=[d.pk]), d.serial) for d in devices))

    @admin.display(description="Vendor calls")
    def vendor_calls(self, obj):
        return vendor_calls_table([f"devices.ProvisioningRequest:{obj.pk}"])

    # ----------------------------------------------------------------- views
    def get_urls(self):
        custom = [
            path("reconcile-due/", self.admin_site.admin_view(self.reconcile_due_view),
                 name="devices_provisioningrequest_reconcile_due"),
            path("<int:pk>/resolve/", self.admin_site.admin_view(self.resolve_view),
                 name="devices_provisioningrequest_resolve"),
            path("<int:pk>/progress/", self.admin_site.admin_view(self.progress_view),
                 name="devices_provisioningrequest_progress"),
        ]
        return custom + super().get_urls()

    def changelist_view(self, request, extra_context=None):
        extra_context = extra_context or {}
        if has_capability(request.user, BILL):
            extra_context["portal_export_links"] = [
                ("Reconcile due now", reverse("admin:devices_provisioningrequest_reconcile_due")),
            ]
        return super().changelist_view(request, extra_context)

    def add_view(self, request, form_url="", extra_context=None):
        """Provision N devices: form → confirmation naming the count → the new request's page."""
        if not has_capability(request.user, BILL):
            raise PermissionDenied
        accounts = provisioning_accounts()
        form = ProvisionForm(request.POST or None, accounts=accounts)
        context = {**self.admin_site.each_context(request), "opts": self.model._meta, "form": form,
                   "title": "Provision devices", "submit_label": "Continue",
                   "intro": "Mint Geotab serials on a partner account through MyAdmin. Every serial is billable.",
                   "back_url": reverse("admin:devices_provisioningrequest_add")}
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            if request.POST.get("confirmed") != "yes":
                n = data["quantity"]
                context.update(
                    title="Confirm provisioning",
                    confirm=(f"This will mint {n} billable serial{'s' if n != 1 else ''} of product {data['product_id']} "
                             f"({PRODUCT_TYPES[data['product_id']]}) on account {data['erp_no']}"
                             f"{' in one bulk call' if data['use_bulk'] else ', one call per device'}."),
                    confirm_button=f"Yes, provision {n} device{'s' if n != 1 else ''}",
                )
                return TemplateResponse(request, FORM_TEMPLATE, context)
            try:
                req = provisioning_request_create(requested_by=request.user, **data)
            except ValidationError as exc:
                for field, errors in exc.message_dict.items():
                    form.add_error(field if field in form.fields else None, errors)
            except IdempotencyConflict as exc:
                form.add_error(None, str(exc))
            else:
                self.message_user(request, f"Provisioning request #{req.pk} accepted: {req.quantity} device(s) on "
                                           f"{req.erp_no}. A worker mints them now.", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:devices_provisioningrequest_change", args=[req.pk]))
        return TemplateResponse(request, FORM_TEMPLATE, context)

    def reconcile_due_view(self, request):
        if not has_capability(request.user, BILL):
            raise PermissionDenied
        if request.method == "POST" or request.GET.get("run") == "1":
            counts = provisioning_reconcile_due()
            summary = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "nothing was due"
            self.message_user(request, f"Reconciled provisioning calls — {summary}.", messages.SUCCESS)
            return HttpResponseRedirect(reverse("admin:devices_provisioningrequest_changelist"))
        context = {**self.admin_site.each_context(request), "opts": self.model._meta, "form": forms.Form(),
                   "title": "Reconcile provisioning calls now",
                   "intro": "Ask MyAdmin what every unknown or stale provisioning call did (those past their settle time).",
                   "submit_label": "Reconcile now"}
        return TemplateResponse(request, FORM_TEMPLATE, context)

    def progress_view(self, request, pk):
        if not self.has_view_permission(request):
            raise PermissionDenied
        return JsonResponse(provisioning_progress(get_object_or_404(ProvisioningRequest, pk=pk)))

    def resolve_view(self, request, pk):
        if not has_capability(request.user, BILL):
            raise PermissionDenied
        req = get_object_or_404(ProvisioningRequest, pk=pk)
        form = ResolveForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            serials = form.cleaned_data["serials"].replace(",", "\n").split()
            try:
                provisioning_staff_resolve(request_id=req.pk, serials=serials, actor=request.user)
            except ValidationError as exc:
                for errors in getattr(exc, "message_dict", {"": exc.messages}).values():
                    form.add_error(None, errors)
            else:
                self.message_user(request, f"Request #{req.pk} resolved.", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:devices_provisioningrequest_change", args=[req.pk]))
        context = {**self.admin_site.each_context(request), "opts": self.model._meta, "form": form,
                   "title": f"Resolve provisioning request #{req.pk}", "intro": req.reconcile_note,
                   "submit_label": "Resolve"}
        return TemplateResponse(request, FORM_TEMPLATE, context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = extra_context or {}
        obj = self.get_object(request, object_id)
        if obj is not None and obj.status == ProvisioningRequest.Status.NEEDS_STAFF and has_capability(request.user, BILL):
            self.message_user(request, format_html(
                'The reconciler could not decide this request. <a href="{}">Resolve it</a>.',
                reverse("admin:devices_provisioningrequest_resolve", args=[obj.pk])), messages.WARNING)
        return super().change_view(request, object_id, form_url, extra_context)

    # ----------------------------------------------------------------- actions
    @admin.action(description="Reconcile selected with MyAdmin now")
    @require_capability(BILL)
    def reconcile_selected(self, request, queryset):
        results = {}
        for req in queryset[:100]:
            decision = provisioning_reconcile(request_id=req.pk, actor=request.user)
            results[decision] = results.get(decision, 0) + 1
        self.message_user(request, "Reconcile: " + ", ".join(f"{k}: {v}" for k, v in sorted(results.items())))

    @admin.action(description="Cancel selected (only with no call outstanding)")
    @require_capability(BILL)
    def cancel_selected(self, request, queryset):
        done, refused = 0, []
        for req in queryset[:500]:
            try:
                provisioning_request_cancel(request_id=req.pk, actor=request.user)
                done += 1
            except ValidationError as exc:
                refused.append(f"#{req.pk}: {' '.join(exc.messages)}")
        if done:
            self.message_user(request, f"Cancelled {done} request(s).", messages.SUCCESS)
        for text in refused[:20]:
            self.message_user(request, text, messages.ERROR)


# --------------------------------------------------------------------------- on the Device page


class ContractForm(forms.Form):
    comments = forms.CharField(required=False, max_length=300, help_text="Leave empty to keep as is.")
    promo_code = forms.CharField(required=False, max_length=64, help_text="Leave empty to keep as is.")
    group_id = forms.CharField(label="Group id", required=False, max_length=64, help_text="Leave empty to keep as is.")


@admin.display(description="Vendor calls")
def device_vendor_calls(obj):
    """The MyAdmin (and other vendor) calls made for this device and for the request that minted it."""
    if obj is None or obj.pk is None:
        return "—"
    targets = [f"devices.Device:{obj.pk}"]
    if obj.provisioning_request_id:
        targets.append(f"devices.ProvisioningRequest:{obj.provisioning_request_id}")
    return vendor_calls_table(targets)


@admin.display(description="Minted by")
def device_minted_by(obj):
    if obj is None or not obj.provisioning_request_id:
        return "—"
    return format_html('<a href="{}">Provisioning request #{}</a>',
                       reverse("admin:devices_provisioningrequest_change", args=[obj.provisioning_request_id]),
                       obj.provisioning_request_id)


@admin.action(description="Update MyAdmin contract (comments, promo code, group)…")
@require_capability(BILL)
def update_contract(modeladmin, request, queryset):
    """Intermediate page: the same change for each selected device, one MyAdmin call per device."""
    from devices.services.contracts import device_contract_update
    from integrations.base import VendorError

    devices = list(queryset[:100])
    form = ContractForm(request.POST if request.POST.get("confirmed") == "yes" else None)
    if form.is_bound and form.is_valid():
        changes = {k: v for k, v in form.cleaned_data.items() if v}
        if not changes:
            form.add_error(None, "Give at least one of comments, promo code or group.")
        else:
            done = 0
            for device in devices:
                try:
                    device_contract_update(device=device, actor=request.user, **changes)
                    done += 1
                except ValidationError as exc:
                    modeladmin.message_user(request, f"{device.serial}: {' '.join(exc.messages)}", messages.ERROR)
                except VendorError as exc:
                    modeladmin.message_user(request, f"{device.serial}: MyAdmin did not update it ({exc}).",
                                            messages.ERROR)
            if done:
                modeladmin.message_user(request, f"Contract updated for {done} device(s).", messages.SUCCESS)
            return None
    context = {
        **modeladmin.admin_site.each_context(request), "opts": modeladmin.model._meta, "form": form,
        "title": "Update MyAdmin contract", "devices": devices,
        "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        "intro": f"Applies to {len(devices)} device(s): " + ", ".join(d.serial for d in devices[:20])
                 + (" …" if len(devices) > 20 else ""),
    }
    return TemplateResponse(request, "admin/devices/contract_form.html", context)
