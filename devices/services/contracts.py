"""Contract changes at MyAdmin (`UpdateDeviceContracts`): comments, promo code, group.

Setting a contract field is idempotent, but an unknown outcome is still not assumed either way:
the contract is read back from `GetDeviceContracts` and the portal records what MyAdmin holds.
"""

from __future__ import annotations

import logging

from django.core.exceptions import ValidationError
from django.db import transaction

from devices.models import Device
from devices.services.device import device_record_event
from integrations.base import OutcomeUnknownError, VendorError, vendor_call_context

logger = logging.getLogger(__name__)

LIMITS = {"comments": 300, "promo_code": 64, "group_id": 64}


def _client():
    from portal.clients import myadmin_client

    return myadmin_client()


def device_contract_update(
    *,
    device: Device,
    comments: str | None = None,
    promo_code: str | None = None,
    group_id: str | None = None,
    actor=None,
    client=None,
) -> Device:
    """Change the given contract fields at MyAdmin, then in the portal. ``None`` = leave as is.

    Raises ``ValidationError`` (bad input; no call made) or ``VendorError`` (MyAdmin refused or
    could not be reached; the portal's copy is unchanged)."""
    changes = {k: v for k, v in {"comments": comments, "promo_code": promo_code, "group_id": group_id}.items()
               if v is not None}
    errors = {}
    for name, value in changes.items():
        value = str(value).strip()
        changes[name] = value
        if len(value) > LIMITS[name]:
            errors[name] = [f"At most {LIMITS[name]} characters."]
    if not changes and not errors:
        errors["non_field_errors"] = ["Give at least one of comments, promo code or group."]
    device = Device.objects.get(pk=device.pk)
    if device.status == Device.Status.TERMINATED:
        errors.setdefault("non_field_errors", []).append(f"Device {device.serial} is terminated; its contract is closed.")
    if errors:
        raise ValidationError(errors)

    client = client or _client()
    with vendor_call_context(target=f"devices.Device:{device.pk}"):
        try:
            client.update_device_contracts([device.serial], **changes)
        except OutcomeUnknownError:
            # Read back: MyAdmin's contract is the truth either way.
            contract = next(iter(client.get_device_contracts(for_account=device.erp_no, serial_nos=[device.serial])), None)
            held = contract and {"comments": contract.comments, "promo_code": contract.promo_code,
                                 "group_id": contract.group_id}
            if not held or any(held[k] != v for k, v in changes.items()):
                raise
            logger.info("contract update of %s had an unknown outcome; read back: applied", device.serial)

    with transaction.atomic():
        device = Device.objects.select_for_update().get(pk=device.pk)
        before = {k: getattr(device, k) for k in changes}
        for name, value in changes.items():
            setattr(device, name, value)
        device.save(update_fields=[*changes, "updated_at"])
        device_record_event(
            device=device, kind="contract", actor=actor,
            message="Contract updated at MyAdmin: " + ", ".join(f"{k}={v!r}" for k, v in changes.items()),
            data={"before": before, "after": changes},
        )
    return device


__all__ = ["VendorError", "device_contract_update"]
