from django.db import transaction
from django.utils import timezone

from devices.models import Device, DeviceEvent
from portal.bulk import bulk_insert_rows, where_in
from portal.middleware import current_request_id

# The columns of a DeviceEvent row, in the order bulk writers (bulk_insert_rows) give them.
EVENT_FIELDS = ("device_id", "kind", "from_status", "to_status", "message", "data", "actor_id", "request_id",
                "created_at")
FIRST_DATA_MESSAGE = "First record delivered to DIG (billing starts)."


class DeviceTransitionError(ValueError):
    """A status change the lifecycle does not allow."""


def device_record_event(
    *, device: Device, kind: str, message: str = "", actor=None, data: dict | None = None,
    from_status: str = "", to_status: str = "",
) -> DeviceEvent:
    return DeviceEvent.objects.create(
        device=device, kind=kind, message=message[:500], actor=actor if getattr(actor, "pk", None) else None,
        data=data or {}, from_status=from_status, to_status=to_status, request_id=current_request_id()[:64],
    )


@transaction.atomic
def device_transition(*, device: Device, to_status: str, actor=None, message: str = "") -> Device:
    """Move a device along its lifecycle (Device.TRANSITIONS), recording the change."""
    # FOR NO KEY UPDATE, the lock an UPDATE of non-key columns takes anyway: it keeps other
    # writers of the device out but not the foreign-key checks of rows pointing at it (records
    # arriving, history), which take KEY SHARE and would otherwise wait, or deadlock.
    device = Device.objects.select_for_update(no_key=True).get(pk=device.pk)
    if device.status == to_status:
        return device
    allowed = Device.TRANSITIONS[Device.Status(device.status)]
    if to_status not in allowed:
        raise DeviceTransitionError(
            f"Device {device.serial} cannot go from {device.get_status_display()} to "
            f"{Device.Status(to_status).label}."
        )
    from_status = device.status
    device.status = to_status
    fields = ["status", "updated_at"]
    if to_status == Device.Status.TERMINATED:
        device.terminated_at = timezone.now()
        fields.append("terminated_at")
    device.save(update_fields=fields)
    device_record_event(
        device=device, kind="status", from_status=from_status, to_status=to_status, actor=actor, message=message
    )
    return device


def devices_first_data(*, device_ids) -> int:
    """The first record of these devices reached DIG: billing starts. Each device gets a
    "first_data" event, and those whose lifecycle allows it become active, with the status
    event ``device_transition`` writes. Three statements whatever the number of devices: a fleet
    going live sends thousands of first records in one batch, and a statement per device held
    the forwarder for minutes. Returns how many devices became active."""
    ids = sorted(set(device_ids))
    if not ids:
        return 0
    now = timezone.now()
    request_id = current_request_id()[:64]
    may_activate = {status for status, allowed in Device.TRANSITIONS.items() if Device.Status.ACTIVE in allowed}
    with transaction.atomic():
        # Locked in id order, as device_transition locks them one at a time, and in the same
        # mode (see there): an intake committing records of these devices checks its foreign
        # keys with KEY SHARE locks in its own order, which FOR UPDATE would deadlock with.
        found = list(where_in(Device.objects.select_for_update(no_key=True), "id", ids).order_by("pk")
                     .values_list("pk", "status"))
        activated = [(pk, status) for pk, status in found if status in may_activate]
        if activated:
            where_in(Device.objects.all(), "id", [pk for pk, _ in activated]).update(
                status=Device.Status.ACTIVE, updated_at=now)
        rows = [(pk, "first_data", "", "", FIRST_DATA_MESSAGE, {}, None, request_id, now) for pk, _ in found]
        rows += [(pk, "status", status, Device.Status.ACTIVE.value, "Data is flowing to DIG.", {}, None, request_id, now)
                 for pk, status in activated]
        bulk_insert_rows(DeviceEvent, EVENT_FIELDS, rows)
    return len(activated)
