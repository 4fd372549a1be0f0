from django.contrib import admin

from sandbox.mygeotab.models import (
    SandboxAsset,
    SandboxDatabase,
    SandboxSession,
    SandboxUser,
)


class SandboxUserInline(admin.TabularInline):
    model = SandboxUser
    extra = 0


@admin.register(SandboxDatabase)
class SandboxDatabaseAdmin(admin.ModelAdmin):
    list_display = ("name", "path", "session_lifetime_seconds", "authenticate_per_minute", "write_per_minute",
                    "read_per_minute")
    inlines = [SandboxUserInline]


@admin.register(SandboxAsset)
class SandboxAssetAdmin(admin.ModelAdmin):
    list_display = ("serial_number", "name", "device_type", "database", "entity_id", "active_to", "version")
    list_filter = ("database", "device_type")
    search_fields = ("=serial_number", "=entity_id", "name")


@admin.register(SandboxSession)
class SandboxSessionAdmin(admin.ModelAdmin):
    list_display = ("user", "created_at", "expires_at")
    # The session id is a credential, even in the sandbox: not shown.
    exclude = ("session_id",)
