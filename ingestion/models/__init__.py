"""Ingestion app models, one module per area; re-exported here for `ingestion.models.X`."""
from ingestion.models.records import DeviceFeed, DeviceRecord, ForwarderState, RecordIntakeKey  # noqa: F401
from ingestion.models.terminations import TerminationImportRow, TerminationImportRun, TerminationSource  # noqa: F401
