"""Celery discovers `devices.tasks`; each entity's tasks live in their own module."""
