"""POST /api/v1/records: device records in DIG's own format. The view parses and validates the
JSON itself (one pass over plain dicts) instead of a DRF serializer per record: at 5000
records per request that is the difference between milliseconds and a second (README, DIG section).
GET lists stored records and their delivery state."""

import django_filters
from django.core.exceptions import RequestDataTooBig
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    extend_schema,
    inline_serializer,
)
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.parsers import JSONParser
from rest_framework.response import Response

from ingestion.models import DeviceRecord
from ingestion.services.records import IntakeError, records_intake
from portal.api.errors import error_response


class DeviceRecordSerializer(serializers.ModelSerializer):
    class Meta:
        model = DeviceRecord
        fields = ("id", "device", "serial", "record_type", "recorded_at", "status", "hold_reason", "cause",
                  "received_at", "sent_at", "attempts")
        read_only_fields = fields


class DeviceRecordFilter(django_filters.FilterSet):
    serial = django_filters.CharFilter(lookup_expr="iexact")

    class Meta:
        model = DeviceRecord
        fields = ("status", "record_type", "device")


_RecordDoc = inline_serializer(
    "DigRecord", many=True,
    fields={
        "Type": serializers.ChoiceField(choices=["GpsRecord", "StatusRecord", "GenericStatusRecord", "GenericFaultRecord",
                                                 "AccelerationRecord", "BinaryRecord", "BluetoothRecord",
                                                 "DriverChangeRecord", "J1708FaultRecord", "J1939FaultRecord",
                                                 "ObdiiFaultRecord", "VinRecord"]),
        "DateTime": serializers.DateTimeField(help_text="ISO-8601 with a time zone, e.g. 2026-01-31T12:00:00.000000Z"),
        "SerialNo": serializers.CharField(help_text="The device's Geotab serial"),
    },
)
_IntakeAnswer = inline_serializer(
    "RecordIntakeResult",
    fields={
        "accepted": serializers.IntegerField(help_text="Valid records, stored (repeats included)"),
        "duplicates": serializers.IntegerField(help_text="Accepted records already stored (same serial, type, DateTime)"),
        "held": serializers.IntegerField(help_text="Stored but held: the device is not assigned to a database yet"),
        "rejected": serializers.IntegerField(),
        "errors": inline_serializer("RecordError", fields={
            "index": serializers.IntegerField(), "field": serializers.CharField(), "message": serializers.CharField(),
        }, many=True),
    },
)


class RecordViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Device records in DIG's format: intake (POST) and delivery state (GET)."""

    queryset = DeviceRecord.objects.all()
    serializer_class = DeviceRecordSerializer
    filterset_class = DeviceRecordFilter
    ordering_fields = ("id", "received_at", "recorded_at")
    # The body is read raw in `create`; this parser only documents the media type.
    parser_classes = (JSONParser,)

    @extend_schema(
        request=_RecordDoc,
        responses={202: _IntakeAnswer, 400: OpenApiTypes.OBJECT, 409: OpenApiTypes.OBJECT, 413: OpenApiTypes.OBJECT},
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=False,
                                     description="Makes a retried POST harmless: the first answer is replayed.")],
        examples=[OpenApiExample("GPS", request_only=True, value=[{
            "Type": "GpsRecord", "DateTime": "2026-01-31T12:00:00Z", "SerialNo": "CX0000000001",
            "Latitude": 43.65, "Longitude": -79.38, "Speed": 42.0, "IsGpsValid": True, "IsIgnitionOn": True}])],
        description="1–5000 records. Each is validated; valid ones are committed before the answer, "
                    "invalid ones are listed with their index and field. Repeats are stored once.",
    )
    def create(self, request, *args, **kwargs):
        try:
            body = request._request.body
        except RequestDataTooBig:
            return error_response("The body is too large.", code="too_large", status_code=413)
        try:
            result = records_intake(
                body=body, user=request.user, idempotency_key=request.headers.get("Idempotency-Key", "")
            )
        except IntakeError as exc:
            return error_response(exc.detail, code=exc.code, status_code=exc.status)
        response = Response(result.as_dict(), status=status.HTTP_202_ACCEPTED)
        if result.replayed:
            response["Idempotent-Replayed"] = "true"
        return response
