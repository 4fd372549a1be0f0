"""CSV and XLSX exports of an admin changelist, exactly as filtered, streamed.

``ExportMixin`` adds "Export CSV" / "Export XLSX" buttons to the changelist (they carry the
list's current filters, search and ordering) and the same two actions for selected rows.
Columns are ``export_fields`` (field paths, ``"order__purchase_order_number"`` allowed) or every
concrete field. Rows are read with ``values_list().iterator()``, so memory stays flat and the
query count does not grow with the row count.

Cells that a spreadsheet would run as a formula (= + - @, tab, CR at the start) are prefixed
with ``'`` (OWASP "CSV injection"), in CSV and XLSX alike.
"""

from __future__ import annotations

import csv
import datetime
import tempfile

from django.contrib import messages
from django.core.exceptions import FieldDoesNotExist, PermissionDenied
from django.db.models.constants import LOOKUP_SEP
from django.http import FileResponse, StreamingHttpResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils import timezone
from django.utils.text import capfirst

from portal.audit import SECRET_FIELD
from portal.roles import VIEW, has_capability

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
CHUNK = 2000
# XLSX sheets stop at 1,048,576 rows; beyond that we say so instead of writing a broken file.
XLSX_MAX_ROWS = 1_048_575


def neutralise(value):
    """A cell value safe to open in a spreadsheet: text starting like a formula gets a ``'``."""
    if value is None:
        return ""
    if isinstance(value, datetime.datetime):
        if timezone.is_aware(value):
            value = timezone.localtime(value)
        return value.replace(tzinfo=None, microsecond=0)
    if isinstance(value, (bool, int, float, datetime.date)):
        return value
    text = str(value)
    if text.startswith(FORMULA_PREFIXES):
        return "'" + text
    return text


class _Echo:
    def write(self, value):
        return value


def _field_label(model, field_path: str) -> str:
    opts, label = model._meta, field_path
    for part in field_path.split(LOOKUP_SEP):
        try:
            field = opts.get_field(part)
        except FieldDoesNotExist:
            return field_path
        label = getattr(field, "verbose_name", part)
        if getattr(field, "related_model", None) is not None:
            opts = field.related_model._meta
    return capfirst(str(label)) if len(field_path.split(LOOKUP_SEP)) == 1 else field_path.replace(LOOKUP_SEP, " ")


def export_rows(queryset, fields):
    for row in queryset.values_list(*fields).iterator(chunk_size=CHUNK):
        yield [neutralise(v) for v in row]


def export_csv_response(queryset, fields, *, filename: str) -> StreamingHttpResponse:
    model = queryset.model
    writer = csv.writer(_Echo())

    def stream():
        # A BOM so spreadsheet programs read UTF-8 names correctly.
        yield "\ufeff" + writer.writerow([_field_label(model, f) for f in fields])
        for row in export_rows(queryset, fields):
            yield writer.writerow(["" if v is None else v for v in row])

    response = StreamingHttpResponse(stream(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}.csv"'
    return response


def export_xlsx_response(queryset, fields, *, filename: str) -> FileResponse:
    from openpyxl import Workbook

    model = queryset.model
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title=str(model._meta.verbose_name_plural)[:31] or "export")
    sheet.append([_field_label(model, f) for f in fields])
    for n, row in enumerate(export_rows(queryset, fields)):
        if n >= XLSX_MAX_ROWS:
            sheet.append(["(truncated: the XLSX format holds at most 1,048,576 rows; use CSV)"])
            break
        sheet.append(row)
    # Write-only workbooks stream rows to a temporary file; the response streams that file.
    spool = tempfile.TemporaryFile()  # noqa: SIM115 -- FileResponse closes it after streaming
    workbook.save(spool)
    spool.seek(0)
    return FileResponse(
        spool,
        as_attachment=True,
        filename=f"{filename}.xlsx",
        content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    )


class ExportMixin:
    """Admin mixin: export the filtered changelist (buttons) or the selected rows (actions)."""

    export_fields: tuple[str, ...] | None = None
    export_capability = VIEW

    def get_export_fields(self, request) -> list[str]:
        if self.export_fields:
            fields = list(self.export_fields)
        else:
            fields = [f.name if not f.is_relation else f.attname for f in self.model._meta.concrete_fields
                      if not type(f).__name__.startswith("Encrypted")]
        # Secrets never leave in a spreadsheet, whatever export_fields says.
        return [f for f in fields if not SECRET_FIELD.search(f.split(LOOKUP_SEP)[-1])]

    def _export_name(self) -> str:
        opts = self.model._meta
        return f"{opts.app_label}-{opts.model_name}-{timezone.now():%Y%m%d-%H%M%S}"

    def _export(self, request, queryset, fmt: str):
        if not has_capability(request.user, self.export_capability) or not self.has_view_permission(request):
            raise PermissionDenied("Your role does not allow exports.")
        fields = self.get_export_fields(request)
        if fmt == "xlsx":
            return export_xlsx_response(queryset, fields, filename=self._export_name())
        return export_csv_response(queryset, fields, filename=self._export_name())

    # --- changelist buttons: the whole filtered list
    def get_urls(self):
        opts = self.model._meta
        info = opts.app_label, opts.model_name
        return [
            path("export/<str:fmt>/", self.admin_site.admin_view(self.export_view), name=f"{info[0]}_{info[1]}_export"),
        ] + super().get_urls()

    def export_view(self, request, fmt: str):
        if fmt not in ("csv", "xlsx"):
            raise PermissionDenied("Unknown export format.")
        changelist = self.get_changelist_instance(request)
        # The changelist's own queryset: same filters, search and ordering the staff see.
        return self._export(request, changelist.get_queryset(request), fmt)

    def changelist_view(self, request, extra_context=None):
        extra_context = dict(extra_context or {})
        opts = self.model._meta
        try:
            base = reverse(f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}_export", args=["csv"])
        except NoReverseMatch:  # this admin's URLs were built without the mixin
            base = None
        if base and has_capability(request.user, self.export_capability):
            query = request.GET.urlencode()
            suffix = f"?{query}" if query else ""
            extra_context["portal_export_links"] = [
                ("Export CSV", base + suffix),
                ("Export XLSX", base.replace("/export/csv/", "/export/xlsx/") + suffix),
            ]
        return super().changelist_view(request, extra_context=extra_context)

    # --- actions: the selected rows
    def get_actions(self, request):
        actions = super().get_actions(request)
        if has_capability(request.user, self.export_capability):
            for name, func, label in (
                ("export_selected_csv", ExportMixin._action_csv, "Export selected as CSV"),
                ("export_selected_xlsx", ExportMixin._action_xlsx, "Export selected as XLSX"),
            ):
                actions[name] = (func, name, label)
        return actions

    def _action_csv(self, request, queryset):
        return self._export(request, queryset.order_by(*self.get_ordering(request) or ["-pk"]), "csv")

    def _action_xlsx(self, request, queryset):
        if queryset.count() > XLSX_MAX_ROWS:
            self.message_user(request, "Too many rows for XLSX; use CSV.", level=messages.ERROR)
            return None
        return self._export(request, queryset.order_by(*self.get_ordering(request) or ["-pk"]), "xlsx")
