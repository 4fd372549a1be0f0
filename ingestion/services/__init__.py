"""Ingestion services, one module per area."""
from ingestion.services.terminations import termination_import_scheduled, termination_sheet_import  # noqa: F401
