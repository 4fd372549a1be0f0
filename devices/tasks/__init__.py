"""Celery discovers `devices.tasks`; each entity's tasks live in their own module."""
from devices.tasks import trackers  # noqa: F401
from devices.tasks import databases  # noqa: F401
from devices.tasks import provisioning  # noqa: F401
