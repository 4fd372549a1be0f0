"""Devices admin, one module per entity; each module registers its ModelAdmins on import."""

from devices.admin import device  # noqa: F401
from devices.admin import terminations  # noqa: F401
from devices.admin import databases  # noqa: F401
from devices.admin import trackers  # noqa: F401
from devices.admin import provisioning  # noqa: F401
