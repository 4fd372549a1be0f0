"""API `terminations`: list and read terminations (any role); terminate a device through MyAdmin,
cancel, reconcile (BILL); the MyAdmin termination reasons."""

import django_filters
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from devices.models import Device, Termination
from devices.services.terminations import (
    TerminationConflict,
    TerminationError,
    device_terminate,
    termination_cancel,
    termination_reasons,
    termination_reconcile,
)
from portal.api.errors import Conflict
from portal.roles import BILL


class TerminationSerializer(serializers.ModelSerializer):
    actor = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Termination
        fields = ["id", "device", "serial", "source", "status", "terminated_on", "reason_id", "reason_name",
                  "account", "imei", "comments", "previous_status", "error", "actor", "import_run",
                  "applied_at", "created_at", "updated_at"]
        read_only_fields = fields


class TerminateRequestSerializer(serializers.Serializer):
    device = serializers.PrimaryKeyRelatedField(queryset=Device.objects.all(), required=False,
                                                help_text="Device id (or give `serial`).")
    serial = serializers.CharField(required=False, max_length=32)
    reason_id = serializers.IntegerField(help_text="An id from GET /terminations/reasons/ (MyAdmin).")
    comments = serializers.CharField(required=False, allow_blank=True, max_length=500, default="")

    def validate(self, attrs):
        device = attrs.get("device")
        serial = (attrs.get("serial") or "").strip().upper()
        if device is None and not serial:
            raise serializers.ValidationError({"device": ["Give the device id or its serial."]})
        if device is None:
            device = Device.objects.filter(serial=serial).first()
            if device is None:
                raise serializers.ValidationError({"serial": [f"No device with serial {serial}."]})
        attrs["device"] = device
        return attrs


class ReasonSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class TerminationFilter(django_filters.FilterSet):
    terminated_after = django_filters.DateFilter(field_name="terminated_on", lookup_expr="gte")
    terminated_before = django_filters.DateFilter(field_name="terminated_on", lookup_expr="lte")
    serial = django_filters.CharFilter(lookup_expr="iexact")
    reason = django_filters.CharFilter(field_name="reason_name", lookup_expr="iexact")

    class Meta:
        model = Termination
        fields = ["source", "status", "account", "reason_id", "device", "import_run", "terminated_on"]


class TerminationViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Device terminations: from the daily sheet, made in the portal, or reconciled from MyAdmin.
    POST terminates a device's billing in MyAdmin (TerminateDeviceBilling; billing role)."""

    queryset = Termination.objects.select_related("actor")
    serializer_class = TerminationSerializer
    filterset_class = TerminationFilter
    search_fields = ["=serial", "=account", "=imei"]
    ordering_fields = ["id", "created_at", "terminated_on"]
    required_capability = BILL
    action_capabilities = {"create": BILL, "cancel": BILL, "reconcile": BILL}

    @extend_schema(request=TerminateRequestSerializer, responses={201: TerminationSerializer, 409: None})
    def create(self, request, *args, **kwargs):
        data = TerminateRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            termination = device_terminate(device=data.validated_data["device"],
                                           reason_id=data.validated_data["reason_id"],
                                           comments=data.validated_data.get("comments", ""), actor=request.user)
        except TerminationConflict as exc:
            raise Conflict(str(exc)) from None
        except TerminationError as exc:
            raise serializers.ValidationError({"reason_id": [str(exc)]}) from None
        # 201 with the row whatever the outcome: failed / unknown_outcome are states to show, the
        # request itself was accepted and recorded.
        return Response(TerminationSerializer(termination).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: TerminationSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        try:
            termination = termination_cancel(termination=self.get_object(), actor=request.user)
        except TerminationError as exc:
            raise Conflict(str(exc)) from None
        return Response(TerminationSerializer(termination).data)

    @extend_schema(request=None, responses={200: TerminationSerializer})
    @action(detail=True, methods=["post"])
    def reconcile(self, request, pk=None):
        return Response(TerminationSerializer(termination_reconcile(termination=self.get_object())).data)

    @extend_schema(responses={200: ReasonSerializer(many=True)})
    @action(detail=False, methods=["get"], pagination_class=None, filter_backends=[])
    def reasons(self, request):
        return Response([{"id": pk, "name": name} for pk, name in termination_reasons()])
