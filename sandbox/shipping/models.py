"""The simulated partner shipping API's own tables: Marketplace orders placed under partner
accounts, their items, and what the integrator's fulfilment write stored on them."""

from django.db import models


class ShippingOrder(models.Model):
    # Known value [3P S15]: PendingFulfillment. The others are the simulator's guesses.
    PENDING = "PendingFulfillment"
    FULFILLED = "Fulfilled"
    CANCELLED = "Cancelled"

    order_header_id = models.BigIntegerField(unique=True)
    account_id = models.CharField(max_length=32)
    account_numeric_id = models.BigIntegerField(default=0)
    order_date = models.DateTimeField()
    shipment_status = models.CharField(max_length=40, default=PENDING)
    comment = models.TextField(blank=True)
    shipping_contact = models.JSONField(default=dict)
    reseller_name = models.CharField(max_length=200, blank=True)
    reseller_email = models.CharField(max_length=254, blank=True)
    purchase_order_number = models.CharField(max_length=100, blank=True)
    shipment_reference = models.CharField(max_length=100, blank=True)
    validated = models.BooleanField(default=True)
    # What the fulfilment write stored (the write shape is a guess, see views.py).
    carrier = models.CharField(max_length=40, blank=True)
    tracking_number = models.CharField(max_length=64, blank=True)
    ship_date = models.DateField(null=True, blank=True)
    fulfilment_writes = models.PositiveIntegerField(default=0)
    # When set, the order is served exactly as this JSON (lets tests and demos reproduce the
    # malformed orders a real API might send).
    raw_override = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["order_header_id"]

    def __str__(self):
        return f"{self.order_header_id} {self.account_id} {self.shipment_status}"


class ShippingOrderItem(models.Model):
    order = models.ForeignKey(ShippingOrder, on_delete=models.CASCADE, related_name="items")
    product_code = models.CharField(max_length=64)
    requires_serial_number = models.BooleanField(default=True)
    requires_sim_number = models.BooleanField(default=False)
    requires_imei = models.BooleanField(default=False)
    serial_number = models.CharField(max_length=32, blank=True)
    sim_number = models.CharField(max_length=32, blank=True)
    imei = models.CharField(max_length=32, blank=True)
    attribute = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return f"{self.order.order_header_id}/{self.pk} {self.product_code}"
