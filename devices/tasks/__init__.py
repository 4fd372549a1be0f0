"""Celery discovers `devices.tasks`; each entity's tasks live in their own module."""
from devices.tasks import (
    databases,  # noqa: F401
    provisioning,  # noqa: F401
    trackers,  # noqa: F401
)
