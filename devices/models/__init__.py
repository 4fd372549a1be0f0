"""Devices app models, one module per entity; re-exported here for `devices.models.X`."""

from devices.models.database import CustomerDatabase, CustomerDatabaseAccount  # noqa: F401
from devices.models.device import Device, DeviceEvent  # noqa: F401
from devices.models.provisioning import ProvisioningRequest  # noqa: F401
from devices.models.termination import Termination  # noqa: F401
from devices.models.tracker import NavixyGroup, NavixyModel, NavixyPlugin, Tracker, TrackerEvent  # noqa: F401
