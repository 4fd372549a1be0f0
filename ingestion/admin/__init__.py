"""Ingestion admin, one module per area; each registers its ModelAdmins on import."""
from ingestion.admin import (
    records,  # noqa: F401
    terminations,  # noqa: F401
)
