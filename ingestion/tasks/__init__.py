"""Celery discovers `ingestion.tasks`; each area's tasks live in their own module."""
