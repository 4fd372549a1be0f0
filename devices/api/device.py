import django_filters
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import action

from devices.api.databases import (
    AddToDatabaseResultSerializer,
    AddToDatabaseSerializer,
    device_add_to_database_response,
)
from devices.models import Device
from portal.roles import FULFIL


class DeviceSerializer(serializers.ModelSerializer):
    class Meta:
        model = Device
        fields = [
            "id", "serial", "product_id", "product_type", "erp_no", "status", "imei", "sim",
            "comments", "promo_code", "group_id", "database_name", "ready_for_data_at",
            "mygeotab_device_id", "terminated_at", "created_at", "updated_at",
        ]
        # Serial, account and billing state change only through services (provision, terminate).
        read_only_fields = fields


class DeviceFilter(django_filters.FilterSet):
    serial = django_filters.CharFilter(lookup_expr="iexact")
    imei = django_filters.CharFilter()
    ready_for_data = django_filters.BooleanFilter(field_name="ready_for_data_at", lookup_expr="isnull", exclude=True)

    class Meta:
        model = Device
        fields = ["status", "erp_no", "product_id", "product_type", "database_name"]


class DeviceViewSet(viewsets.ReadOnlyModelViewSet):
    """Geotab devices (serials) with their assignment, readiness and billing state."""

    queryset = Device.objects.all()
    serializer_class = DeviceSerializer
    filterset_class = DeviceFilter
    search_fields = ["=serial", "=imei", "=sim"]
    ordering_fields = ["id", "created_at", "serial"]
    action_capabilities = {"add_to_database": FULFIL}

    @extend_schema(request=AddToDatabaseSerializer, responses=AddToDatabaseResultSerializer)
    @action(detail=True, methods=["post"])
    def add_to_database(self, request, pk=None):
        """Add the device as an asset of a customer's MyGeotab database (idempotent)."""
        return device_add_to_database_response(request, self.get_object())
