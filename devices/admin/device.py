from django.contrib import admin

from devices.admin.databases import add_to_customer_database, first_data_sent
from devices.admin.provisioning import (
    device_minted_by,
    device_vendor_calls,
    update_contract,
)
from devices.models import Device, DeviceEvent
from portal.admin_kit import PortalAdminMixin
from portal.roles import RoleAwareAdminMixin


class DeviceEventInline(admin.TabularInline):
    model = DeviceEvent
    extra = 0
    can_delete = False
    fields = ("created_at", "kind", "from_status", "to_status", "message", "actor", "request_id")
    readonly_fields = fields
    ordering = ("-created_at",)

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Device)
class DeviceAdmin(PortalAdminMixin, RoleAwareAdminMixin, admin.ModelAdmin):
    list_display = ("serial", "product_type", "erp_no", "status", "imei", "sim", "database_name", "created_at")
    list_filter = ("status", "product_type")
    search_fields = ("=serial", "=imei", "=sim", "=erp_no")
    show_full_result_count = False
    list_per_page = 100
    readonly_fields = ("serial", "product_id", "product_type", "erp_no", "status", "database_name",
                       "ready_for_data_at", first_data_sent, "mygeotab_device_id", "terminated_at", "created_at",
                       "updated_at", "comments", "promo_code", "group_id", device_minted_by, device_vendor_calls)
    actions = [add_to_customer_database, update_contract]
    inlines = [DeviceEventInline]
