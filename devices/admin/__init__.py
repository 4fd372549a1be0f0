"""Devices admin, one module per entity; each module registers its ModelAdmins on import."""

from devices.admin import (
    databases,  # noqa: F401
    device,  # noqa: F401
    provisioning,  # noqa: F401
    terminations,  # noqa: F401
    trackers,  # noqa: F401
)
