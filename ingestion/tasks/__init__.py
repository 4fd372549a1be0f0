"""Celery discovers `ingestion.tasks`; each area's tasks live in their own module."""
from ingestion.tasks import terminations  # noqa: F401
