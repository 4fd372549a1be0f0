"""Ingestion services, one module per area."""
from ingestion.services.records import (  # noqa: F401,E501
    records_hold_for_devices,
    records_intake,
    records_prune,
    records_release_after_termination_cancelled,
    records_release_for_devices,
    records_release_sweep,
    records_replay,
)
from ingestion.services.terminations import termination_import_scheduled, termination_sheet_import  # noqa: F401
