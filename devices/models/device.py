"""The Geotab device (its serial) and its recorded history."""

from django.conf import settings
from django.db import models


class Device(models.Model):
    """A Geotab serial minted on a partner account, and the physical unit assigned to it."""

    class Status(models.TextChoices):
        PROVISIONED = "provisioned", "Provisioned"
        ASSIGNED = "assigned", "Assigned (IMEI/SIM)"
        SHIPPED = "shipped", "Shipped"
        ACTIVE = "active", "Active (data flowing)"
        SUSPENDED = "suspended", "Suspended"
        TERMINATED = "terminated", "Terminated"

    class ProductType(models.TextChoices):
        CUSTOM_DEVICE = "CustomDevice", "CustomDevice"
        CUSTOM_VEHICLE_DEVICE = "CustomVehicleDevice", "CustomVehicleDevice"

    # Explicit lifecycle: which status may follow which. Enforced by devices.services.device_transition.
    TRANSITIONS = {
        Status.PROVISIONED: {Status.ASSIGNED, Status.SHIPPED, Status.ACTIVE, Status.SUSPENDED, Status.TERMINATED},
        Status.ASSIGNED: {Status.PROVISIONED, Status.SHIPPED, Status.ACTIVE, Status.SUSPENDED, Status.TERMINATED},
        Status.SHIPPED: {Status.ACTIVE, Status.SUSPENDED, Status.TERMINATED},
        Status.ACTIVE: {Status.SUSPENDED, Status.TERMINATED},
        Status.SUSPENDED: {Status.ACTIVE, Status.TERMINATED},
        Status.TERMINATED: set(),
    }

    serial = models.CharField(max_length=12, unique=True)
    product_id = models.PositiveIntegerField()
    product_type = models.CharField(max_length=32, choices=ProductType.choices)
    # Indexed by device_erp_id (erp_no, -id) below; a second index of its own would only slow writes.
    erp_no = models.CharField("partner account (ERP no.)", max_length=32)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PROVISIONED)
    imei = models.CharField("IMEI", max_length=15, null=True, blank=True, unique=True)
    sim = models.CharField("SIM / ICCID", max_length=22, null=True, blank=True, unique=True)

    # Contract, as last set or read from MyAdmin.
    comments = models.CharField(max_length=300, blank=True)
    promo_code = models.CharField(max_length=64, blank=True)
    group_id = models.CharField(max_length=64, blank=True)

    # Readiness for data: the MyGeotab database that owns the serial (GetDeviceDatabaseNamesAsync).
    database_name = models.CharField(max_length=120, blank=True)
    ready_for_data_at = models.DateTimeField(null=True, blank=True)
    mygeotab_device_id = models.CharField(max_length=64, blank=True)

    terminated_at = models.DateTimeField(null=True, blank=True)
    # The intent that minted this serial (None for serials imported from elsewhere).
    provisioning_request = models.ForeignKey(
        "devices.ProvisioningRequest", null=True, blank=True, on_delete=models.PROTECT, related_name="devices"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["status", "-id"], name="device_status_id"),
            models.Index(fields=["erp_no", "-id"], name="device_erp_id"),
            models.Index(fields=["product_type", "-id"], name="device_product_id"),  # admin list filter
            # Exact matches only (the API's filter): a plain index, without the LIKE-pattern twin
            # that db_index=True adds on PostgreSQL. Every index is written when a device changes
            # status, which the daily termination sheet does 100,000 times at once.
            models.Index(fields=["database_name"], name="device_database_name"),
        ]

    def __str__(self):
        return self.serial

    @property
    def is_terminated(self) -> bool:
        return self.status == self.Status.TERMINATED

    @property
    def is_ready_for_data(self) -> bool:
        return bool(self.database_name) and not self.is_terminated


class DeviceEvent(models.Model):
    """History of a device: every status change and notable action, with who and why."""

    # No database constraint, as on other append-only logs written in bulk: the rows come from
    # services that hold the device (often locked), and a termination import or a forwarder's
    # first data writes thousands per transaction, where the per-row check cost 0.55 s per
    # 100,000. Deleting a device still deletes its history (the ORM's cascade).
    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="events", db_constraint=False)
    kind = models.CharField(max_length=32)  # e.g. "status", "assigned", "contract", "terminated"
    from_status = models.CharField(max_length=16, blank=True)
    to_status = models.CharField(max_length=16, blank=True)
    message = models.CharField(max_length=500, blank=True)
    data = models.JSONField(default=dict, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    request_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.device_id} {self.kind} {self.from_status}->{self.to_status}"
