"""Terminations: applying the daily sheet in bulk, terminating from the portal through MyAdmin,
cancelling, reconciling, and what a termination stops (data intake, trackers, order items).

Manual termination follows the billable-call discipline of DESIGN §3: the Termination row is
committed *before* `TerminateDeviceBilling`; an answer that may have executed (timeout, 5xx) is
never retried, it is reconciled from `GetDeviceContracts` / `LookupDevice`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time

from django.core.cache import cache
from django.db import IntegrityError, connection, transaction
from django.db.models import F, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.module_loading import import_string

from devices.models import Device, DeviceEvent, Termination
from devices.services.device import EVENT_FIELDS, device_record_event, device_transition
from portal.audit import Action as AuditAction
from portal.audit import audit_bulk
from portal.bulk import bulk_insert_rows, pg_array, where_in
from portal.middleware import current_request_id

logger = logging.getLogger(__name__)


class TerminationError(ValueError):
    """A termination request the portal refuses (the message says why, for staff)."""


class TerminationConflict(TerminationError):
    """The device is already terminated or a termination of it is in progress."""


# --- effects ------------------------------------------------------------------------------------

# What a termination stops, one service per owning app (each app changes only its own tables).
# (service, reason override): the record outbox keeps a hold-reason *code* (DeviceRecord.HoldReason
# "terminated"); trackers and order items show staff the sentence.
TERMINATION_EFFECTS = (
    ("ingestion.services.records_hold_for_devices", "terminated"),
    ("devices.services.trackers_flag_for_devices", None),
    ("orders.services.order_items_flag_for_devices", None),
)


def termination_effects_apply(*, device_ids: Sequence[int], reason: str) -> list[str]:
    """Hold queued device records, flag Navixy trackers and open order items of the terminated
    devices. Returns the effects that ran. Each effect is idempotent and bulk (one call per batch)."""
    device_ids = list(device_ids)
    if not device_ids:
        return []
    ran = []
    for path, reason_override in TERMINATION_EFFECTS:
        try:
            effect = import_string(path)
        except ImportError:
            # The owning app has not shipped this effect (yet): say so loudly rather than fail
            # the termination itself, which has already happened at MyAdmin.
            logger.error("termination effect %s is not available; %d devices not processed by it",
                         path, len(device_ids))
            continue
        effect(device_ids=device_ids, reason=reason_override or reason)
        ran.append(path)
    return ran


# --- bulk application (daily sheet) -------------------------------------------------------------

OUTCOME_APPLIED = "applied"
OUTCOME_ALREADY = "already_terminated"
OUTCOME_UNKNOWN = "unknown_serial"
OUTCOME_DUPLICATE = "duplicate"


@dataclass(slots=True)
class TerminationResult:
    row_number: int
    serial: str
    outcome: str
    message: str = ""
    device_id: int | None = None


def _as_datetime(day: date | None) -> datetime:
    if day is None:
        return timezone.now()
    return datetime.combine(day, time.min, tzinfo=UTC)


def termination_apply_bulk(
    *, items: Sequence, source: str = Termination.Source.DAILY_SHEET, import_run_id: int | None = None,
    actor=None, dry_run: bool = False, label: str = "daily termination sheet",
) -> list[TerminationResult]:
    """Apply one batch of termination rows in a constant number of queries.

    ``items`` have ``number, serial, terminated_on, reason, reason_id, account, imei, comments``
    (a valid, normalised serial each). Outcome per row: applied, already terminated, unknown serial
    (kept as an unmatched Termination) or duplicate (the same serial earlier in this import).
    Call inside a transaction; the devices of the batch are locked for its duration so a manual
    termination racing the import cannot terminate a device twice.
    """
    if not items:
        return []
    serials = list({item.serial for item in items})
    devices = {
        serial: (pk, status)
        # NO KEY UPDATE: keeps a manual termination out, not an intake's foreign-key checks.
        for pk, serial, status in where_in(Device.objects.select_for_update(no_key=True), "serial", serials)
        .order_by("pk").values_list("pk", "serial", "status")
    }
    live = {
        serial: (pk, status, run_id, device_id)
        for pk, serial, status, run_id, device_id in where_in(Termination.objects, "serial", serials)
        .filter(status__in=Termination.LIVE_STATUSES)
        .values_list("pk", "serial", "status", "import_run_id", "device_id")
    }

    results: list[TerminationResult] = []
    seen: dict[str, int] = {}
    new_terminations: list[tuple] = []
    actor_id = actor.pk if getattr(actor, "pk", None) else None
    confirm_ids: list[int] = []  # live manual terminations (pending/unknown) the sheet confirms
    to_terminate: dict[int, tuple[str, object, str]] = {}  # device pk → (from status, item, message)
    now = timezone.now()

    for item in items:
        serial = item.serial
        device_pk, device_status = devices.get(serial, (None, None))
        if serial in seen:
            results.append(TerminationResult(item.number, serial, OUTCOME_DUPLICATE,
                                             f"same serial as row {seen[serial]}", device_pk))
            continue
        seen[serial] = item.number
        existing = live.get(serial)
        if existing is not None:
            t_pk, t_status, t_run, _ = existing
            if import_run_id is not None and t_run == import_run_id:
                results.append(TerminationResult(item.number, serial, OUTCOME_DUPLICATE,
                                                 "serial already listed earlier in this sheet", device_pk))
                continue
            if t_status == Termination.Status.UNMATCHED and device_pk is None:
                results.append(TerminationResult(item.number, serial, OUTCOME_UNKNOWN,
                                                 "still unknown to the portal (kept from an earlier import)"))
                continue
            if t_status == Termination.Status.UNMATCHED:
                # A serial unknown at an earlier import whose device now exists: attach and apply.
                confirm_ids.append(t_pk)
                if device_status != Device.Status.TERMINATED:
                    to_terminate[device_pk] = (device_status, item, f"termination #{t_pk} applied by the {label}")
                    results.append(TerminationResult(item.number, serial, OUTCOME_APPLIED,
                                                     f"applies termination #{t_pk} (serial now known)", device_pk))
                else:
                    results.append(TerminationResult(item.number, serial, OUTCOME_ALREADY,
                                                     "device already terminated", device_pk))
                continue
            if t_status in (Termination.Status.PENDING, Termination.Status.UNKNOWN_OUTCOME):
                # MyAdmin lists the device as terminated: the manual call in doubt did execute.
                confirm_ids.append(t_pk)
                if device_pk is not None and device_status != Device.Status.TERMINATED:
                    to_terminate[device_pk] = (device_status, item, f"termination #{t_pk} confirmed by the {label}")
                results.append(TerminationResult(item.number, serial, OUTCOME_APPLIED,
                                                 f"confirms termination #{t_pk} in progress", device_pk))
                continue
            results.append(TerminationResult(item.number, serial, OUTCOME_ALREADY,
                                             f"terminated already (termination #{t_pk})", device_pk))
            continue
        if device_pk is None:
            results.append(TerminationResult(item.number, serial, OUTCOME_UNKNOWN,
                                             "no device with this serial in the portal; kept for matching"))
            new_terminations.append(_termination_row(item, source, import_run_id, actor_id, None,
                                                     Termination.Status.UNMATCHED, "", now))
            continue
        if device_status == Device.Status.TERMINATED:
            results.append(TerminationResult(item.number, serial, OUTCOME_ALREADY,
                                             "device already terminated", device_pk))
            continue
        new_terminations.append(_termination_row(item, source, import_run_id, actor_id, device_pk,
                                                 Termination.Status.APPLIED, device_status, now))
        to_terminate[device_pk] = (device_status, item, f"terminated by the {label}")
        results.append(TerminationResult(item.number, serial, OUTCOME_APPLIED, "", device_pk))

    if dry_run:
        return results

    bulk_insert_rows(Termination, TERMINATION_ROW_FIELDS, new_terminations)
    # The audit trail gets one row per bulk write of the batch (ids listed), never one per device.
    who = actor if getattr(actor, "pk", None) else label
    if confirm_ids:
        where_in(Termination.objects, "id", confirm_ids).update(
            status=Termination.Status.APPLIED, applied_at=now, updated_at=now, error="",
            device_id=Coalesce(F("device_id"), Subquery(Device.objects.filter(serial=OuterRef("serial")).values("pk")[:1])),
        )
        audit_bulk(model=Termination, ids=confirm_ids, action=AuditAction.BULK_UPDATE, actor=who,
                   changes={"status": Termination.Status.APPLIED.value}, message=f"applied by the {label}")
    if to_terminate:
        _devices_mark_terminated(to_terminate, source=source, import_run_id=import_run_id, actor=actor, now=now)
        audit_bulk(model=Device, ids=list(to_terminate), action=AuditAction.BULK_UPDATE, actor=who,
                   changes={"status": Device.Status.TERMINATED.value}, message=f"terminated by the {label}")
        termination_effects_apply(device_ids=list(to_terminate), reason=f"Device terminated ({label})")
    return results


TERMINATION_ROW_FIELDS = (
    "device_id", "serial", "source", "status", "terminated_on", "reason_id", "reason_name", "account", "imei",
    "comments", "previous_status", "error", "actor_id", "import_run_id", "applied_at", "created_at", "updated_at",
)


def _termination_row(item, source, import_run_id, actor_id, device_pk, status, previous_status, now) -> tuple:
    return (
        device_pk, item.serial, str(source), str(status), item.terminated_on, item.reason_id, item.reason[:200],
        item.account[:64], item.imei[:32], item.comments[:500], previous_status or "", "", actor_id,
        import_run_id, now if status == Termination.Status.APPLIED else None, now, now,
    )


def _devices_mark_terminated(to_terminate: dict, *, source, import_run_id, actor, now) -> None:
    """Bulk form of device_transition(to TERMINATED): every status may go to TERMINATED
    (Device.TRANSITIONS), so one UPDATE per termination date plus one history INSERT."""
    if connection.vendor == "postgresql":
        # One statement for the batch, each device with its own termination time (unnest join).
        # Devices in id order, as the batch's locking read took them.
        pks = sorted(to_terminate)
        moments: dict[date | None, str] = {}  # a sheet names few distinct days
        for pk in pks:
            day = to_terminate[pk][1].terminated_on
            if day not in moments:
                moments[day] = _as_datetime(day).isoformat()
        table = connection.ops.quote_name(Device._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} AS d SET status = %s, terminated_at = v.moment, updated_at = %s "
                "FROM unnest(%s::bigint[], %s::timestamptz[]) AS v(id, moment) "
                "WHERE d.id = v.id AND d.status <> %s",
                [Device.Status.TERMINATED.value, now, pg_array(pks),
                 pg_array(moments[to_terminate[pk][1].terminated_on] for pk in pks), Device.Status.TERMINATED.value],
            )
    else:
        by_day: dict[date | None, list[int]] = {}
        for device_pk, (_, item, _) in to_terminate.items():
            by_day.setdefault(item.terminated_on, []).append(device_pk)
        for day, day_pks in by_day.items():
            Device.objects.filter(pk__in=day_pks).exclude(status=Device.Status.TERMINATED).update(
                status=Device.Status.TERMINATED, terminated_at=_as_datetime(day), updated_at=now
            )
    request_id = current_request_id()[:64]
    actor_id = actor.pk if getattr(actor, "pk", None) else None
    source, terminated = str(source), Device.Status.TERMINATED.value
    # A sheet repeats a few messages, days and reasons over thousands of rows: each combination
    # is worded once.
    messages: dict[tuple, str] = {}
    days: dict[date | None, str | None] = {}
    rows = []
    for device_pk, (from_status, item, message) in to_terminate.items():
        day = item.terminated_on
        key = (message, day, item.reason)
        text = messages.get(key)
        if text is None:
            text = messages[key] = _event_message(message, day, item.reason)[:500]
        if day not in days:
            days[day] = day.isoformat() if day else None
        rows.append((device_pk, "status", from_status, terminated, text,
                     {"termination_source": source, "import_run_id": import_run_id, "row": item.number,
                      "terminated_on": days[day]},
                     actor_id, request_id, now))
    bulk_insert_rows(DeviceEvent, EVENT_FIELDS, rows)


def _event_message(message: str, day: date | None, reason: str) -> str:
    parts = [message[:1].upper() + message[1:]]
    if day:
        parts.append(f"on {day.isoformat()}")
    if reason:
        parts.append(f"reason: {reason}")
    return " ".join(parts[:2]) + (f" ({parts[2]})" if len(parts) > 2 else "")


def termination_match_unmatched(*, batch_size: int = 2000, actor=None) -> int:
    """Apply kept "unknown serial" terminations whose device now exists. Returns how many."""
    applied = 0
    while True:
        with transaction.atomic():
            batch = list(
                Termination.objects.select_for_update()
                .filter(status=Termination.Status.UNMATCHED, serial__in=Device.objects.values("serial"))
                .order_by("pk")[:batch_size]
            )
            if not batch:
                return applied
            items = [_ItemFromTermination(t) for t in batch]
            termination_apply_bulk(items=items, source=Termination.Source.DAILY_SHEET, actor=actor,
                                   label="daily termination sheet (serial matched later)")
            applied += len(batch)


class _ItemFromTermination:
    """A kept termination seen as a sheet row, so matching reuses termination_apply_bulk."""

    __slots__ = ("number", "serial", "terminated_on", "reason", "reason_id", "account", "imei", "comments")

    def __init__(self, t: Termination):
        self.number, self.serial, self.terminated_on = 0, t.serial, t.terminated_on
        self.reason, self.reason_id, self.account = t.reason_name, t.reason_id, t.account
        self.imei, self.comments = t.imei, t.comments


# --- manual termination through MyAdmin ---------------------------------------------------------

REASONS_CACHE_KEY = "myadmin:termination-reasons"
REASONS_CACHE_SECONDS = 3600


def termination_reasons() -> list[tuple[int, str]]:
    """(id, name) pairs from MyAdmin `GetTerminationReasons`, cached for an hour (they change
    rarely and the admin form asks for them on every page view)."""
    cached = cache.get(REASONS_CACHE_KEY)
    if cached is not None:
        return cached
    from portal.clients import myadmin_client

    reasons = [(int(r.id), str(r.name)) for r in myadmin_client().get_termination_reasons()]
    cache.set(REASONS_CACHE_KEY, reasons, REASONS_CACHE_SECONDS)
    return reasons


def device_terminate(*, device: Device, reason_id: int, comments: str = "", actor=None) -> Termination:
    """Terminate a device's billing at MyAdmin (`TerminateDeviceBilling`) and in the portal.

    Returns the Termination: applied, failed (MyAdmin refused or did not execute; nothing
    changed) or unknown_outcome (the call may have executed; reconciliation decides)."""
    from integrations.base import NotExecutedError, OutcomeUnknownError, VendorError, vendor_call_context
    from portal.clients import myadmin_client

    reasons = dict(termination_reasons())
    if reason_id not in reasons:
        raise TerminationError(f"Unknown termination reason {reason_id}: choose one of MyAdmin's reasons.")
    comments = (comments or "").strip()[:500]

    # 1. The intent, committed before the call (DESIGN §3): a crash after this point leaves a
    # pending row the reconciler finds, never an untracked termination.
    with transaction.atomic():
        locked = Device.objects.select_for_update().get(pk=device.pk)
        if locked.status == Device.Status.TERMINATED:
            raise TerminationConflict(f"Device {locked.serial} is already terminated.")
        try:
            with transaction.atomic():
                termination = Termination.objects.create(
                    device=locked, serial=locked.serial, source=Termination.Source.MANUAL,
                    status=Termination.Status.PENDING, terminated_on=timezone.localdate(),
                    reason_id=reason_id, reason_name=reasons[reason_id][:200], account=locked.erp_no,
                    imei=locked.imei or "", comments=comments, previous_status=locked.status,
                    actor=actor if getattr(actor, "pk", None) else None,
                )
        except IntegrityError:
            raise TerminationConflict(
                f"A termination of {locked.serial} is already in progress or applied."
            ) from None
        device_record_event(device=locked, kind="termination_requested", actor=actor,
                            message=f"Termination requested ({reasons[reason_id]})",
                            data={"termination_id": termination.pk})

    # 2. The call: one attempt, never retried here.
    client = myadmin_client()
    try:
        with vendor_call_context(target=f"devices.Termination:{termination.pk}"):
            client.terminate_device_billing(locked.serial, reason_id, comments=comments)
    except OutcomeUnknownError as exc:
        _termination_set(termination, status=Termination.Status.UNKNOWN_OUTCOME,
                         error=f"Outcome unknown: {exc}"[:500])
        return termination_reconcile(termination=termination)
    except NotExecutedError as exc:
        _termination_set(termination, status=Termination.Status.FAILED,
                         error=f"MyAdmin did not execute the termination ({exc}); nothing changed, try again."[:500])
        return termination
    except VendorError as exc:
        _termination_set(termination, status=Termination.Status.FAILED, error=f"MyAdmin refused: {exc}"[:500])
        return termination

    # 3. Executed: close the intent and terminate the device in the same transaction.
    return _termination_close_applied(termination, actor=actor, message="Terminated in MyAdmin by portal staff")


def _termination_set(termination: Termination, **fields) -> None:
    for key, value in fields.items():
        setattr(termination, key, value)
    termination.save(update_fields=[*fields, "updated_at"])


def _termination_close_applied(termination: Termination, *, actor=None, message: str) -> Termination:
    with transaction.atomic():
        termination = Termination.objects.select_for_update().get(pk=termination.pk)
        if termination.status == Termination.Status.APPLIED:
            return termination
        termination.status = Termination.Status.APPLIED
        termination.applied_at = timezone.now()
        termination.error = ""
        termination.save(update_fields=["status", "applied_at", "error", "updated_at"])
        device = termination.device
        if device is not None and device.status != Device.Status.TERMINATED:
            reason = f" ({termination.reason_name})" if termination.reason_name else ""
            device_transition(device=device, to_status=Device.Status.TERMINATED, actor=actor,
                              message=f"{message}{reason}, termination #{termination.pk}")
            termination_effects_apply(device_ids=[device.pk], reason=f"Device terminated ({termination.get_source_display()})")
    return termination


def _contract_is_terminated(contract) -> bool | None:
    """True/False from a MyAdmin ApiDeviceContract (typed result or dict); None when it says
    nothing either way."""
    def get(obj, *names):
        for name in names:
            if isinstance(obj, dict) and name in obj:
                return obj[name]
            if hasattr(obj, name):
                return getattr(obj, name)
        return None

    flag = get(contract, "is_terminated", "isTerminated", "IsTerminated")
    if flag is not None:
        return bool(flag)
    if get(contract, "terminated_date", "terminatedDate", "TerminatedDate"):
        return True
    return None


def _same_serial(contract, serial: str) -> bool:
    found = getattr(contract, "serial_no", None)
    return not found or str(found).upper() == serial.upper()


def termination_reconcile(*, termination: Termination) -> Termination:
    """Decide a pending / unknown-outcome manual termination from what MyAdmin reports
    (`GetDeviceContracts` for the serial). Terminated there → applied; listed and not terminated
    → failed (the call did not execute: staff may terminate again); no answer → stays unknown."""
    from integrations.base import VendorError, vendor_call_context
    from portal.clients import myadmin_client

    termination.refresh_from_db()
    if termination.status not in (Termination.Status.PENDING, Termination.Status.UNKNOWN_OUTCOME):
        return termination
    device = termination.device
    client = myadmin_client()
    try:
        with vendor_call_context(target=f"devices.Termination:{termination.pk}"):
            # The client pages lazily: consume inside the try so a vendor error is caught here.
            contracts = list(client.get_device_contracts(for_account=device.erp_no, serial_nos=[termination.serial]))
    except VendorError as exc:
        _termination_set(termination, status=Termination.Status.UNKNOWN_OUTCOME,
                         error=f"Outcome unknown; MyAdmin could not be asked yet ({exc})"[:500])
        return termination
    verdicts = [_contract_is_terminated(c) for c in contracts if _same_serial(c, termination.serial)]
    if any(v is True for v in verdicts):
        return _termination_close_applied(termination, message="Termination confirmed by MyAdmin (reconciled)")
    if any(v is False for v in verdicts):
        _termination_set(termination, status=Termination.Status.FAILED,
                         error="MyAdmin shows the device not terminated: the call did not take effect. "
                               "Terminate again if still wanted.")
        device_record_event(device=device, kind="termination_failed",
                            message=f"Termination #{termination.pk} did not take effect at MyAdmin")
        return termination
    _termination_set(termination, status=Termination.Status.UNKNOWN_OUTCOME,
                     error="Outcome unknown; MyAdmin does not list the device yet. Will check again.")
    return termination


def termination_reconcile_pending(*, older_than_seconds: int = 120, limit: int = 200) -> int:
    """Reconcile manual terminations left pending (worker died mid-call) or of unknown outcome."""
    cutoff = timezone.now() - timezone.timedelta(seconds=older_than_seconds)
    ids = list(
        Termination.objects.filter(
            source=Termination.Source.MANUAL,
            status__in=(Termination.Status.PENDING, Termination.Status.UNKNOWN_OUTCOME),
            updated_at__lt=cutoff,
        ).order_by("pk").values_list("pk", flat=True)[:limit]
    )
    for pk in ids:
        termination_reconcile(termination=Termination(pk=pk))
    return len(ids)


def terminations_reconcile_from_myadmin(*, accounts: Sequence[str] | None = None, batch_size: int = 1000) -> int:
    """Terminations MyAdmin knows and the portal does not (terminated in MyAdmin by the partner,
    sheet not received): page `GetDeviceContracts` per account and apply the terminated ones as
    source "reconciled". Read-only towards MyAdmin; idempotent. Returns how many were applied."""
    from integrations.base import VendorError, vendor_call_context
    from portal.clients import myadmin_client

    if accounts is None:
        accounts = list(Device.objects.exclude(status=Device.Status.TERMINATED).order_by()
                        .values_list("erp_no", flat=True).distinct())
    client = myadmin_client()
    applied = 0
    for account in accounts:
        pending: list[_ContractItem] = []
        try:
            with vendor_call_context(target=f"reconcile-terminations:{account}"):
                for contract in client.get_device_contracts(for_account=account):
                    if not getattr(contract, "is_terminated", False) or not getattr(contract, "serial_no", ""):
                        continue
                    pending.append(_ContractItem(contract, account))
                    if len(pending) >= batch_size:
                        applied += _apply_reconciled(pending)
                        pending = []
        except VendorError as exc:
            logger.warning("termination reconciliation for %s stopped: %s", account, exc)
        applied += _apply_reconciled(pending)
    return applied


class _ContractItem:
    __slots__ = ("number", "serial", "terminated_on", "reason", "reason_id", "account", "imei", "comments")

    def __init__(self, contract, account: str):
        self.number, self.serial = 0, str(contract.serial_no).upper()
        day = getattr(contract, "terminated_date", None)
        self.terminated_on = day.date() if day else None
        self.reason, self.reason_id, self.account = "", None, account
        self.imei, self.comments = "", "Terminated in MyAdmin (found by reconciliation)"


def _apply_reconciled(items: list) -> int:
    if not items:
        return 0
    with transaction.atomic():
        # Only serials the portal holds and has not terminated: unknown ones are not ours to keep.
        wanted = set(where_in(Device.objects, "serial", [i.serial for i in items])
                     .exclude(status=Device.Status.TERMINATED).values_list("serial", flat=True))
        results = termination_apply_bulk(items=[i for i in items if i.serial in wanted],
                                          source=Termination.Source.RECONCILED, label="reconciliation with MyAdmin")
    return sum(1 for r in results if r.outcome == OUTCOME_APPLIED)


def termination_cancel(*, termination: Termination, actor=None) -> Termination:
    """Cancel a manual termination at MyAdmin (`CancelDeviceTerminationAsync`) while MyAdmin still
    holds it as pending. The device goes back to the status it had before."""
    from integrations.base import OutcomeUnknownError, VendorError, vendor_call_context
    from portal.clients import myadmin_client

    termination.refresh_from_db()
    if termination.source != Termination.Source.MANUAL:
        raise TerminationError("Only terminations made from the portal can be cancelled here.")
    if termination.status not in (Termination.Status.APPLIED, Termination.Status.UNKNOWN_OUTCOME):
        raise TerminationError(f"A {termination.get_status_display().lower()} termination cannot be cancelled.")
    try:
        with vendor_call_context(target=f"devices.Termination:{termination.pk}"):
            myadmin_client().cancel_device_termination(termination.serial)
    except OutcomeUnknownError as exc:
        raise TerminationError(f"The cancellation may or may not have reached MyAdmin ({exc}); "
                               "check the device in MyAdmin before trying again.") from None
    except VendorError as exc:
        raise TerminationError(f"MyAdmin does not allow cancelling this termination: {exc}") from None

    with transaction.atomic():
        termination = Termination.objects.select_for_update().get(pk=termination.pk)
        termination.status = Termination.Status.CANCELLED
        termination.save(update_fields=["status", "updated_at"])
        device = Device.objects.select_for_update().get(pk=termination.device_id)
        restore = termination.previous_status or Device.Status.ACTIVE
        if device.status == Device.Status.TERMINATED:
            # The one way out of TERMINATED: MyAdmin undid the termination, so the portal follows.
            Device.objects.filter(pk=device.pk).update(status=restore, terminated_at=None, updated_at=timezone.now())
            device_record_event(device=device, kind="status", from_status=Device.Status.TERMINATED,
                                to_status=restore, actor=actor,
                                message=f"Termination #{termination.pk} cancelled in MyAdmin")
            # What the termination held comes back; its flags on trackers and order items stay
            # for staff to clear, since someone may have acted on them already.
            from ingestion.services import records_release_after_termination_cancelled

            records_release_after_termination_cancelled(device_ids=[device.pk])
    return termination

