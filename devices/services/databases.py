"""Customer MyGeotab databases: test the service account, add devices as assets, and learn
when a device is ready for data.

Adding is idempotent without any key of our own: the serial is unique per MyGeotab, so the
service always looks the serial up first, and treats ``DuplicateException`` as "look again":
found in this database → attach; not found → it sits in another database → staff must act.
After an unknown outcome (timeout, dropped reply) the same look-up decides what happened.

Readiness follows Geotab's DIG adapter (reference §5.1): a device is ready for data once MyAdmin
`GetDeviceDatabaseNamesAsync` reports an owner database for its serial.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum

from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils import timezone

from devices.models import CustomerDatabase, Device
from devices.services.device import device_record_event
from integrations.base import (
    AuthenticationError,
    NotExecutedError,
    OutcomeUnknownError,
    RejectedError,
    VendorError,
    vendor_call_context,
)
from integrations.mygeotab import (
    DuplicateDeviceError,
    InvalidSerialError,
    MyGeotabClient,
    normalize_serial,
)

logger = logging.getLogger(__name__)

# MyAdmin documents no batch limit for GetDeviceDatabaseNamesAsync; Geotab's adapter sends up to
# 5000 serials per round [C G12]. Smaller batches keep each call well under the read timeout.
READINESS_BATCH_SIZE = 500
READINESS_MAX_PER_RUN = 5000
# The admin and API run adds synchronously (the user waits for the answer); more than this
# many at once belongs in the background task.
MAX_SYNC_ADDS = 50


class AddOutcome(str, Enum):
    ADDED = "added"  # the portal added the asset
    ATTACHED = "attached"  # the asset already existed in this database: its id is now recorded
    NEEDS_STAFF = "needs_staff"  # the serial belongs to another database
    FAILED = "failed"  # nothing changed; the message says why


@dataclass
class AddResult:
    device: Device
    outcome: AddOutcome
    message: str
    mygeotab_device_id: str = ""
    retryable: bool = False
    credentials_refused: bool = False

    @property
    def ok(self) -> bool:
        return self.outcome in (AddOutcome.ADDED, AddOutcome.ATTACHED)


@dataclass
class ReadinessResult:
    checked: int = 0
    became_ready: list[int] = field(default_factory=list)
    released_records: int = 0


def _client(database: CustomerDatabase) -> MyGeotabClient:
    from portal.clients import mygeotab_client

    return mygeotab_client(database)


def _describe(exc: VendorError, database: CustomerDatabase) -> str:
    """A message for staff: names the cause, never a secret."""
    where = f"MyGeotab database '{database.database}'"
    if isinstance(exc, AuthenticationError):
        return f"{where}: {exc.message} Check the service account in Customer databases."
    if isinstance(exc, OutcomeUnknownError):
        return f"{where}: no clear answer ({exc.error_name or 'unknown'}); nothing is assumed, try again."
    if isinstance(exc, NotExecutedError):
        if exc.error_name in ("ConnectionRefused", "ConnectTimeout", "InvalidURL"):
            return f"{where}: server {database.effective_server} is unreachable ({exc.error_name}); nothing was changed."
        return f"{where}: temporarily unavailable ({exc.error_name or 'not executed'}); nothing was changed, try again."
    return f"{where} refused: {exc.message}"


# --------------------------------------------------------------------------- connection test


def customer_database_test_connection(*, database: CustomerDatabase, actor=None) -> tuple[bool, str]:
    """Log in with the stored service account; the result is kept on the database row."""
    try:
        client = _client(database)
        with vendor_call_context(target=f"devices.CustomerDatabase:{database.pk}"):
            info = client.authenticate()
        ok, message = True, f"Signed in to '{info['database']}' as {info['userName']}."
    except VendorError as exc:
        ok, message = False, _describe(exc, database)
    except (ImproperlyConfigured, ValueError) as exc:  # no key to decrypt / no server configured
        ok, message = False, str(exc)
    CustomerDatabase.objects.filter(pk=database.pk).update(
        last_checked_at=timezone.now(), last_check_ok=ok, last_check_message=message[:500]
    )
    database.refresh_from_db(fields=["last_checked_at", "last_check_ok", "last_check_message"])
    logger.info("customer database %s connection test by %s: %s", database.pk, getattr(actor, "pk", None),
                "ok" if ok else "failed")
    return ok, message


# --------------------------------------------------------------------------- add devices


def _precheck(device: Device, database: CustomerDatabase) -> str:
    """Why this device cannot go to this database ("" when it can)."""
    if device.status == Device.Status.TERMINATED:
        return f"Device {device.serial} is terminated."
    if not database.active:
        return f"Customer database '{database}' is inactive."
    if not database.accounts.filter(erp_no=device.erp_no).exists():
        return (f"Device {device.serial} belongs to account {device.erp_no}, which is not linked to "
                f"customer database '{database}'.")
    if device.database_name and device.database_name != database.database:
        return (f"Device {device.serial} is already in MyGeotab database '{device.database_name}' "
                f"(reported by MyAdmin); it cannot be added to '{database.database}'.")
    try:
        normalize_serial(device.serial)
    except InvalidSerialError as exc:
        return str(exc)
    return ""


def _record(device: Device, database: CustomerDatabase, outcome: AddOutcome, mygeotab_id: str, message: str,
            actor) -> Device:
    """The only local write: the MyGeotab id and one history row, together."""
    with transaction.atomic():
        locked = Device.objects.select_for_update().get(pk=device.pk)
        if mygeotab_id and locked.mygeotab_device_id != mygeotab_id:
            locked.mygeotab_device_id = mygeotab_id
            locked.save(update_fields=["mygeotab_device_id", "updated_at"])
        device_record_event(
            device=locked, kind=f"mygeotab_{outcome.value}", message=message, actor=actor,
            data={"database": database.database, "customer_database_id": database.pk, "mygeotab_id": mygeotab_id},
        )
    device.mygeotab_device_id = locked.mygeotab_device_id
    return locked


def device_add_to_database(
    *, device: Device, database: CustomerDatabase, actor=None, client: MyGeotabClient | None = None,
    name: str = "", comment: str = "", vehicle: dict | None = None,
) -> AddResult:
    """Make ``device`` an asset of ``database`` (idempotent) and record its MyGeotab id.

    ``vehicle`` (CustomVehicleDevice only): ``vehicleIdentificationNumber``, ``licensePlate``,
    ``licenseState``. Never raises for vendor trouble: the result says what happened and
    whether a retry may help.
    """
    problem = _precheck(device, database)
    if not problem and vehicle and device.product_type != Device.ProductType.CUSTOM_VEHICLE_DEVICE:
        problem = f"Device {device.serial} is a {device.product_type}: vehicle fields apply to CustomVehicleDevice only."
    if problem:
        return AddResult(device, AddOutcome.FAILED, problem)
    try:
        client = client or _client(database)
    except (ImproperlyConfigured, ValueError) as exc:
        return AddResult(device, AddOutcome.FAILED, str(exc))
    serial = normalize_serial(device.serial)
    where = f"MyGeotab database '{database.database}'"
    try:
        with vendor_call_context(target=f"devices.Device:{device.pk}"):
            existing = client.get_device_by_serial(serial)
            if existing is not None:
                message = f"{serial} was already in {where}; recorded its id."
                _record(device, database, AddOutcome.ATTACHED, existing.id, message, actor)
                return AddResult(device, AddOutcome.ATTACHED, message, existing.id)
            try:
                new_id = client.add_device(
                    serial=serial, name=name or serial, groups=database.group_ids,
                    comment=comment or f"Added by the integrator portal (account {device.erp_no})",
                    vehicle=vehicle or None,
                )
            except (DuplicateDeviceError, OutcomeUnknownError) as exc:
                # Duplicate: in this database (attach) or in another one (staff). Unknown: the add
                # may have happened. Either way the serial look-up decides.
                again = client.get_device_by_serial(serial)
                if again is not None:
                    message = f"{serial} is in {where}; recorded its id."
                    _record(device, database, AddOutcome.ATTACHED, again.id, message, actor)
                    return AddResult(device, AddOutcome.ATTACHED, message, again.id)
                if isinstance(exc, DuplicateDeviceError):
                    message = (f"Serial {serial} already exists in another MyGeotab database; it cannot be "
                               f"added to '{database.database}'. Ask the customer or Geotab which database owns it.")
                    _record(device, database, AddOutcome.NEEDS_STAFF, "", message, actor)
                    return AddResult(device, AddOutcome.NEEDS_STAFF, message)
                raise
    except InvalidSerialError as exc:
        return AddResult(device, AddOutcome.FAILED, str(exc))
    except VendorError as exc:
        if isinstance(exc, AuthenticationError):
            CustomerDatabase.objects.filter(pk=database.pk).update(
                last_checked_at=timezone.now(), last_check_ok=False, last_check_message=exc.message[:500])
        retryable = isinstance(exc, (NotExecutedError, OutcomeUnknownError)) and not isinstance(exc, RejectedError)
        return AddResult(device, AddOutcome.FAILED, _describe(exc, database), retryable=retryable,
                         credentials_refused=isinstance(exc, AuthenticationError))
    message = f"{serial} added to {where}."
    _record(device, database, AddOutcome.ADDED, new_id, message, actor)
    _schedule_readiness([device.pk])
    return AddResult(device, AddOutcome.ADDED, message, new_id)


def devices_add_to_database(
    *, devices: Iterable[Device], database: CustomerDatabase, actor=None
) -> list[AddResult]:
    """Add several devices (e.g. all devices of an order) with one client, one session."""
    devices = list(devices)
    try:
        client = _client(database)
    except (ImproperlyConfigured, ValueError) as exc:
        return [AddResult(d, AddOutcome.FAILED, str(exc)) for d in devices]
    results = []
    for device in devices:
        result = device_add_to_database(device=device, database=database, actor=actor, client=client)
        results.append(result)
        if result.credentials_refused:
            # Wrong credentials fail every device the same way: stop instead of hammering the login.
            results.extend(AddResult(d, AddOutcome.FAILED, result.message) for d in devices[len(results):])
            break
    return results


def _schedule_readiness(device_ids: list[int]) -> None:
    """Ask MyAdmin soon after an add instead of waiting for the next beat round."""
    from devices.tasks.databases import devices_refresh_readiness_task

    devices_refresh_readiness_task.delay_on_commit(device_ids=device_ids)


# --------------------------------------------------------------------------- readiness


def _mark_ready(device_id: int, database_name: str) -> bool:
    with transaction.atomic():
        device = Device.objects.select_for_update().get(pk=device_id)
        if device.ready_for_data_at is not None or device.status == Device.Status.TERMINATED:
            return False
        device.database_name = database_name
        device.ready_for_data_at = timezone.now()
        device.save(update_fields=["database_name", "ready_for_data_at", "updated_at"])
        device_record_event(
            device=device, kind="ready_for_data",
            message=f"MyAdmin reports owner database '{database_name}': ready for data.",
            data={"database": database_name},
        )
    return True


READINESS_CURSOR_KEY = "devices:readiness:cursor"


def _next_round(pending, limit: int) -> list[tuple[int, str, str]]:
    """The next ``limit`` pending devices after the last round's, wrapping around: with more
    than ``limit`` devices waiting, every one is still asked about in turn (none starves).
    The cursor lives in the cache; losing it only restarts the rotation."""
    cursor = cache.get(READINESS_CURSOR_KEY) or 0
    fields = ("pk", "serial", "database_name")
    rows = list(pending.filter(pk__gt=cursor).values_list(*fields)[:limit])
    if len(rows) < limit and cursor:
        rows += list(pending.filter(pk__lte=cursor).values_list(*fields)[:limit - len(rows)])
    wrapped = len(rows) < limit
    cache.set(READINESS_CURSOR_KEY, 0 if wrapped or not rows else rows[-1][0], timeout=None)
    return rows


def devices_refresh_readiness(
    *, device_ids: Sequence[int] | None = None, myadmin=None,
    batch_size: int = READINESS_BATCH_SIZE, limit: int = READINESS_MAX_PER_RUN,
) -> ReadinessResult:
    """Ask MyAdmin which database owns each not-yet-ready serial; mark those with an owner
    ready for data and release the records the DIG forwarder held for them."""
    result = ReadinessResult()
    pending = (Device.objects.filter(ready_for_data_at__isnull=True)
               .exclude(status=Device.Status.TERMINATED).order_by("pk"))
    if device_ids is not None:
        rows = list(pending.filter(pk__in=list(device_ids)).values_list("pk", "serial", "database_name")[:limit])
    else:
        rows = _next_round(pending, limit)
    result.checked = len(rows)
    # A database already known (e.g. recorded by another reconciler) needs no question.
    for pk, _serial, database_name in rows:
        if database_name and _mark_ready(pk, database_name):
            result.became_ready.append(pk)
    unknown = [(pk, serial) for pk, serial, database_name in rows if not database_name]
    try:
        if unknown and myadmin is None:
            from portal.clients import myadmin_client

            myadmin = myadmin_client()
        for start in range(0, len(unknown), batch_size):
            batch = unknown[start:start + batch_size]
            by_serial = {serial.upper(): pk for pk, serial in batch}
            with vendor_call_context(target="devices.Device:readiness"):
                answers = myadmin.get_device_database_names([serial for _pk, serial in batch])
            for answer in answers:
                pk = by_serial.get((answer.serial_no or "").upper())
                # Geotab's adapter: ready when serial and owner database are both non-empty [C G12].
                if pk and answer.owner_database_name and _mark_ready(pk, answer.owner_database_name):
                    result.became_ready.append(pk)
    finally:
        # Even when a later batch failed, what became ready so far releases its held records.
        if result.became_ready:
            from ingestion.services import records_release_for_devices

            result.released_records = records_release_for_devices(device_ids=result.became_ready)
    return result
