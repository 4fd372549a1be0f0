"""Device records in the admin: the ingestion page (backlog, throughput, lag, reject causes and
per-device feed status) and the records themselves, with replay for rejected/held ones."""

from django.contrib import admin, messages
from django.db.models import Count, Q
from django.utils import timezone

from ingestion.models import DeviceFeed, DeviceRecord, ForwarderState
from ingestion.services.records import (
    records_hold_for_devices,
    records_overview,
    records_release_for_devices,
    records_replay,
)
from portal.admin_kit import PortalAdminMixin
from portal.roles import BILL, FULFIL, RoleAwareAdminMixin, require_capability

# Replaying sends data to DIG, and data is what Geotab bills: it needs the billing role.
REPLAY_CAPABILITY = BILL


@admin.register(DeviceFeed)
class DeviceFeedAdmin(PortalAdminMixin, RoleAwareAdminMixin, admin.ModelAdmin):
    """The ingestion page: the overview on top, one row per device below."""

    change_list_template = "admin/ingestion/devicefeed/change_list.html"
    list_display = ("device", "first_sent_at", "last_record_at", "last_sent_at", "records_sent", "records_rejected",
                    "queued", "held", "lag")
    list_select_related = ("device",)
    search_fields = ("=device__serial",)
    list_filter = (("first_sent_at", admin.EmptyFieldListFilter),)
    show_full_result_count = False
    actions = ("release_held", "replay_records")
    readonly_fields = tuple(f.name for f in DeviceFeed._meta.fields)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(
            n_queued=Count("device__records", filter=Q(device__records__status=DeviceRecord.Status.QUEUED)),
            n_held=Count("device__records", filter=Q(device__records__status=DeviceRecord.Status.HELD)),
        )

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="queued", ordering="n_queued")
    def queued(self, obj):
        return obj.n_queued

    @admin.display(description="held", ordering="n_held")
    def held(self, obj):
        return obj.n_held

    @admin.display(description="last batch lag")
    def lag(self, obj):
        return "" if obj.last_lag_ms is None else f"{obj.last_lag_ms / 1000:.1f} s"

    def changelist_view(self, request, extra_context=None):
        extra_context = extra_context or {}
        extra_context["overview"] = records_overview()
        extra_context["forwarder"] = ForwarderState.current()
        extra_context["now"] = timezone.now()
        return super().changelist_view(request, extra_context=extra_context)

    @admin.action(description="Release held records of ready devices")
    @require_capability(FULFIL)
    def release_held(self, request, queryset):
        n = records_release_for_devices(device_ids=list(queryset.values_list("device_id", flat=True)))
        self.message_user(request, f"{n} records released to the queue (devices not ready stay held).")

    @admin.action(description="Replay rejected and held records of these devices")
    @require_capability(REPLAY_CAPABILITY)
    def replay_records(self, request, queryset):
        ids = DeviceRecord.objects.filter(
            device_id__in=queryset.values("device_id"),
            status__in=[DeviceRecord.Status.REJECTED, DeviceRecord.Status.HELD],
        ).values_list("pk", flat=True)[:100_000]
        _report_replay(self, request, records_replay(record_ids=list(ids)))


def _report_replay(modeladmin, request, result):
    level = messages.SUCCESS if result.queued else messages.WARNING
    modeladmin.message_user(
        request,
        f"{result.queued} records queued for DIG; {result.held} stay held (device not ready or terminated); "
        f"{result.skipped} skipped (already queued or sent).",
        level=level,
    )


@admin.register(DeviceRecord)
class DeviceRecordAdmin(PortalAdminMixin, RoleAwareAdminMixin, admin.ModelAdmin):
    list_display = ("id", "serial", "record_type", "recorded_at", "status", "hold_reason", "cause", "received_at",
                    "sent_at", "attempts")
    list_filter = ("status", "record_type", "hold_reason")
    search_fields = ("=serial",)
    show_full_result_count = False
    date_hierarchy = None
    actions = ("replay", "hold")
    readonly_fields = tuple(f.name for f in DeviceRecord._meta.fields)

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Replay selected rejected/held records")
    @require_capability(REPLAY_CAPABILITY)
    def replay(self, request, queryset):
        _report_replay(self, request, records_replay(record_ids=list(queryset.values_list("pk", flat=True))))

    @admin.action(description="Hold the queued records of the selected records' devices")
    @require_capability(FULFIL)
    def hold(self, request, queryset):
        n = records_hold_for_devices(device_ids=list(queryset.values_list("device_id", flat=True).distinct()),
                                     reason=DeviceRecord.HoldReason.STAFF)
        self.message_user(request, f"{n} queued records held.")
