"""Devices services, one module per entity; the public names are re-exported here."""

from devices.services.device import (  # noqa: F401
    DeviceTransitionError,
    device_record_event,
    device_transition,
)
