"""Marketplace orders: the partner account, the order header and its items, the shipment, the
order's history, and the record of each intake run.

Field names follow the partner shipping API (reference geotab.md §3) in snake_case, so a reader
can put the vendor payload and the row side by side.
"""

from django.conf import settings
from django.db import models


class Product(models.Model):
    """The catalogue of the integrator's own product codes as they appear on Marketplace orders,
    and which MyAdmin product id a serial for that product is minted with."""

    class ProductId(models.IntegerChoices):
        CUSTOM_DEVICE = 10032, "10032 CustomDevice"
        CUSTOM_VEHICLE_DEVICE = 10184, "10184 CustomVehicleDevice"

    code = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=200, blank=True)
    # Null for accessories (harnesses, brackets): they ship but get no serial.
    myadmin_product_id = models.PositiveIntegerField(
        "MyAdmin product id", choices=ProductId.choices, null=True, blank=True
    )

    class Meta:
        ordering = ["code"]

    def __str__(self):
        return self.code


class Account(models.Model):
    """A partner ERP account orders are placed under (the account serials are minted on)."""

    account_id = models.CharField("account id (ERP no.)", max_length=32, unique=True)
    partner_id = models.BigIntegerField("partner's numeric id", null=True, blank=True)
    name = models.CharField(max_length=200, blank=True)
    reseller = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["account_id"]

    def __str__(self):
        return self.account_id


class Order(models.Model):
    class Status(models.TextChoices):
        NEW = "new", "New"
        IN_REVIEW = "in_review", "In review"
        APPROVED = "approved", "Approved"
        PROVISIONING = "provisioning", "Provisioning"
        READY_TO_SHIP = "ready_to_ship", "Ready to ship"
        SHIPPED = "shipped", "Shipped"
        FULFILLED = "fulfilled", "Fulfilled"
        ON_HOLD = "on_hold", "On hold"
        CANCELLED = "cancelled", "Cancelled"

    # The explicit lifecycle, enforced by orders.services.order_transition. "Ready to ship" is
    # reached only when every device item has its serial and required IMEI/SIM; it falls back to
    # "provisioning" if an assignment is cleared. On hold resumes to review.
    TRANSITIONS = {
        Status.NEW: {Status.IN_REVIEW, Status.ON_HOLD, Status.CANCELLED},
        Status.IN_REVIEW: {Status.APPROVED, Status.ON_HOLD, Status.CANCELLED},
        Status.APPROVED: {Status.PROVISIONING, Status.ON_HOLD, Status.CANCELLED},
        Status.PROVISIONING: {Status.READY_TO_SHIP, Status.ON_HOLD},
        Status.READY_TO_SHIP: {Status.SHIPPED, Status.PROVISIONING, Status.ON_HOLD},
        Status.SHIPPED: {Status.FULFILLED},
        Status.FULFILLED: set(),
        Status.ON_HOLD: {Status.IN_REVIEW, Status.CANCELLED},
        Status.CANCELLED: set(),
    }
    # Statuses in which the order is still being worked (flags for vanished/terminated apply).
    OPEN_STATUSES = (
        Status.NEW, Status.IN_REVIEW, Status.APPROVED, Status.PROVISIONING, Status.READY_TO_SHIP, Status.ON_HOLD,
    )

    class Source(models.TextChoices):
        API = "api", "Partner shipping API"
        MANUAL = "manual", "Entered by hand"

    class PushStatus(models.TextChoices):
        NONE = "", "Not pushed"
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed (retrying)"
        REJECTED = "rejected", "Rejected by the partner API"
        UNKNOWN = "unknown", "Unknown (retrying; the push is idempotent)"

    # Manual orders have no vendor id until staff link them; the unique constraint ignores NULLs.
    order_header_id = models.BigIntegerField("orderHeaderId", unique=True, null=True, blank=True)
    # Indexed by "order_account_date" (account first), which also serves the foreign key.
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="orders", db_index=False)
    order_date = models.DateTimeField()
    shipment_status = models.CharField("partner shipmentStatus", max_length=40, blank=True)
    comment = models.TextField(blank=True)
    ship_name = models.CharField("ship-to name", max_length=200, blank=True)
    ship_email = models.CharField("ship-to e-mail", max_length=254, blank=True)
    ship_street1 = models.CharField("street 1", max_length=200, blank=True)
    ship_street2 = models.CharField("street 2", max_length=200, blank=True)
    ship_city = models.CharField("city", max_length=100, blank=True)
    ship_state = models.CharField("state", max_length=100, blank=True)
    ship_zip_code = models.CharField("zip code", max_length=32, blank=True)
    ship_telephone1 = models.CharField("telephone 1", max_length=40, blank=True)
    ship_telephone2 = models.CharField("telephone 2", max_length=40, blank=True)
    reseller_name = models.CharField(max_length=200, blank=True)  # indexed by "order_reseller_date"
    reseller_email = models.CharField(max_length=254, blank=True)
    purchase_order_number = models.CharField("PO number", max_length=100, blank=True, db_index=True)
    shipment_reference = models.CharField(max_length=100, blank=True, db_index=True)
    validated = models.BooleanField(default=False)

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.NEW, db_index=True)
    source = models.CharField(max_length=8, choices=Source.choices, default=Source.API)
    # Digests of the last vendor header and item list: a re-sync that finds the same digests
    # writes nothing.
    vendor_digest = models.CharField(max_length=64, blank=True)
    items_digest = models.CharField(max_length=64, blank=True)
    last_synced_at = models.DateTimeField(null=True, blank=True)
    # Flags for staff; an order is never deleted because the partner API stopped listing it.
    flagged = models.BooleanField(default=False, db_index=True)
    flag_reason = models.CharField(max_length=300, blank=True)

    push_status = models.CharField(max_length=12, choices=PushStatus.choices, default=PushStatus.NONE, blank=True)
    push_attempts = models.PositiveSmallIntegerField(default=0)
    push_error = models.CharField(max_length=500, blank=True)
    pushed_at = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-order_date", "-id"]
        # The admin list's default order, and each of its filters followed by that order: the
        # first page of any filter is an index range read, never a sort of the whole table.
        indexes = [
            models.Index(fields=["-order_date", "-id"], name="order_date_id"),
            models.Index(fields=["status", "-order_date"], name="order_status_date"),
            models.Index(fields=["account", "-order_date"], name="order_account_date"),
            models.Index(fields=["reseller_name", "-order_date"], name="order_reseller_date"),
            models.Index(fields=["push_status", "-order_date"], name="order_push_date"),
            models.Index(fields=["source", "-order_date"], name="order_source_date"),
        ]

    def __str__(self):
        return f"Order {self.order_header_id or f'#{self.pk} (manual)'}"

    @property
    def label(self) -> str:
        return str(self)


class OrderItem(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="items")
    vendor_item_id = models.BigIntegerField("partner item id", null=True, blank=True)
    product_code = models.CharField(max_length=64)
    product = models.ForeignKey(Product, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    requires_serial = models.BooleanField(default=True)
    requires_sim = models.BooleanField(default=False)
    requires_imei = models.BooleanField(default=False)
    attribute = models.CharField(max_length=200, blank=True)
    # The minted serial. Orders never write the devices table: serial/IMEI/SIM here mirror the
    # Device at assignment time, which is what the fulfilment push sends.
    device = models.ForeignKey(
        "devices.Device", null=True, blank=True, on_delete=models.PROTECT, related_name="order_items"
    )
    # The devices.ProvisioningRequest minting this item's serial (its idempotency key is
    # "order-item-<id>", so re-clicking "provision" finds it instead of minting again).
    provisioning_request_id = models.BigIntegerField(null=True, blank=True)
    serial = models.CharField(max_length=12, blank=True)
    sim = models.CharField("SIM / ICCID", max_length=22, blank=True)
    imei = models.CharField("IMEI", max_length=15, blank=True)
    flag_reason = models.CharField(max_length=300, blank=True)
    flagged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["order_id", "id"]
        constraints = [
            models.UniqueConstraint(fields=["order", "vendor_item_id"], name="orderitem_vendor_id_unique"),
        ]

    def __str__(self):
        return f"{self.product_code} ({self.serial or 'no serial'})"

    def missing_assignments(self) -> list[str]:
        """What this item still lacks before it may ship, as field names."""
        missing = []
        if self.requires_serial and not self.device_id:
            missing.append("serial")
        if self.requires_imei and not self.imei:
            missing.append("imei")
        if self.requires_sim and not self.sim:
            missing.append("sim")
        return missing


class Shipment(models.Model):
    order = models.OneToOneField(Order, on_delete=models.CASCADE, related_name="shipment")
    carrier = models.CharField(max_length=40)
    tracking_number = models.CharField(max_length=64)
    tracking_url = models.URLField(max_length=300, blank=True)
    ship_date = models.DateField()
    items = models.ManyToManyField(OrderItem, related_name="shipments", blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-ship_date", "-id"]
        indexes = [
            models.Index(fields=["-ship_date", "-id"], name="shipment_date_id"),
            models.Index(fields=["carrier", "-ship_date"], name="shipment_carrier_date"),
        ]

    def __str__(self):
        return f"{self.carrier} {self.tracking_number}"


class OrderEvent(models.Model):
    """History of an order: every status change and notable action, with who and when."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=32)  # "status", "synced", "assigned", "pushed", "flagged", ...
    from_status = models.CharField(max_length=16, blank=True)
    to_status = models.CharField(max_length=16, blank=True)
    message = models.CharField(max_length=500, blank=True)
    data = models.JSONField(default=dict, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.order_id} {self.kind} {self.from_status}->{self.to_status}"


class OrderSyncRun(models.Model):
    """One intake run against the partner shipping API, with its counts and bad orders."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        PARTIAL = "partial", "Succeeded with bad orders"
        FAILED = "failed", "Failed"

    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.RUNNING)
    from_date = models.DateField(null=True, blank=True)
    fetched = models.PositiveIntegerField(default=0)
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    flagged = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    # [{"orderHeaderId": ..., "field": ..., "message": ...}] for each bad order.
    errors = models.JSONField(default=list, blank=True)
    error = models.CharField(max_length=500, blank=True)
    triggered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["-started_at", "-id"], name="ordersyncrun_started_id")]

    def __str__(self):
        return f"Sync {self.started_at:%Y-%m-%d %H:%M} {self.status}"
