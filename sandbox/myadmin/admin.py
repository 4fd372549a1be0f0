from django.contrib import admin

from sandbox.myadmin.models import (
    SandboxAccount,
    SandboxDevice,
    SandboxSession,
    SandboxTerminationReason,
    SandboxUser,
)


@admin.register(SandboxAccount)
class SandboxAccountAdmin(admin.ModelAdmin):
    list_display = ("account_id", "currency_code")


@admin.register(SandboxUser)
class SandboxUserAdmin(admin.ModelAdmin):
    list_display = ("username", "user_id")
    filter_horizontal = ("accounts",)
    exclude = ()


@admin.register(SandboxSession)
class SandboxSessionAdmin(admin.ModelAdmin):
    list_display = ("user", "created_at", "expires_at")
    readonly_fields = ("session_id", "user", "created_at")


@admin.register(SandboxDevice)
class SandboxDeviceAdmin(admin.ModelAdmin):
    list_display = ("serial", "product_id", "account", "created_at", "comments", "terminated_at", "database_name")
    list_filter = ("product_id", "account")
    search_fields = ("=serial", "=imei", "comments")
    show_full_result_count = False


@admin.register(SandboxTerminationReason)
class SandboxTerminationReasonAdmin(admin.ModelAdmin):
    list_display = ("reason_id", "name", "sort_id")
