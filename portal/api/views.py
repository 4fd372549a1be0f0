import django_filters
from rest_framework import serializers, viewsets

from portal.models import VendorCall


class VendorCallSerializer(serializers.ModelSerializer):
    class Meta:
        model = VendorCall
        fields = [
            "id", "system", "method", "url", "target", "request_digest", "outcome",
            "http_status", "error_name", "error_message", "response_summary", "duration_ms",
            "attempt", "request_id", "started_at",
        ]
        read_only_fields = fields


class VendorCallFilter(django_filters.FilterSet):
    started_after = django_filters.IsoDateTimeFilter(field_name="started_at", lookup_expr="gte")
    started_before = django_filters.IsoDateTimeFilter(field_name="started_at", lookup_expr="lt")

    class Meta:
        model = VendorCall
        fields = ["system", "method", "outcome", "target", "request_id", "error_name"]


class VendorCallViewSet(viewsets.ReadOnlyModelViewSet):
    """The vendor-call ledger: every outbound call to MyAdmin, MyGeotab, DIG and Navixy."""

    queryset = VendorCall.objects.all()
    serializer_class = VendorCallSerializer
    filterset_class = VendorCallFilter
    ordering_fields = ["started_at", "duration_ms"]
