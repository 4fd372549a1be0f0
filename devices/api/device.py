import django_filters
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Q
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from devices.api.databases import (
    AddToDatabaseResultSerializer,
    AddToDatabaseSerializer,
    device_add_to_database_response,
)
from devices.models import Device
from devices.services.contracts import device_contract_update
from integrations.base import VendorError
from portal.api.errors import error_response
from portal.api.serializers import FastOutputMixin
from portal.api.views import VendorCallSerializer
from portal.models import VendorCall
from portal.roles import BILL, FULFIL, VIEW


class DeviceSerializer(FastOutputMixin, serializers.ModelSerializer):
    class Meta:
        model = Device
        fields = [
            "id", "serial", "product_id", "product_type", "erp_no", "status", "imei", "sim",
            "comments", "promo_code", "group_id", "database_name", "ready_for_data_at",
            "mygeotab_device_id", "terminated_at", "provisioning_request", "created_at", "updated_at",
        ]
        # Serial, account and billing state change only through services (provision, terminate).
        read_only_fields = fields


class ContractUpdateSerializer(serializers.Serializer):
    comments = serializers.CharField(required=False, allow_blank=True, max_length=300)
    promo_code = serializers.CharField(required=False, allow_blank=True, max_length=64)
    group_id = serializers.CharField(required=False, allow_blank=True, max_length=64)


class DeviceFilter(django_filters.FilterSet):
    serial = django_filters.CharFilter(lookup_expr="iexact")
    imei = django_filters.CharFilter()
    account = django_filters.CharFilter(field_name="erp_no", lookup_expr="iexact")
    product = django_filters.NumberFilter(field_name="product_id")
    q = django_filters.CharFilter(method="filter_q", label="Serial or IMEI (prefix)")
    ready_for_data = django_filters.BooleanFilter(field_name="ready_for_data_at", lookup_expr="isnull", exclude=True)

    class Meta:
        model = Device
        fields = ["status", "erp_no", "product_id", "product_type", "database_name", "provisioning_request"]

    def filter_q(self, queryset, name, value):
        value = value.strip()
        if not value:
            return queryset
        # Prefix matches use the unique indexes on serial and IMEI (no full scan).
        return queryset.filter(Q(serial__startswith=value.upper()) | Q(imei__startswith=value))


def device_vendor_calls(device: Device):
    """The calls made for this device, and those of the request that minted it."""
    targets = [f"devices.Device:{device.pk}"]
    if device.provisioning_request_id:
        targets.append(f"devices.ProvisioningRequest:{device.provisioning_request_id}")
    return VendorCall.objects.filter(target__in=targets).order_by("-started_at", "-id")


class DeviceViewSet(viewsets.ReadOnlyModelViewSet):
    """Geotab devices (serials) with their assignment, readiness and billing state."""

    queryset = Device.objects.all()
    serializer_class = DeviceSerializer
    filterset_class = DeviceFilter
    search_fields = ["=serial", "=imei", "=sim"]
    ordering_fields = ["id", "created_at", "serial"]
    action_capabilities = {"contract": BILL, "vendor_calls": VIEW, "add_to_database": FULFIL}

    @extend_schema(request=ContractUpdateSerializer, responses={200: DeviceSerializer})
    @action(detail=True, methods=["post"])
    def contract(self, request, pk=None):
        """Update the device's MyAdmin contract (comments, promo code, group); omitted fields stay."""
        device = self.get_object()
        data = ContractUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            device = device_contract_update(device=device, actor=request.user, **data.validated_data)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages) from exc
        except VendorError as exc:
            code = "vendor_rejected" if exc.outcome.value == "rejected" else f"vendor_{exc.outcome.value}"
            status_code = 400 if exc.outcome.value == "rejected" else 503
            return error_response(f"MyAdmin did not update the contract: {exc}", code=code, status_code=status_code)
        return Response(DeviceSerializer(device).data)

    @extend_schema(responses={200: VendorCallSerializer(many=True)})
    @action(detail=True, methods=["get"], url_path="vendor-calls")
    def vendor_calls(self, request, pk=None):
        """The vendor calls made for this device (newest first, at most 200)."""
        device = self.get_object()
        return Response(VendorCallSerializer(device_vendor_calls(device)[:200], many=True).data)

    @extend_schema(request=AddToDatabaseSerializer, responses=AddToDatabaseResultSerializer)
    @action(detail=True, methods=["post"], url_path="add_to_database")
    def add_to_database(self, request, pk=None):
        """Add the device as an asset of a customer's MyGeotab database (idempotent)."""
        return device_add_to_database_response(request, self.get_object())
