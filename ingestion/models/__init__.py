"""Ingestion app models, one module per area; re-exported here for `ingestion.models.X`."""
from ingestion.models.records import (  # noqa: F401
    DeviceFeed,
    DeviceQueueClock,
    DeviceRecord,
    ForwarderState,
    RecordIntakeKey,
)
from ingestion.models.terminations import TerminationImportRow, TerminationImportRun, TerminationSource  # noqa: F401
