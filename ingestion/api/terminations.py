"""API `termination-imports`: upload a sheet (or import from a configured source), list runs,
read a run's report (JSON, paginated and filterable by outcome, or CSV)."""

import django_filters
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response

from ingestion.admin.terminations import termination_report_response
from ingestion.models import TerminationImportRow, TerminationImportRun, TerminationSource
from ingestion.services.terminations import termination_sheet_import
from portal.api.errors import error_response
from portal.api.filters import BoundedIsoDateTimeFilter
from portal.api.pagination import KeysetPagination
from portal.roles import BILL


class TerminationImportRunSerializer(serializers.ModelSerializer):
    source = serializers.SlugRelatedField(slug_field="name", read_only=True)
    actor = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = TerminationImportRun
        fields = ["id", "source", "filename", "sheet_date", "sha256", "dry_run", "status", "total_rows",
                  "applied_count", "already_count", "unknown_count", "duplicate_count", "invalid_count",
                  "error", "duplicate_of", "actor", "started_at", "finished_at"]
        read_only_fields = fields


class ImportRequestSerializer(serializers.Serializer):
    file = serializers.FileField(required=False, help_text="The sheet (CSV or XLSX). Or give `source`.")
    source = serializers.PrimaryKeyRelatedField(
        queryset=TerminationSource.objects.exclude(kind=TerminationSource.Kind.UPLOAD), required=False,
        help_text="Fetch and import from this configured URL / folder source.",
    )
    dry_run = serializers.BooleanField(required=False, default=False)

    def validate(self, attrs):
        if bool(attrs.get("file")) == bool(attrs.get("source")):
            raise serializers.ValidationError({"file": ["Upload a file or name a source (one of them)."]})
        return attrs


class TerminationImportRowSerializer(serializers.ModelSerializer):
    class Meta:
        model = TerminationImportRow
        fields = ["row_number", "serial", "terminated_on", "outcome", "message", "device_id"]
        read_only_fields = fields


class RowPagination(KeysetPagination):
    ordering = "row_number"
    page_size = 200
    max_page_size = 5000

    def get_ordering(self, request, queryset, view):
        return ("row_number", "id")


class TerminationImportRunFilter(django_filters.FilterSet):
    started_after = BoundedIsoDateTimeFilter(field_name="started_at", lookup_expr="gte")
    started_before = BoundedIsoDateTimeFilter(field_name="started_at", lookup_expr="lt")

    class Meta:
        model = TerminationImportRun
        fields = ["status", "source", "sheet_date", "dry_run", "sha256"]


class TerminationImportRunViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Daily termination sheet imports. POST uploads a sheet (multipart `file`, optional
    `dry_run`) or imports from a configured `source`; the run comes back with its counts."""

    queryset = TerminationImportRun.objects.select_related("source", "actor")
    serializer_class = TerminationImportRunSerializer
    filterset_class = TerminationImportRunFilter
    ordering_fields = ["id", "started_at", "sheet_date"]
    parser_classes = [MultiPartParser, FormParser, JSONParser]
    required_capability = BILL

    @extend_schema(request={"multipart/form-data": ImportRequestSerializer},
                   responses={201: TerminationImportRunSerializer})
    def create(self, request, *args, **kwargs):
        data = ImportRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        upload = data.validated_data.get("file")
        run = termination_sheet_import(
            source=data.validated_data.get("source"), file=upload, filename=getattr(upload, "name", None),
            dry_run=data.validated_data["dry_run"], actor=request.user,
        )
        if run.status == TerminationImportRun.Status.FAILED and upload is not None:
            # The upload itself is bad input: a 4xx naming the field. The failed run stays
            # recorded (GET /termination-imports/?status=failed) for the audit trail.
            return error_response(f"{run.error} (import #{run.pk})", errors={"file": [run.error]})
        return Response(TerminationImportRunSerializer(run).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        parameters=[OpenApiParameter("outcome", str, enum=TerminationImportRow.Outcome.values),
                    OpenApiParameter("download", str, enum=["csv"])],
        responses={200: TerminationImportRowSerializer(many=True)},
    )
    @action(detail=True, methods=["get"], filter_backends=[], pagination_class=RowPagination)
    def report(self, request, pk=None):
        """The run's per-row report; `?download=csv` downloads it whole as CSV."""
        run = self.get_object()
        if request.query_params.get("download") == "csv":
            return termination_report_response(run)
        rows = run.rows.all()
        outcome = request.query_params.get("outcome")
        if outcome:
            if outcome not in TerminationImportRow.Outcome.values:
                raise serializers.ValidationError({"outcome": [f"Choose one of {', '.join(TerminationImportRow.Outcome.values)}."]})
            rows = rows.filter(outcome=outcome)
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(TerminationImportRowSerializer(page, many=True).data)
