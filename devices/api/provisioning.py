"""API `provisioning-requests`: ask for serials to be minted (BILL), read the intents (any role),
reconcile an unknown outcome and resolve what the reconciler escalated (BILL).

POST honours an ``Idempotency-Key`` header: the same key with the same body returns the same
request (200); the same key with a different body is a 409.
"""

import django_filters
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Prefetch
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from devices.models import Device, ProvisioningRequest
from devices.services.provisioning import (
    IdempotencyConflict,
    provisioning_reconcile,
    provisioning_request_create,
    provisioning_staff_resolve,
)
from portal.api.errors import Conflict
from portal.roles import BILL, VIEW


class ProvisioningRequestSerializer(serializers.ModelSerializer):
    requested_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    serials = serializers.SerializerMethodField()

    class Meta:
        model = ProvisioningRequest
        fields = ["id", "product_id", "erp_no", "quantity", "use_bulk", "note", "status", "minted_count", "serials",
                  "calls_made", "attempts", "call_started_at", "last_error", "reconcile_note", "requested_by",
                  "idempotency_key", "created_at", "updated_at", "completed_at"]
        read_only_fields = fields

    def get_serials(self, obj) -> list[str]:
        return [d.serial for d in obj.devices.all()]


class ProvisioningCreateSerializer(serializers.Serializer):
    # Ranges are checked by the service (one set of messages for the admin and the API).
    product_id = serializers.IntegerField(help_text="10032 = CustomDevice, 10184 = CustomVehicleDevice")
    erp_no = serializers.CharField(max_length=64, help_text="The partner account (ERP no.) to mint on")
    quantity = serializers.IntegerField(default=1, help_text="1 to 1000")
    use_bulk = serializers.BooleanField(default=False, help_text="One ProvisionDevicesBulk call for all")
    note = serializers.CharField(default="", allow_blank=True, max_length=300)


class ResolveSerializer(serializers.Serializer):
    serials = serializers.ListField(child=serializers.CharField(max_length=12), allow_empty=True,
                                    help_text="Serials the unresolved call minted; empty = it minted none")


class ProvisioningRequestFilter(django_filters.FilterSet):
    account = django_filters.CharFilter(field_name="erp_no", lookup_expr="iexact")

    class Meta:
        model = ProvisioningRequest
        fields = ["status", "erp_no", "product_id"]


class ProvisioningRequestViewSet(mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                                 viewsets.GenericViewSet):
    """Provisioning intents: each mints `quantity` Geotab serials on a partner account, at most once."""

    queryset = ProvisioningRequest.objects.select_related("requested_by").prefetch_related(
        Prefetch("devices", queryset=Device.objects.only("id", "serial", "provisioning_request_id").order_by("id"))
    )
    serializer_class = ProvisioningRequestSerializer
    filterset_class = ProvisioningRequestFilter
    ordering_fields = ["id", "created_at"]
    action_capabilities = {"create": BILL, "reconcile": BILL, "resolve": BILL, "list": VIEW, "retrieve": VIEW}

    @extend_schema(
        request=ProvisioningCreateSerializer, responses={201: ProvisioningRequestSerializer, 200: ProvisioningRequestSerializer},
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=False)],
    )
    def create(self, request, *args, **kwargs):
        data = ProvisioningCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        key = request.headers.get("Idempotency-Key")
        replay = bool(key) and ProvisioningRequest.objects.filter(idempotency_key=key.strip()).exists()
        try:
            req = provisioning_request_create(**data.validated_data, requested_by=request.user, idempotency_key=key)
        except IdempotencyConflict as exc:
            raise Conflict(str(exc)) from exc
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages) from exc
        req = self.get_queryset().get(pk=req.pk)
        return Response(self.get_serializer(req).data, status=status.HTTP_200_OK if replay else status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: ProvisioningRequestSerializer})
    @action(detail=True, methods=["post"])
    def reconcile(self, request, pk=None):
        """Ask MyAdmin now what an unknown/stale call did (after its settle time)."""
        req = self.get_object()
        decision = provisioning_reconcile(request_id=req.pk, actor=request.user)
        body = self.get_serializer(self.get_queryset().get(pk=req.pk)).data
        return Response({**body, "decision": decision})

    @extend_schema(request=ResolveSerializer, responses={200: ProvisioningRequestSerializer})
    @action(detail=True, methods=["post"])
    def resolve(self, request, pk=None):
        """Staff decide a request the reconciler escalated (status needs_staff)."""
        req = self.get_object()
        data = ResolveSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            provisioning_staff_resolve(request_id=req.pk, serials=data.validated_data["serials"], actor=request.user)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages) from exc
        return Response(self.get_serializer(self.get_queryset().get(pk=req.pk)).data)
