import django_filters
from rest_framework import serializers, viewsets

from portal.api.filters import BoundedIsoDateTimeFilter
from portal.models import Job, VendorCall


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
    started_after = BoundedIsoDateTimeFilter(field_name="started_at", lookup_expr="gte")
    started_before = BoundedIsoDateTimeFilter(field_name="started_at", lookup_expr="lt")

    class Meta:
        model = VendorCall
        fields = ["system", "method", "outcome", "target", "request_id", "error_name"]


class VendorCallViewSet(viewsets.ReadOnlyModelViewSet):
    """The vendor-call ledger: every outbound call to MyAdmin, MyGeotab, DIG and Navixy."""

    queryset = VendorCall.objects.all()
    serializer_class = VendorCallSerializer
    filterset_class = VendorCallFilter
    ordering_fields = ["started_at", "duration_ms"]


class JobViewSet(viewsets.ReadOnlyModelViewSet):
    """Recorded long work (provisioning runs, imports, syncs) with live progress counters."""

    queryset = Job.objects.all()
    ordering_fields = ["id"]
    filterset_fields = ["kind", "status", "request_id"]

    def get_serializer_class(self):
        return JobSerializer

    def retrieve(self, request, *args, **kwargs):
        from rest_framework.response import Response

        from portal.jobs import job_progress

        return Response(job_progress(job=self.get_object()))


class JobSerializer(serializers.ModelSerializer):
    percent = serializers.IntegerField(read_only=True)

    class Meta:
        model = Job
        fields = ["id", "kind", "status", "total", "done", "failed", "percent", "result", "target",
                  "request_id", "created_at", "finished_at"]
        read_only_fields = fields
