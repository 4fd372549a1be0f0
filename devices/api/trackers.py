"""REST: `trackers` — Navixy tracker registration (FULFIL to write; reads for every role).

Create validates against the cached Navixy catalogues and queues the registration; nothing is
sent to Navixy when the input is invalid. PATCH fixes a draft or failed tracker. Actions: `register` (retry a failed registration),
`register_retry` (resend setup commands to a registered device), `refresh` (re-read from
Navixy), `bulk` (CSV/XLSX upload with `dry_run`). `apn_password` and `activation_code` are
write-only.
"""

import django_filters
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response

from devices.models import Tracker
from devices.services import trackers as svc
from portal.api.errors import Conflict
from portal.roles import FULFIL


class NavixyGroupIdField(serializers.IntegerField):
    """Written and read as the Navixy group id (0 = the default group), not the portal pk."""

    def to_representation(self, value):
        return value.navixy_id if value is not None else 0


class TrackerSerializer(serializers.ModelSerializer):
    group = NavixyGroupIdField(
        required=False, allow_null=True, min_value=0,
        help_text="Navixy group id; 0 or null = the default group.",
    )
    plugin_id = serializers.IntegerField(help_text="44 / 37 (GPS device), 35 / 68 (X-GPS mobile app)")
    model_code = serializers.CharField(max_length=64, help_text="Navixy model code, e.g. telfmb140")
    device_id = serializers.CharField(max_length=64, required=False, allow_blank=True, allow_null=True)
    label = serializers.CharField(max_length=200, allow_blank=True)  # the 1-60 rule gives the clearer message
    phone = serializers.CharField(max_length=40, required=False, allow_blank=True)
    notification_phone = serializers.CharField(max_length=40, required=False, allow_blank=True)
    notification_email = serializers.CharField(max_length=254, required=False, allow_blank=True)
    apn_name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    apn_user = serializers.CharField(max_length=200, required=False, allow_blank=True)
    apn_password = serializers.CharField(max_length=200, required=False, allow_blank=True, write_only=True,
                                         trim_whitespace=False, style={"input_type": "password"})
    activation_code = serializers.CharField(max_length=40, required=False, allow_blank=True, write_only=True)
    activation_code_used = serializers.SerializerMethodField()
    portal_device = serializers.PrimaryKeyRelatedField(read_only=True)

    class Meta:
        model = Tracker
        fields = [
            "id", "label", "group", "plugin_id", "model_code", "device_id", "phone", "apn_name", "apn_user",
            "apn_password", "activation_code", "activation_code_used", "notification_email",
            "notification_phone", "state", "state_message", "last_error_code", "field_errors",
            "navixy_tracker_id", "source_id", "source_blocked", "tariff_id", "creation_date",
            "tariff_end_date", "registered_at", "refreshed_at", "portal_device", "attempts", "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "state", "state_message", "last_error_code", "field_errors", "navixy_tracker_id", "source_id",
            "source_blocked", "tariff_id", "creation_date", "tariff_end_date", "registered_at", "refreshed_at",
            "attempts", "created_at", "updated_at",
        ]

    def get_activation_code_used(self, obj) -> bool:
        return obj.activation_code_used_at is not None

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["group"] = data["group"] or 0
        return data


class TrackerFilter(django_filters.FilterSet):
    group = django_filters.NumberFilter(field_name="group__navixy_id")
    model = django_filters.CharFilter(field_name="model_code")

    class Meta:
        model = Tracker
        fields = ["state", "plugin_id", "model_code", "device_id", "navixy_tracker_id", "portal_device"]


class RegisterRetrySerializer(serializers.Serializer):
    apn_name = serializers.CharField(max_length=40, required=False)
    apn_user = serializers.CharField(max_length=40, required=False, allow_blank=True)
    apn_password = serializers.CharField(max_length=40, required=False, allow_blank=True, trim_whitespace=False)


class BulkSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="CSV or XLSX; first row = column names")
    dry_run = serializers.BooleanField(default=True)


class TrackerViewSet(mixins.CreateModelMixin, mixins.UpdateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Navixy trackers: register one (POST), see its state and what Navixy made of it."""

    queryset = Tracker.objects.select_related("group").all()
    serializer_class = TrackerSerializer
    filterset_class = TrackerFilter
    search_fields = ["=device_id", "label", "=phone"]
    ordering_fields = ["id", "created_at", "label"]
    required_capability = FULFIL
    parser_classes = [JSONParser, FormParser, MultiPartParser]

    def perform_create(self, serializer):
        try:
            serializer.instance = svc.tracker_create(data=serializer.validated_data, actor=self.request.user)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict) from exc

    http_method_names = ["get", "post", "patch", "head", "options"]

    def perform_update(self, serializer):
        """PATCH fixes the input of a draft or failed tracker (then POST register/)."""
        try:
            serializer.instance = svc.tracker_update(tracker=serializer.instance, data=serializer.validated_data,
                                                     actor=self.request.user)
        except svc.TrackerError as exc:
            raise Conflict(str(exc)) from exc
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict) from exc

    @extend_schema(request=None, responses={202: TrackerSerializer})
    @action(detail=True, methods=["post"])
    def register(self, request, pk=None):
        """Queue (again) the registration of a draft, failed or needs-attention tracker."""
        try:
            tracker = svc.tracker_submit(tracker=self.get_object(), actor=request.user)
        except svc.TrackerError as exc:
            raise Conflict(str(exc)) from exc
        return Response(self.get_serializer(tracker).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=RegisterRetrySerializer, responses={202: None})
    @action(detail=True, methods=["post"])
    def register_retry(self, request, pk=None):
        """Resend the setup commands of a registered tracker (Navixy `tracker/register_retry`)."""
        from devices.tasks.trackers import tracker_register_retry_task

        tracker = self.get_object()
        params = RegisterRetrySerializer(data=request.data)
        params.is_valid(raise_exception=True)
        if not tracker.navixy_tracker_id:
            raise Conflict(f"Tracker {tracker.label!r} is not registered on Navixy yet.")
        if params.validated_data:
            # APN changes are saved first so the task sends them.
            for name, value in params.validated_data.items():
                setattr(tracker, name, value)
            tracker.save(update_fields=[*params.validated_data, "updated_at"])
        tracker_register_retry_task.delay_on_commit(tracker.pk, request.user.pk)
        return Response({"detail": "Setup commands will be resent.", "tracker": tracker.pk},
                        status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={202: None})
    @action(detail=True, methods=["post"])
    def refresh(self, request, pk=None):
        """Re-read the tracker from Navixy (source fields, tariff, blocked)."""
        from devices.tasks.trackers import tracker_refresh_task

        tracker = self.get_object()
        if not tracker.navixy_tracker_id:
            raise Conflict(f"Tracker {tracker.label!r} is not registered on Navixy yet.")
        tracker_refresh_task.delay_on_commit(tracker.pk)
        return Response({"detail": "Refresh queued.", "tracker": tracker.pk}, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request={"multipart/form-data": BulkSerializer}, responses={200: None})
    @action(detail=False, methods=["post"], parser_classes=[MultiPartParser, FormParser])
    def bulk(self, request):
        """Upload a CSV/XLSX of trackers. `dry_run=true` (default) only validates; otherwise the
        good rows are registered and the bad ones reported by row number."""
        params = BulkSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        upload = params.validated_data["file"]
        if upload.size > 5 * 1024 * 1024:
            raise serializers.ValidationError({"file": ["At most 5 MB per upload."]})
        try:
            rows = svc.tracker_rows_from_upload(filename=upload.name, content=upload.read())
        except svc.UploadError as exc:
            raise serializers.ValidationError({"file": [str(exc)]}) from exc
        dry_run = params.validated_data["dry_run"]
        job = None
        if not dry_run and rows:
            from portal.jobs import job_start

            # Registrations end on workers; the job (GET /api/v1/jobs/<id>/) counts them.
            job = job_start(kind="tracker_registration", total=len(rows), actor=request.user)
        results = svc.tracker_bulk_import(rows=rows, actor=request.user, dry_run=dry_run,
                                          job_id=job.pk if job else None)
        return Response({
            "dry_run": dry_run,
            "rows": len(results),
            "ok": sum(r.ok for r in results),
            "failed": sum(not r.ok for r in results),
            "results": [r.as_dict() for r in results],
            "job": job.pk if job else None,
            "job_url": request.build_absolute_uri(f"/api/v1/jobs/{job.pk}/") if job else None,
        })
