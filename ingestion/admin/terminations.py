"""Termination-sheet imports in the admin: sources (with "Import now"), runs with their counts and
per-row report (browsable and downloadable as CSV), and "Import a file" (the run's add page)."""

import csv

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from ingestion.models import (
    TerminationImportRow,
    TerminationImportRun,
    TerminationSource,
)
from ingestion.services.termination_jobs import termination_upload_store
from ingestion.services.terminations import termination_import_report_rows
from ingestion.tasks.terminations import termination_sheet_import_now, termination_sheet_import_upload
from portal.admin_confirm import confirm_action
from portal.admin_kit import PortalAdminMixin, ScalableAdminMixin
from portal.jobs import job_start, redirect_to_job, redirect_to_jobs
from portal.roles import (
    BILL,
    VIEW,
    RoleAwareAdminMixin,
    has_capability,
    require_capability,
)


@admin.register(TerminationSource)
class TerminationSourceAdmin(PortalAdminMixin, RoleAwareAdminMixin, admin.ModelAdmin):
    list_display = ("name", "kind", "url", "folder_path", "enabled", "created_at")
    list_filter = ("kind", "enabled")
    actions = ["import_now", "dry_run_now"]

    @admin.action(description="Import now (queued for a worker)")
    @require_capability(BILL)
    def import_now(self, request, queryset):
        # Applying a sheet terminates devices: staff confirm, seeing which sources it reads.
        page = confirm_action(
            request, queryset, title="Import termination sheets", count=queryset.count(),
            effect="fetch the latest termination sheet of {count} source(s) and mark every device it lists "
                   "terminated: their data is no longer accepted or forwarded to DIG, their Navixy trackers "
                   "and open order items are flagged",
            action_name="import_now", noun=("source", "sources"))
        if page is not None:
            return page
        return self._enqueue(request, queryset, dry_run=False)

    @admin.action(description="Dry run now (report only, changes nothing)")
    @require_capability(BILL)
    def dry_run_now(self, request, queryset):
        return self._enqueue(request, queryset, dry_run=True)

    def _enqueue(self, request, queryset, *, dry_run):
        """One job per source (each is its own import run); staff land on its progress."""
        sources = list(queryset.exclude(kind=TerminationSource.Kind.UPLOAD))
        if not sources:
            self.message_user(request, "Upload sources have nothing to fetch: use 'Import a file'.",
                              level=messages.WARNING)
            return None
        jobs = []
        for source in sources:
            job = job_start(kind="termination_import", total=0, actor=request.user,
                            target=f"ingestion.TerminationSource:{source.pk}")
            termination_sheet_import_now.delay_on_commit(source_id=source.pk, actor_id=request.user.pk,
                                                         dry_run=dry_run, job_id=job.pk)
            jobs.append(job)
        self.message_user(request, f"{'Dry run' if dry_run else 'Import'} queued for "
                                   f"{', '.join(s.name for s in sources)}.")
        return redirect_to_jobs(jobs)


class ImportFileForm(forms.ModelForm):
    """'Import a file': upload a termination sheet (CSV or XLSX)."""

    file = forms.FileField(help_text="The termination summary sheet, CSV or XLSX.")
    dry_run = forms.BooleanField(required=False, help_text="Only report what would change.")

    class Meta:
        model = TerminationImportRun
        fields = []


@admin.register(TerminationImportRun)
class TerminationImportRunAdmin(PortalAdminMixin, RoleAwareAdminMixin, admin.ModelAdmin):
    list_display = ("id", "started_at", "source", "filename", "sheet_date", "status", "dry_run", "total_rows",
                    "applied_count", "already_count", "unknown_count", "duplicate_count", "invalid_count",
                    "actor")
    list_filter = ("status", "source", "dry_run", "sheet_date")
    search_fields = ("=sha256", "filename")
    list_select_related = ("source", "actor")
    show_full_result_count = False
    readonly_fields = ("source", "filename", "sheet_date", "sha256", "claims_sheet", "dry_run", "status",
                       "total_rows", "applied_count", "already_count", "unknown_count", "duplicate_count",
                       "invalid_count", "error", "duplicate_of", "actor", "started_at", "finished_at",
                       "report_links", "rows_needing_attention")

    @admin.display(description="Report")
    def report_links(self, obj):
        rows = reverse("admin:ingestion_terminationimportrow_changelist") + f"?run__id__exact={obj.pk}"
        download = reverse("admin:ingestion_terminationimportrun_report", args=[obj.pk])
        return format_html('<a href="{}">Browse all rows</a> · <a href="{}">Download CSV</a>', rows, download)

    @admin.display(description="Rows needing attention (first 50)")
    def rows_needing_attention(self, obj):
        rows = list(obj.rows.exclude(outcome=TerminationImportRow.Outcome.APPLIED).order_by("row_number")
                    .values_list("row_number", "serial", "outcome", "message")[:50])
        if not rows:
            return "None"
        body = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", rows)
        return format_html("<table><tr><th>Row</th><th>Serial</th><th>Outcome</th><th>Message</th></tr>{}</table>",
                           body)

    def get_urls(self):
        extra = [path("<int:pk>/report.csv", self.admin_site.admin_view(self.report_csv),
                      name="ingestion_terminationimportrun_report")]
        return extra + super().get_urls()

    def report_csv(self, request, pk):
        if not has_capability(request.user, VIEW):
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied
        run = get_object_or_404(TerminationImportRun, pk=pk)
        return termination_report_response(run)

    # "Add" is "Import a file": the run is created by the service, never by hand.
    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = ImportFileForm
            kwargs["fields"] = ["file", "dry_run"]
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return [("Import a file", {"fields": ["file", "dry_run"]})]
        return super().get_fieldsets(request, obj)

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else ()

    def has_add_permission(self, request):
        return has_capability(request.user, BILL) and super().has_add_permission(request)

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def add_view(self, request, form_url="", extra_context=None):
        """A valid upload is kept for a worker, which imports it as a job; staff land on the
        job's page (a progress bar per batch, then the run, its report and the bad rows). The
        run itself is written by the import, never by this form."""
        if request.method == "POST":
            if not self.has_add_permission(request):
                raise PermissionDenied
            form = ImportFileForm(request.POST, request.FILES)
            if form.is_valid():
                upload = form.cleaned_data["file"]
                dry_run = form.cleaned_data["dry_run"]
                job = job_start(kind="termination_import", total=0, actor=request.user)
                stored = termination_upload_store(upload)
                termination_sheet_import_upload.delay_on_commit(
                    upload_name=stored, filename=upload.name[:255], job_id=job.pk, actor_id=request.user.pk,
                    dry_run=dry_run)
                self.message_user(request, f"{upload.name}: {'dry run' if dry_run else 'import'} queued.")
                return redirect_to_job(job)
        return super().add_view(request, form_url, extra_context)


@admin.register(TerminationImportRow)
class TerminationImportRowAdmin(ScalableAdminMixin, RoleAwareAdminMixin, admin.ModelAdmin):
    list_display = ("run", "row_number", "serial", "terminated_on", "outcome", "message", "device_id")
    list_filter = ("outcome",)
    search_fields = ("=serial",)
    show_full_result_count = False
    list_per_page = 200

    def lookup_allowed(self, lookup, value, request=None):
        # The run page links here filtered by run; a job's failures link to their row.
        return (lookup in ("run__id__exact", "run", "row_number")
                or super().lookup_allowed(lookup, value, request))

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class _Echo:
    def write(self, value):
        return value


def termination_report_response(run: TerminationImportRun) -> StreamingHttpResponse:
    writer = csv.writer(_Echo())
    response = StreamingHttpResponse((writer.writerow(row) for row in termination_import_report_rows(run)),
                                     content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="termination-import-{run.pk}-report.csv"'
    return response
