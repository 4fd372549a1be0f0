"""Devices API; ROUTES is collected by portal.api.router."""

from devices.api.device import DeviceViewSet

ROUTES = [
    ("devices", DeviceViewSet, "device"),
    ("customer-databases", __import__("devices.api.databases", fromlist=["_"]).CustomerDatabaseViewSet, "customer-database"),
    ("terminations", __import__("devices.api.terminations", fromlist=["_"]).TerminationViewSet, "termination"),
    ("trackers", __import__("devices.api.trackers", fromlist=["_"]).TrackerViewSet, "tracker"),
    ("provisioning-requests", __import__("devices.api.provisioning", fromlist=["_"]).ProvisioningRequestViewSet, "provisioning-request"),
]
