from django.db import transaction
from django.utils import timezone

from devices.models import Device, DeviceEvent
from portal.middleware import current_request_id


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
    device = Device.objects.select_for_update().get(pk=device.pk)
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
