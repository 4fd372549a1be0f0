"""Orders in the admin: the list staff work from, the order page with items, shipment and
history inline, and the actions (each calls the same service as the API)."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Prefetch
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from orders import services
from orders.api import order_search_q
from orders.forms import AssignmentsForm, ManualOrderForm, ShipForm
from orders.models import (
    Account,
    Order,
    OrderEvent,
    OrderItem,
    OrderSyncRun,
    Product,
    Shipment,
)
from orders.services.fulfilment import CARRIER_NAMES
from portal.admin_confirm import confirm_action, confirm_post, is_confirmed
from portal.admin_kit import DateRangeFilter, PortalAdminMixin, ScalableAdminMixin, choices_filter, text_filter
from portal.roles import (
    BILL,
    FULFIL,
    RoleAwareAdminMixin,
    has_capability,
    require_capability,
)


def _error_text(exc: ValidationError) -> str:
    if hasattr(exc, "error_dict"):
        return " ".join(f"{'' if k in ('__all__',) else k + ': '}{m}" for k, msgs in exc.message_dict.items() for m in msgs)
    return " ".join(exc.messages)


@admin.register(Product)
class ProductAdmin(PortalAdminMixin, RoleAwareAdminMixin, admin.ModelAdmin):
    list_display = ("code", "name", "myadmin_product_id")
    search_fields = ("code", "name")


@admin.register(Account)
class AccountAdmin(PortalAdminMixin, RoleAwareAdminMixin, admin.ModelAdmin):
    list_display = ("account_id", "name", "reseller", "partner_id")
    search_fields = ("=account_id", "name", "reseller")


class OrderItemInline(admin.TabularInline):
    model = OrderItem
    extra = 0
    can_delete = False
    fields = ("vendor_item_id", "product_code", "requires_serial", "requires_imei", "requires_sim", "serial",
              "imei", "sim", "provisioning_request_id", "flag_reason")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


class ShipmentInline(admin.StackedInline):
    model = Shipment
    extra = 0
    can_delete = False
    fields = ("carrier", "tracking_number", "tracking_link", "ship_date", "created_by", "created_at")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description="Tracking URL")
    def tracking_link(self, obj):
        return format_html('<a href="{}" target="_blank" rel="noopener">{}</a>', obj.tracking_url, obj.tracking_url) if obj.tracking_url else "—"


class OrderEventInline(admin.TabularInline):
    model = OrderEvent
    extra = 0
    can_delete = False
    fields = ("created_at", "kind", "from_status", "to_status", "message", "actor")
    readonly_fields = fields
    ordering = ("-created_at", "-id")

    def has_add_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("actor")


# Most resellers the filter lists (they come from the accounts table, a few thousand rows).
RESELLERS_LISTED = 500


def reseller_choices():
    """Reseller names from the accounts (each account keeps the reseller of its first order):
    a DISTINCT over the small accounts table, never over the orders."""
    names = (Account.objects.exclude(reseller="").order_by("reseller").values_list("reseller", flat=True)
             .distinct()[:RESELLERS_LISTED])
    return [(name, name) for name in names]


# Orders whose reseller name is the chosen one (the order's own reseller_name, indexed).
ResellerFilter = choices_filter("reseller_name", reseller_choices, title="reseller", parameter_name="reseller")
# Thousands of accounts: a box for the ERP no. rather than a list of every account.
AccountFilter = text_filter("account__account_id", title="account (ERP no.)", parameter_name="account",
                            placeholder="ERP no.")


# Buttons on the order page: name → (label, service, capability).
ORDER_PAGE_ACTIONS = {
    "review": ("Start review", services.order_review_start, FULFIL),
    "approve": ("Approve", services.order_approve, FULFIL),
    "provision": ("Provision serials", services.order_provision, BILL),
    "collect": ("Refresh serials", services.order_provision_collect, FULFIL),
    "hold": ("Put on hold", services.order_hold, FULFIL),
    "resume": ("Resume", services.order_resume, FULFIL),
    "cancel": ("Cancel", services.order_cancel, FULFIL),
    "push": ("Push fulfilment again", services.order_push_retry, FULFIL),
    "add_to_database": ("Add its devices to the customer's database", services.order_devices_add_to_database, FULFIL),
    "clear_flag": ("Clear flag", services.order_clear_flag, FULFIL),
}


# Order-page buttons that cost money ask for confirmation first (portal.admin_confirm).
BILLABLE_PAGE_ACTIONS = {"provision"}


def _provision_effect(orders) -> str:
    """What provisioning these orders costs: one billable serial per device item that has
    neither a serial nor a provisioning intent yet (an existing intent never mints again)."""
    serials = OrderItem.objects.filter(order__in=orders, requires_serial=True, device__isnull=True,
                                       provisioning_request_id__isnull=True).count()
    return (f"mint {serials} billable Geotab serial{'s' if serials != 1 else ''} on MyAdmin "
            "(one per device item without a serial), on each order's partner account")


@admin.register(Order)
class OrderAdmin(PortalAdminMixin, RoleAwareAdminMixin, admin.ModelAdmin):
    list_display = ("order_label", "account", "order_date", "status", "reseller_name", "purchase_order_number",
                    "shipment_reference", "flagged", "push_status")
    # Every filter draws itself without reading the orders, and each has an index (orders.models).
    list_filter = ("status", "flagged", "push_status", "source", ResellerFilter, AccountFilter,
                   ("order_date", DateRangeFilter))
    search_fields = ("purchase_order_number",)  # the real search is get_search_results
    search_help_text = "PO number, shipment reference, orderHeaderId, serial or IMEI"
    list_select_related = ("account",)
    show_full_result_count = False
    list_per_page = 100
    inlines = [OrderItemInline, ShipmentInline, OrderEventInline]
    actions = ["sync_now", "start_review", "approve", "provision", "retry_push"]
    change_form_template = "admin/orders/order/change_form.html"
    change_list_template = "admin/orders/order/change_list.html"

    def get_readonly_fields(self, request, obj=None):
        # Orders change only through the lifecycle services.
        return [f.name for f in Order._meta.fields]

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Order", ordering="order_header_id")
    def order_label(self, obj):
        return str(obj)

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(order_search_q(term)), False

    # ------------------------------------------------------------------ list actions

    def _each(self, request, queryset, service, done: str):
        ok = 0
        for order in queryset:
            try:
                service(order=order, actor=request.user)
                ok += 1
            except ValidationError as exc:
                self.message_user(request, f"{order}: {_error_text(exc)}", level=messages.ERROR)
        if ok:
            self.message_user(request, f"{ok} order(s) {done}.", level=messages.SUCCESS)

    @admin.action(description="Sync orders from the partner API now")
    @require_capability(FULFIL)
    def sync_now(self, request, queryset):
        return self._sync(request)

    def sync_view(self, request):
        """The changelist's "Sync now" button (an admin action needs selected rows; a fresh
        install has none)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not has_capability(request.user, FULFIL):
            raise PermissionDenied("Your role does not allow this action.")
        return self._sync(request)

    def _sync(self, request):
        """A worker syncs; staff watch the job's page (orders read, bad orders linked)."""
        from orders.tasks import sync_orders
        from portal.jobs import job_start, redirect_to_job

        job = job_start(kind="order_sync", total=0, actor=request.user, target="")
        sync_orders.delay_on_commit(job_id=job.pk, actor_id=request.user.pk)
        return redirect_to_job(job)

    @admin.action(description="Start review")
    @require_capability(FULFIL)
    def start_review(self, request, queryset):
        self._each(request, queryset, services.order_review_start, "in review")

    @admin.action(description="Approve")
    @require_capability(FULFIL)
    def approve(self, request, queryset):
        self._each(request, queryset, services.order_approve, "approved")

    @admin.action(description="Provision serials (billable)")
    @require_capability(BILL)
    def provision(self, request, queryset):
        page = confirm_action(request, queryset, title="Provision serials", count=queryset.count(),
                              effect=_provision_effect(queryset), action_name="provision")
        if page is not None:
            return page
        self._each(request, queryset, services.order_provision, "sent to provisioning")

    @admin.action(description="Push fulfilment again")
    @require_capability(FULFIL)
    def retry_push(self, request, queryset):
        self._each(request, queryset, services.order_push_retry, "queued for push")

    # ------------------------------------------------------------------ order page

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("manual/", wrap(self.manual_view), name="orders_order_manual"),
            path("sync/", wrap(self.sync_view), name="orders_order_sync"),
            path("<int:object_id>/do/<str:name>/", wrap(self.do_view), name="orders_order_do"),
            path("<int:object_id>/assign/", wrap(self.assign_view), name="orders_order_assign"),
            path("<int:object_id>/ship/", wrap(self.ship_view), name="orders_order_ship"),
            path("<int:object_id>/packing-slip/", wrap(self.packing_slip_view), name="orders_order_packing_slip"),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = extra_context or {}
        extra_context["order_actions"] = [
            (name, label) for name, (label, _, cap) in ORDER_PAGE_ACTIONS.items() if has_capability(request.user, cap)
        ]
        extra_context["can_fulfil"] = has_capability(request.user, FULFIL)
        return super().change_view(request, object_id, form_url, extra_context)

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        return HttpResponseRedirect(reverse("admin:orders_order_manual"))

    def has_add_permission(self, request):
        return has_capability(request.user, FULFIL)

    def _back(self, order):
        return HttpResponseRedirect(reverse("admin:orders_order_change", args=[order.pk]))

    def do_view(self, request, object_id, name):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        order = get_object_or_404(Order, pk=object_id)
        if name not in ORDER_PAGE_ACTIONS:
            self.message_user(request, f"Unknown action {name!r}.", level=messages.ERROR)
            return self._back(order)
        label, service, capability = ORDER_PAGE_ACTIONS[name]
        if not has_capability(request.user, capability):
            self.message_user(request, "Your role does not allow this action.", level=messages.ERROR)
            return self._back(order)
        if name in BILLABLE_PAGE_ACTIONS and not is_confirmed(request):
            return confirm_post(request, title=label, count=1, opts=self.model._meta, objects=[order],
                                effect=_provision_effect(Order.objects.filter(pk=order.pk)),
                                cancel_url=reverse("admin:orders_order_change", args=[order.pk]))
        try:
            outcome = service(order=order, actor=request.user)
            summary = outcome if isinstance(outcome, str) else "done."
            self.message_user(request, f"{label}: {summary}", level=messages.SUCCESS)
        except ValidationError as exc:
            self.message_user(request, f"{label}: {_error_text(exc)}", level=messages.ERROR)
        return self._back(order)

    def _context(self, request, order, **extra):
        return {**self.admin_site.each_context(request), "opts": self.model._meta, "order": order,
                "title": f"{order}", **extra}

    def _refuse(self, request, order):
        raise PermissionDenied("Your role does not allow this action.")

    def assign_view(self, request, object_id):
        order = get_object_or_404(Order.objects.select_related("account"), pk=object_id)
        if not has_capability(request.user, FULFIL):
            return self._refuse(request, order)
        rows, form = None, AssignmentsForm()
        if request.method == "POST" and "single" in request.POST:
            # One item at a time: the row's own IMEI/SIM inputs.
            item = order.items.filter(pk=request.POST.get("item") or 0).first()
            if item is None:
                self.message_user(request, "That item is not on this order.", level=messages.ERROR)
            else:
                try:
                    services.order_item_assign(item=item, imei=request.POST.get("imei", "").strip() or None,
                                               sim=request.POST.get("sim", "").strip() or None, actor=request.user)
                    self.message_user(request, f"Item {item.pk} assigned.", level=messages.SUCCESS)
                except ValidationError as exc:
                    self.message_user(request, _error_text(exc), level=messages.ERROR)
            return HttpResponseRedirect(reverse("admin:orders_order_assign", args=[order.pk]))
        if request.method == "POST":
            form = AssignmentsForm(request.POST, request.FILES)
            if form.is_valid():
                text = form.cleaned_data["text"]
                try:
                    if "apply" in request.POST:
                        applied = services.order_assignments_apply(order=order, text=text, actor=request.user)
                        self.message_user(request, f"{len(applied)} unit(s) assigned.", level=messages.SUCCESS)
                        return self._back(order)
                    rows = services.order_assignments_parse(order=order, text=text)
                except ValidationError as exc:
                    self.message_user(request, _error_text(exc), level=messages.ERROR)
                    rows = None
        items = order.items.order_by("id")
        return TemplateResponse(request, "admin/orders/order/assign.html", self._context(
            request, order, form=form, rows=rows, items=items, all_ok=bool(rows) and all(r.ok for r in rows)))

    def ship_view(self, request, object_id):
        order = get_object_or_404(Order, pk=object_id)
        if not has_capability(request.user, FULFIL):
            return self._refuse(request, order)
        form = ShipForm(request.POST or None, initial={"ship_date": timezone.localdate()})
        if request.method == "POST" and form.is_valid():
            try:
                services.shipment_create(order=order, actor=request.user, **form.cleaned_data)
                self.message_user(request, "Shipped; the fulfilment push is queued.", level=messages.SUCCESS)
                return self._back(order)
            except ValidationError as exc:
                self.message_user(request, _error_text(exc), level=messages.ERROR)
        missing = services.order_missing_assignments(order=order)
        return TemplateResponse(request, "admin/orders/order/ship.html", self._context(
            request, order, form=form, missing=missing))

    def packing_slip_view(self, request, object_id):
        order = get_object_or_404(
            Order.objects.select_related("account", "shipment").prefetch_related(
                Prefetch("items", queryset=OrderItem.objects.order_by("product_code", "id"))),
            pk=object_id,
        )
        return TemplateResponse(request, "orders/packing_slip.html", {"order": order, "now": timezone.now(),
                                                                       "shipment": getattr(order, "shipment", None)})

    def manual_view(self, request):
        if not has_capability(request.user, FULFIL):
            raise PermissionDenied("Your role does not allow this action.")
        form = ManualOrderForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                order = services.order_create_manual(actor=request.user, **form.service_kwargs())
                self.message_user(request, f"{order} entered.", level=messages.SUCCESS)
                return self._back(order)
            except ValidationError as exc:
                self.message_user(request, _error_text(exc), level=messages.ERROR)
        return TemplateResponse(request, "admin/orders/order/manual.html", {
            **self.admin_site.each_context(request), "opts": self.model._meta, "form": form,
            "title": "Enter an order by hand"})


@admin.register(OrderSyncRun)
class OrderSyncRunAdmin(ScalableAdminMixin, RoleAwareAdminMixin, admin.ModelAdmin):
    list_display = ("started_at", "status", "fetched", "created", "updated", "unchanged", "flagged", "failed", "error")
    list_filter = ("status",)
    readonly_fields = [f.name for f in OrderSyncRun._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Shipment)
class ShipmentAdmin(PortalAdminMixin, RoleAwareAdminMixin, admin.ModelAdmin):
    list_display = ("order", "carrier", "tracking_number", "ship_date")
    # The carriers the portal accepts: a plain "carrier" filter would SELECT DISTINCT over shipments.
    list_filter = (choices_filter("carrier", CARRIER_NAMES.items()), ("ship_date", DateRangeFilter))
    search_fields = ("=tracking_number",)
    list_select_related = ("order",)
    readonly_fields = ("order", "carrier", "tracking_number", "tracking_url", "ship_date", "created_by", "created_at")
    exclude = ("items",)

    def has_add_permission(self, request):
        return False
