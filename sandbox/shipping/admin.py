from django.contrib import admin

from sandbox.shipping.models import ShippingOrder, ShippingOrderItem


class ShippingOrderItemInline(admin.TabularInline):
    model = ShippingOrderItem
    extra = 0


@admin.register(ShippingOrder)
class ShippingOrderAdmin(admin.ModelAdmin):
    list_display = ("order_header_id", "account_id", "order_date", "shipment_status", "purchase_order_number",
                    "tracking_number")
    list_filter = ("shipment_status", "account_id")
    search_fields = ("=order_header_id", "purchase_order_number", "shipment_reference")
    inlines = [ShippingOrderItemInline]
