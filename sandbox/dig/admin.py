from django.contrib import admin

from sandbox.dig.models import (
    DigAccount,
    DigBatch,
    DigInvalidRecord,
    DigSettings,
    DigToken,
)


@admin.register(DigSettings)
class DigSettingsAdmin(admin.ModelAdmin):
    list_display = ("id", "bearer_lifetime_seconds", "auth_requests_per_minute", "max_records_per_post", "max_body_bytes")


@admin.register(DigAccount)
class DigAccountAdmin(admin.ModelAdmin):
    list_display = ("username",)
    exclude = ("password",)


@admin.register(DigToken)
class DigTokenAdmin(admin.ModelAdmin):
    list_display = ("id", "account", "created_at", "bearer_expires_at", "refreshed_at", "revoked_at")
    exclude = ("bearer", "refresh")


@admin.register(DigBatch)
class DigBatchAdmin(admin.ModelAdmin):
    list_display = ("guid", "count", "received_at", "processed_at")
    exclude = ("body",)


@admin.register(DigInvalidRecord)
class DigInvalidRecordAdmin(admin.ModelAdmin):
    list_display = ("id", "cause", "created_at")
