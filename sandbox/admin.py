from django.contrib import admin

from sandbox.models import Fault


@admin.register(Fault)
class FaultAdmin(admin.ModelAdmin):
    list_display = ("system", "mode", "methods", "probability", "remaining", "delay_ms", "active", "fired")
    list_editable = ("active",)
    list_filter = ("system", "mode", "active")
