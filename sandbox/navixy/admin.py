from django.contrib import admin

from .models import SimActivationCode, SimGroup, SimModel, SimPlugin, SimTracker


@admin.register(SimTracker)
class SimTrackerAdmin(admin.ModelAdmin):
    list_display = ("id", "label", "device_id", "model", "phone", "group_id", "creation_date", "corrupted")
    search_fields = ("=device_id", "label", "=phone")


@admin.register(SimActivationCode)
class SimActivationCodeAdmin(admin.ModelAdmin):
    list_display = ("code", "activated", "activation_date", "device_id")
    list_filter = ("activated",)


admin.site.register(SimModel)
admin.site.register(SimPlugin)
admin.site.register(SimGroup)
