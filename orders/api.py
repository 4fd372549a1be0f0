"""Orders API (`/api/v1/orders/`, `/api/v1/shipments/`): views are thin, every action calls the
same service as the admin. Roles: reading needs any role; order work needs `fulfilment`;
provisioning (it mints billable serials) needs `billing`."""

import django_filters
from django.db.models import Prefetch, Q
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from orders import services
from orders.models import Order, OrderEvent, OrderItem, OrderSyncRun, Shipment
from portal.api.serializers import FastOutputMixin
from portal.roles import BILL, FULFIL

# ----------------------------------------------------------------------------- serializers


class OrderItemSerializer(FastOutputMixin, serializers.ModelSerializer):
    device = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)
    missing = serializers.SerializerMethodField()

    class Meta:
        model = OrderItem
        fields = ["id", "vendor_item_id", "product_code", "requires_serial", "requires_sim", "requires_imei",
                  "attribute", "device", "serial", "imei", "sim", "provisioning_request_id", "flag_reason", "missing"]
        read_only_fields = fields

    def get_missing(self, item) -> list[str]:
        return item.missing_assignments()


class ShipmentSerializer(FastOutputMixin, serializers.ModelSerializer):
    order_header_id = serializers.IntegerField(source="order.order_header_id", read_only=True)

    class Meta:
        model = Shipment
        fields = ["id", "order", "order_header_id", "carrier", "tracking_number", "tracking_url", "ship_date",
                  "created_at"]
        read_only_fields = fields


class OrderEventSerializer(FastOutputMixin, serializers.ModelSerializer):
    actor = serializers.StringRelatedField()

    class Meta:
        model = OrderEvent
        fields = ["created_at", "kind", "from_status", "to_status", "message", "actor"]


class OrderSerializer(FastOutputMixin, serializers.ModelSerializer):
    account = serializers.CharField(source="account.account_id", read_only=True)
    items = OrderItemSerializer(many=True, read_only=True)
    # allow_null: an order without a shipment serializes as null (the reverse one-to-one raises).
    shipment = ShipmentSerializer(read_only=True, allow_null=True)

    class Meta:
        model = Order
        fields = [
            "id", "order_header_id", "account", "order_date", "shipment_status", "status", "source", "comment",
            "ship_name", "ship_email", "ship_street1", "ship_street2", "ship_city", "ship_state", "ship_zip_code",
            "ship_telephone1", "ship_telephone2", "reseller_name", "reseller_email", "purchase_order_number",
            "shipment_reference", "validated", "flagged", "flag_reason", "push_status", "push_attempts",
            "push_error", "pushed_at", "items", "shipment", "created_at", "updated_at",
        ]
        read_only_fields = fields


class OrderDetailSerializer(OrderSerializer):
    events = OrderEventSerializer(many=True, read_only=True)

    class Meta(OrderSerializer.Meta):
        fields = [*OrderSerializer.Meta.fields, "events"]
        read_only_fields = fields


class ManualItemSerializer(serializers.Serializer):
    product_code = serializers.CharField(max_length=64)
    quantity = serializers.IntegerField(min_value=1, max_value=500, default=1)
    requires_serial = serializers.BooleanField(required=False)
    requires_sim = serializers.BooleanField(required=False)
    requires_imei = serializers.BooleanField(required=False)


class ManualOrderSerializer(serializers.Serializer):
    account_id = serializers.CharField(max_length=32)
    order_header_id = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    order_date = serializers.DateTimeField(required=False)
    purchase_order_number = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    shipment_reference = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    comment = serializers.CharField(required=False, allow_blank=True, default="")
    reseller_name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    reseller_email = serializers.EmailField(required=False, allow_blank=True, default="")
    shipping_contact = serializers.DictField(child=serializers.CharField(allow_blank=True), required=False)
    items = ManualItemSerializer(many=True, allow_empty=False)


class AssignSerializer(serializers.Serializer):
    item = serializers.IntegerField()
    imei = serializers.CharField(required=False, allow_blank=True, allow_null=True, default=None)
    sim = serializers.CharField(required=False, allow_blank=True, allow_null=True, default=None)


class AssignmentListSerializer(serializers.Serializer):
    text = serializers.CharField(help_text="Lines of: serial, IMEI, SIM (comma, semicolon or tab separated)")
    preview = serializers.BooleanField(default=False)


class ShipSerializer(serializers.Serializer):
    carrier = serializers.ChoiceField(choices=list(services.CARRIER_TRACKING_URLS))
    tracking_number = serializers.CharField(max_length=64)
    ship_date = serializers.DateField(required=False)


class ShipmentCreateSerializer(ShipSerializer):
    order = serializers.PrimaryKeyRelatedField(queryset=Order.objects.all())


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=300)


class SyncRunSerializer(serializers.ModelSerializer):
    class Meta:
        model = OrderSyncRun
        fields = ["id", "status", "started_at", "finished_at", "from_date", "fetched", "created", "updated",
                  "unchanged", "flagged", "failed", "errors", "error"]


# ----------------------------------------------------------------------------- filters


class OrderFilter(django_filters.FilterSet):
    account = django_filters.CharFilter(field_name="account__account_id", lookup_expr="iexact")
    reseller = django_filters.CharFilter(field_name="reseller_name", lookup_expr="icontains")
    date_from = django_filters.DateFilter(field_name="order_date", lookup_expr="date__gte")
    date_to = django_filters.DateFilter(field_name="order_date", lookup_expr="date__lte")
    search = django_filters.CharFilter(method="filter_search", label="PO number, shipment reference, serial or IMEI")

    class Meta:
        model = Order
        fields = ["status", "flagged", "push_status", "source", "order_header_id"]

    def filter_search(self, queryset, name, value):
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(order_search_q(value))


def order_search_q(value: str) -> Q:
    """PO number / shipment reference / serial / IMEI (exact, case-insensitive), or the order id.
    Items are matched through a subquery so an order never appears twice."""
    item_orders = OrderItem.objects.filter(Q(serial__iexact=value) | Q(imei=value)).values("order_id")
    q = Q(purchase_order_number__iexact=value) | Q(shipment_reference__iexact=value) | Q(pk__in=item_orders)
    if value.isdigit():
        q |= Q(order_header_id=int(value))
    return q


# ----------------------------------------------------------------------------- views


class OrderViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                   viewsets.GenericViewSet):
    """Marketplace orders. POST creates an order entered by hand; actions run the lifecycle."""

    required_capability = FULFIL
    action_capabilities = {"provision": BILL}
    filterset_class = OrderFilter
    ordering_fields = ["id", "order_date"]

    def get_queryset(self):
        qs = Order.objects.select_related("account", "shipment").prefetch_related(
            Prefetch("items", queryset=OrderItem.objects.order_by("id"))
        )
        if self.action == "retrieve":
            qs = qs.prefetch_related(Prefetch("events", queryset=OrderEvent.objects.select_related("actor")))
        return qs

    def get_serializer_class(self):
        return {
            "retrieve": OrderDetailSerializer, "create": ManualOrderSerializer, "assign": AssignSerializer,
            "assignments": AssignmentListSerializer, "ship": ShipSerializer, "hold": ReasonSerializer,
            "cancel": ReasonSerializer,
        }.get(self.action, OrderSerializer)

    def _detail(self, order, status_code=status.HTTP_200_OK):
        order = self.get_queryset().prefetch_related(
            Prefetch("events", queryset=OrderEvent.objects.select_related("actor"))
        ).get(pk=order.pk)
        return Response(OrderDetailSerializer(order, context=self.get_serializer_context()).data, status=status_code)

    def _input(self):
        serializer = self.get_serializer(data=self.request.data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    @extend_schema(request=ManualOrderSerializer, responses=OrderDetailSerializer)
    def create(self, request, *args, **kwargs):
        data = self._input()
        items = [dict(i) for i in data.pop("items")]
        order = services.order_create_manual(items=items, actor=request.user, **data)
        return self._detail(order, status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=SyncRunSerializer)
    @action(detail=False, methods=["post"])
    def sync(self, request):
        """Pull new and changed orders from the partner shipping API now."""
        run = services.order_sync(actor=request.user)
        return Response(SyncRunSerializer(run).data)

    @extend_schema(request=None, responses=OrderDetailSerializer)
    @action(detail=True, methods=["post"])
    def review(self, request, pk=None):
        return self._detail(services.order_review_start(order=self.get_object(), actor=request.user))

    @extend_schema(request=None, responses=OrderDetailSerializer)
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        return self._detail(services.order_approve(order=self.get_object(), actor=request.user))

    @extend_schema(request=ReasonSerializer, responses=OrderDetailSerializer)
    @action(detail=True, methods=["post"])
    def hold(self, request, pk=None):
        reason = self._input()["reason"]
        return self._detail(services.order_hold(order=self.get_object(), actor=request.user, reason=reason))

    @extend_schema(request=None, responses=OrderDetailSerializer)
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        return self._detail(services.order_resume(order=self.get_object(), actor=request.user))

    @extend_schema(request=ReasonSerializer, responses=OrderDetailSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        reason = self._input()["reason"]
        return self._detail(services.order_cancel(order=self.get_object(), actor=request.user, reason=reason))

    @extend_schema(request=None, responses=OrderDetailSerializer)
    @action(detail=True, methods=["post"], url_path="clear-flag")
    def clear_flag(self, request, pk=None):
        return self._detail(services.order_clear_flag(order=self.get_object(), actor=request.user))

    @extend_schema(request=None, responses=OrderDetailSerializer)
    @action(detail=True, methods=["post"])
    def provision(self, request, pk=None):
        """Mint one serial per device item on the order's partner account (billable; `billing`)."""
        order = self.get_object()
        services.order_provision(order=order, actor=request.user)
        return self._detail(order)

    @extend_schema(request=AssignSerializer, responses=OrderDetailSerializer)
    @action(detail=True, methods=["post"])
    def assign(self, request, pk=None):
        order = self.get_object()
        data = self._input()
        item = order.items.filter(pk=data["item"]).first()
        if item is None:
            raise serializers.ValidationError({"item": [f"Item {data['item']} is not on {order}."]})
        services.order_item_assign(item=item, imei=data["imei"], sim=data["sim"], actor=request.user)
        return self._detail(order)

    @extend_schema(request=AssignmentListSerializer)
    @action(detail=True, methods=["post"])
    def assignments(self, request, pk=None):
        """A pasted list of `serial, IMEI, SIM` lines: preview (no writes) or apply (all or none)."""
        order = self.get_object()
        data = self._input()
        if data["preview"]:
            rows = services.order_assignments_parse(order=order, text=data["text"])
            return Response({"rows": [
                {"line": r.line, "serial": r.serial, "imei": r.imei, "sim": r.sim,
                 "item": r.item.pk if r.item else None, "errors": r.errors} for r in rows
            ], "ok": all(r.ok for r in rows)})
        services.order_assignments_apply(order=order, text=data["text"], actor=request.user)
        return self._detail(order)

    @extend_schema(request=ShipSerializer, responses=OrderDetailSerializer)
    @action(detail=True, methods=["post"])
    def ship(self, request, pk=None):
        order = self.get_object()
        services.shipment_create(order=order, actor=request.user, **self._input())
        return self._detail(order)

    @extend_schema(request=None, responses=OrderDetailSerializer)
    @action(detail=True, methods=["post"])
    def push(self, request, pk=None):
        """Queue the fulfilment push again (it is idempotent by order)."""
        return self._detail(services.order_push_retry(order=self.get_object(), actor=request.user))


class ShipmentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                      viewsets.GenericViewSet):
    """Shipments. POST ships an order (same service as `orders/{id}/ship/`)."""

    required_capability = FULFIL
    queryset = Shipment.objects.select_related("order")
    filterset_fields = ["carrier", "order"]
    ordering_fields = ["id", "ship_date"]

    def get_serializer_class(self):
        return ShipmentCreateSerializer if self.action == "create" else ShipmentSerializer

    @extend_schema(request=ShipmentCreateSerializer, responses=ShipmentSerializer)
    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        shipment = services.shipment_create(order=data.pop("order"), actor=request.user, **data)
        return Response(ShipmentSerializer(shipment).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=ShipmentSerializer)
    @action(detail=True, methods=["post"])
    def push(self, request, pk=None):
        shipment = self.get_object()
        services.order_push_retry(order=shipment.order, actor=request.user)
        shipment.refresh_from_db()
        return Response(ShipmentSerializer(shipment).data)


ROUTES = [
    ("orders", OrderViewSet, "order"),
    ("shipments", ShipmentViewSet, "shipment"),
]
