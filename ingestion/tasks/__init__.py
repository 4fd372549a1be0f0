"""Celery discovers `ingestion.tasks`; each area's tasks live in their own module."""
from ingestion.tasks import (
    records,  # noqa: F401
    terminations,  # noqa: F401
)
