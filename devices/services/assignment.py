"""Assigning a physical unit (IMEI, SIM/ICCID) to a minted serial.

The one place that writes `Device.imei` / `Device.sim`; orders and the admin go through it so the
rules (check digits, uniqueness across every device, no assignment to a terminated serial) hold
wherever the assignment comes from.
"""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from stdnum import imei as stdnum_imei
from stdnum import luhn

from devices.models import Device
from devices.services.device import device_record_event, device_transition

_SEPARATORS = re.compile(r"[\s\-.]")


def normalize_imei(value: str | None) -> str:
    return _SEPARATORS.sub("", value or "")


def normalize_iccid(value: str | None) -> str:
    return _SEPARATORS.sub("", value or "").upper()


def imei_error(value: str) -> str | None:
    """Why ``value`` (normalized) is not an IMEI, or None. 15 digits with a Luhn check digit."""
    if not value.isdigit() or len(value) != 15:
        return f"IMEI {value!r} must be 15 digits."
    if not stdnum_imei.is_valid(value):
        return f"IMEI {value} has a wrong check digit."
    return None


def iccid_error(value: str) -> str | None:
    """Why ``value`` (normalized) is not an ICCID, or None. ITU-T E.118: 19–20 digits, "89"
    (telecom) prefix, Luhn check digit."""
    if not value.isdigit() or not 19 <= len(value) <= 20:
        return f"SIM/ICCID {value!r} must be 19 or 20 digits."
    if not value.startswith("89"):
        return f"SIM/ICCID {value} must start with 89."
    if not luhn.is_valid(value):
        return f"SIM/ICCID {value} has a wrong check digit."
    return None


def device_assignment_validate(*, device: Device, imei: str | None, sim: str | None) -> tuple[str | None, str | None]:
    """Check an assignment without writing; return the normalized (imei, sim).

    ``None`` means "leave as it is". Raises ValidationError keyed by field ("imei", "sim",
    "serial"), each message naming the serial.
    """
    errors: dict[str, list[str]] = {}
    if device.status == Device.Status.TERMINATED:
        errors["serial"] = [f"Serial {device.serial} is terminated; it cannot be assigned a unit."]
    new_imei = normalize_imei(imei) if imei is not None else None
    new_sim = normalize_iccid(sim) if sim is not None else None
    if new_imei:
        problem = imei_error(new_imei)
        if problem:
            errors["imei"] = [f"{device.serial}: {problem}"]
        else:
            other = Device.objects.filter(imei=new_imei).exclude(pk=device.pk).values_list("serial", flat=True).first()
            if other:
                errors["imei"] = [f"{device.serial}: IMEI {new_imei} is already assigned to serial {other}."]
    if new_sim:
        problem = iccid_error(new_sim)
        if problem:
            errors["sim"] = [f"{device.serial}: {problem}"]
        else:
            other = Device.objects.filter(sim=new_sim).exclude(pk=device.pk).values_list("serial", flat=True).first()
            if other:
                errors["sim"] = [f"{device.serial}: SIM {new_sim} is already assigned to serial {other}."]
    if errors:
        raise ValidationError(errors)
    return new_imei, new_sim


def device_assign(*, device: Device, imei: str | None, sim: str | None, actor=None) -> Device:
    """Assign IMEI and/or SIM to a serial (None leaves a field unchanged, "" clears it).

    All or nothing: a bad value, a duplicate or a terminated serial raises ValidationError and
    writes nothing. A provisioned serial becomes "assigned" once it has a unit.
    """
    try:
        with transaction.atomic():
            device = Device.objects.select_for_update().get(pk=device.pk)
            new_imei, new_sim = device_assignment_validate(device=device, imei=imei, sim=sim)
            changes = {}
            if new_imei is not None and (device.imei or "") != new_imei:
                changes["imei"] = (device.imei or "", new_imei)
                device.imei = new_imei or None
            if new_sim is not None and (device.sim or "") != new_sim:
                changes["sim"] = (device.sim or "", new_sim)
                device.sim = new_sim or None
            if not changes:
                return device
            device.save(update_fields=[*changes, "updated_at"])
            device_record_event(
                device=device, kind="assigned", actor=actor,
                message="; ".join(f"{k}: {old or '—'} → {new or '—'}" for k, (old, new) in changes.items()),
                data={k: new for k, (_, new) in changes.items()},
            )
            has_unit = bool(device.imei or device.sim)
            if has_unit and device.status == Device.Status.PROVISIONED:
                device = device_transition(device=device, to_status=Device.Status.ASSIGNED, actor=actor,
                                           message="unit assigned")
            elif not has_unit and device.status == Device.Status.ASSIGNED:
                device = device_transition(device=device, to_status=Device.Status.PROVISIONED, actor=actor,
                                           message="unit unassigned")
            return device
    except IntegrityError as exc:
        # A concurrent assignment took the same IMEI/SIM between our check and our write.
        raise ValidationError({"imei": [f"{device.serial}: IMEI or SIM was just assigned to another serial."]}) from exc
