"""Daily termination sheet imports: where sheets come from, each run, and its per-row report."""

from django.conf import settings
from django.db import models
from django.db.models import Q


class TerminationSource(models.Model):
    """Where the daily termination sheet is fetched from (configured by staff in the admin)."""

    class Kind(models.TextChoices):
        URL = "url", "URL (CSV or XLSX export)"
        FOLDER = "folder", "Drop folder"
        UPLOAD = "upload", "Upload (admin / API)"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    url = models.URLField(max_length=500, blank=True, help_text="For URL sources: the sheet export (CSV or XLSX).")
    folder_path = models.CharField(
        max_length=500, blank=True,
        help_text="For folder sources: the newest .csv/.xlsx file there is imported; "
                  "imported files are moved to an 'imported' subfolder.",
    )
    enabled = models.BooleanField(default=True, help_text="Disabled sources are skipped by the scheduled import.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def clean(self):
        from django.core.exceptions import ValidationError

        if self.kind == self.Kind.URL and not self.url:
            raise ValidationError({"url": "A URL source needs a URL."})
        if self.kind == self.Kind.FOLDER and not self.folder_path:
            raise ValidationError({"folder_path": "A folder source needs a folder path."})


class TerminationImportRun(models.Model):
    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        PARTIAL = "partial", "Partial (some rows invalid)"
        FAILED = "failed", "Failed"
        DUPLICATE = "duplicate", "No-op (sheet already imported)"
        DRY_RUN = "dry_run", "Dry run"

    source = models.ForeignKey(TerminationSource, on_delete=models.PROTECT, related_name="runs")
    filename = models.CharField(max_length=255, blank=True)
    sheet_date = models.DateField(null=True, blank=True, help_text="Latest termination date in the sheet.")
    sha256 = models.CharField(max_length=64, blank=True, db_index=True)
    # Set while the run holds the sheet (running or applied): the unique constraint below makes
    # "the same sheet is applied once" hold even with two beats or two clicks at the same moment.
    claims_sheet = models.BooleanField(default=False)
    dry_run = models.BooleanField(default=False)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    total_rows = models.PositiveIntegerField(default=0)
    applied_count = models.PositiveIntegerField(default=0)
    already_count = models.PositiveIntegerField("already terminated", default=0)
    unknown_count = models.PositiveIntegerField("unknown serials", default=0)
    duplicate_count = models.PositiveIntegerField("duplicate rows", default=0)
    invalid_count = models.PositiveIntegerField("invalid rows", default=0)
    error = models.TextField(blank=True)
    duplicate_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    started_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["source", "sha256"], condition=Q(claims_sheet=True), name="termination_run_sheet_once",
            ),
        ]

    def __str__(self):
        return f"Import #{self.pk} {self.filename or self.source} ({self.get_status_display()})"


class TerminationImportRow(models.Model):
    """One line of a run's report: what happened to one sheet row and why."""

    class Outcome(models.TextChoices):
        APPLIED = "applied", "Applied"
        ALREADY = "already_terminated", "Already terminated"
        UNKNOWN = "unknown_serial", "Unknown serial"
        DUPLICATE = "duplicate", "Duplicate row"
        INVALID = "invalid", "Invalid row"

    # Indexed by "termination_row_order" (run first), which also serves the foreign key. No
    # database constraint: the rows are written only by their run's import, in bulk, and a
    # per-row constraint check on the same run row cost 0.3 s of a 100,000-row import. Deleting
    # a run still deletes its rows (the ORM's cascade); device_id is a plain column likewise.
    run = models.ForeignKey(TerminationImportRun, on_delete=models.CASCADE, related_name="rows", db_index=False,
                            db_constraint=False)
    row_number = models.PositiveIntegerField()
    serial = models.CharField(max_length=64, blank=True)
    terminated_on = models.DateField(null=True, blank=True)
    outcome = models.CharField(max_length=20, choices=Outcome.choices)
    message = models.CharField(max_length=300, blank=True)
    device_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["run", "row_number"]
        indexes = [
            models.Index(fields=["run", "row_number"], name="termination_row_order"),  # the admin list's order
            models.Index(fields=["run", "outcome", "row_number"], name="termination_row_outcome"),
        ]

    def __str__(self):
        return f"row {self.row_number}: {self.serial} {self.outcome}"
