"""Device records in the admin: the ingestion page (backlog, throughput, lag, reject causes and
per-device feed status) and the records themselves, with replay for rejected/held ones."""

from django.contrib import admin, messages
from django.db.models import Func, IntegerField, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from devices.models import Device
from ingestion.models import DeviceFeed, DeviceRecord, ForwarderState
from ingestion.services.records import (
    RECORD_SCHEMA,
    records_hold_for_devices,
    records_overview,
    records_release_for_devices,
)
from ingestion.services.replay_jobs import REPLAY_MAX
from portal.admin_confirm import confirm_action
from portal.admin_kit import PortalAdminMixin, choices_filter
from portal.audit import Action as AuditAction
from portal.audit import audit_bulk
from portal.jobs import job_start, redirect_to_job
from portal.roles import BILL, FULFIL, RoleAwareAdminMixin, require_capability

# Replaying sends data to DIG, and data is what Geotab bills: it needs the billing role.
REPLAY_CAPABILITY = BILL


def _open_records(status: str):
    """How many of the feed's device's records have ``status``: a correlated subquery, so it is
    computed for the rows on the page only (one probe each into the records' open-status
    index), not joined and grouped over every feed and record (and the count stays plain)."""
    # COUNT as a plain function (not an aggregate): no GROUP BY inside the subquery.
    counts = (DeviceRecord.objects.filter(device_id=OuterRef("device_id"), status=status).order_by()
              .annotate(n=Func("id", function="COUNT")).values("n"))
    return Coalesce(Subquery(counts, output_field=IntegerField()), 0)


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
            n_queued=_open_records(DeviceRecord.Status.QUEUED),
            n_held=_open_records(DeviceRecord.Status.HELD),
        )

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    # Not sortable: sorting by them would compute them for every device first.
    @admin.display(description="queued")
    def queued(self, obj):
        return obj.n_queued

    @admin.display(description="held")
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
        device_ids = list(queryset.values_list("device_id", flat=True))
        n = records_release_for_devices(device_ids=device_ids)
        if n:
            audit_bulk(model=Device, ids=device_ids, action=AuditAction.BULK_UPDATE, actor=request.user,
                       changes={"held_records": "released"}, message=f"{n} held device records released to the queue")
        self.message_user(request, f"{n} records released to the queue (devices not ready stay held).")

    @admin.action(description="Replay rejected and held records of these devices")
    @require_capability(REPLAY_CAPABILITY)
    def replay_records(self, request, queryset):
        ids = list(DeviceRecord.objects.filter(
            device_id__in=queryset.values("device_id"),
            status__in=[DeviceRecord.Status.REJECTED, DeviceRecord.Status.HELD],
        ).values_list("pk", flat=True)[:REPLAY_MAX])
        return _replay(self, request, queryset, ids, action_name="replay_records")


# What a replay costs, for the confirmation page (records reaching DIG are billed by Geotab).
REPLAY_EFFECT = ("send {records} rejected or held device record{s} to Geotab's Data Intake Gateway again "
                 "(data DIG receives is billable); records of devices not ready or terminated stay held")


def _replay(modeladmin, request, queryset, ids, *, action_name):
    """Confirm (naming the records and the cost), then replay on a worker as a job."""
    from ingestion.tasks.records import records_replay_task

    if not ids:
        modeladmin.message_user(request, "No rejected or held records to replay.", level=messages.WARNING)
        return None
    page = confirm_action(request, queryset, title="Replay records", count=queryset.count(),
                          effect=REPLAY_EFFECT.format(records=len(ids), s="" if len(ids) == 1 else "s"),
                          action_name=action_name)
    if page is not None:
        return page
    job = job_start(kind="replay", total=len(ids), actor=request.user)
    records_replay_task.delay_on_commit(record_ids=ids, job_id=job.pk, actor_id=request.user.pk)
    return redirect_to_job(job)


@admin.register(DeviceRecord)
class DeviceRecordAdmin(PortalAdminMixin, RoleAwareAdminMixin, admin.ModelAdmin):
    list_display = ("id", "serial", "record_type", "recorded_at", "status", "hold_reason", "cause", "received_at",
                    "sent_at", "attempts")
    # Fixed choices: record_type and hold_reason have no model choices, so plain names would make
    # Django SELECT DISTINCT over every record to draw the filter.
    list_filter = ("status", choices_filter("record_type", [(t, t) for t in sorted(RECORD_SCHEMA)], title="record type"),
                   choices_filter("hold_reason", DeviceRecord.HoldReason.choices, title="hold reason"))
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
        ids = list(queryset.filter(status__in=[DeviceRecord.Status.REJECTED, DeviceRecord.Status.HELD])
                   .values_list("pk", flat=True)[:REPLAY_MAX])
        return _replay(self, request, queryset, ids, action_name="replay")

    @admin.action(description="Hold the queued records of the selected records' devices")
    @require_capability(FULFIL)
    def hold(self, request, queryset):
        device_ids = sorted(set(queryset.values_list("device_id", flat=True)))
        n = records_hold_for_devices(device_ids=device_ids, reason=DeviceRecord.HoldReason.STAFF)
        if n:
            audit_bulk(model=Device, ids=device_ids, action=AuditAction.BULK_UPDATE, actor=request.user,
                       changes={"queued_records": "held", "hold_reason": DeviceRecord.HoldReason.STAFF.value},
                       message=f"{n} queued device records held by staff")
        self.message_user(request, f"{n} queued records held.")
