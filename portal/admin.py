from django.contrib import admin

from portal.models import Heartbeat, VendorCall
from portal.roles import RoleAwareAdminMixin


class ReadOnlyAdmin(RoleAwareAdminMixin, admin.ModelAdmin):
    """Records nobody edits: the server refuses changes whatever the user's permissions."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(VendorCall)
class VendorCallAdmin(ReadOnlyAdmin):
    list_display = ("started_at", "system", "method", "outcome", "http_status", "error_name",
                    "duration_ms", "attempt", "target")
    list_filter = ("system", "outcome")
    search_fields = ("target", "request_id", "error_name", "method")
    show_full_result_count = False
    list_per_page = 100


@admin.register(Heartbeat)
class HeartbeatAdmin(ReadOnlyAdmin):
    list_display = ("name", "beat_at", "worker")
