"""Device-record intake and the outbox's lifecycle: validate (plain Python over dicts — measured
faster than a serializer per record, see the README, DIG section), store durably with dedup, hold records of
devices that cannot take data yet, release them, replay rejected ones, prune forwarded ones.

Forwarding lives in `outbox.py`; DIG's asynchronous rejections in `feedback.py`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Count
from django.utils import timezone

from devices.models import Device
from ingestion.models import DeviceFeed, DeviceQueueClock, DeviceRecord, RecordIntakeKey
from portal.bulk import json_text, where_in

logger = logging.getLogger(__name__)

MAX_RECORDS = 5000


def knob(name: str, default: float) -> float:
    """A tunable from settings, else the environment, else the default."""
    value = getattr(settings, name, None)
    if value is None:
        value = os.environ.get(name)
    return type(default)(value) if value not in (None, "") else default


# --------------------------------------------------------------------------- validation
# DIG's record schema (reference/geotab.md §5.2). kind, required, bounds (range, or max bytes
# for Base64). Kept in plain tuples: checking 5000 records is a few milliseconds.

_I32 = (-(2**31), 2**31 - 1)
_I16 = (-32768, 32767)
_BYTE = (0, 255)
_OPT_BOOL = ("bool", False, None)

RECORD_SCHEMA: dict[str, dict[str, tuple]] = {
    "GpsRecord": {
        "Latitude": ("float", True, (-90.0, 90.0)),
        "Longitude": ("float", True, (-180.0, 180.0)),
        "Speed": ("float", False, (0.0, 1000.0)),
        "IsGpsValid": _OPT_BOOL, "IsIgnitionOn": _OPT_BOOL,
        **{f"IsAuxiliary{i}On": _OPT_BOOL for i in range(1, 9)},
    },
    # Status codes are ≤127 or ≥2000; DIG silently drops 128–1999 (fault range) [C S10], so we
    # refuse them here rather than lose them later.
    "StatusRecord": {"Code": ("status_code", True, _I32), "Value": ("int", True, _I32)},
    "GenericStatusRecord": {"Code": ("status_code", True, _I32), "Value": ("int", True, _I32)},
    "GenericFaultRecord": {"Code": ("int", True, (128, 1999)), "FaultStateActive": ("bool", True, None)},
    "AccelerationRecord": {"X": ("int", True, _I16), "Y": ("int", True, _I16), "Z": ("int", True, _I16)},
    "BinaryRecord": {"Data": ("base64", True, 32745)},
    "BluetoothRecord": {"Address": ("mac", True, None), "Data": ("float", True, None), "DataType": ("int", True, _BYTE)},
    "DriverChangeRecord": {"KeyType": ("int", True, _BYTE), "DriverId": ("base64", True, 239)},
    "J1708FaultRecord": {
        "MessageId": ("int", True, _BYTE), "ParameterId": ("int?", False, (0, 511)),
        "SubsystemId": ("int?", False, (0, 511)), "FailureModeIdentifier": ("int", True, (0, 15)),
        "OccurrenceCount": ("int", True, _BYTE), "FaultStateActive": ("bool", True, None),
    },
    "J1939FaultRecord": {
        "SuspectParameterNumber": ("int", True, (0, 524287)), "FailureModeIdentifier": ("int", True, _BYTE),
        "OccurrenceCount": ("int", True, _BYTE), "SourceAddress": ("int", True, _BYTE),
        "MalfunctionLamp": _OPT_BOOL, "RedStopLamp": _OPT_BOOL, "AmberWarningLamp": _OPT_BOOL,
        "ProtectWarningLamp": _OPT_BOOL, "FaultStateActive": ("bool", True, None),
    },
    "ObdiiFaultRecord": {"Code": ("str", True, 16), "FaultStateActive": ("bool", True, None)},
    "VinRecord": {"VehicleIdentificationNumber": ("str", True, 17)},
}
_BASE_FIELDS = ("Type", "DateTime", "SerialNo")
_REQUIRED = {rtype: tuple(name for name, spec in schema.items() if spec[1]) for rtype, schema in RECORD_SCHEMA.items()}
_NUMBER = (float, int)
_HEX = set("0123456789abcdefABCDEF")


def _field_problem(kind: str, value: Any, bounds) -> str | None:
    if kind == "float":
        if value.__class__ not in (float, int):
            return "must be a number"
    elif kind in ("int", "status_code"):
        if value.__class__ is not int:
            return "must be an integer"
        if kind == "status_code" and 128 <= value <= 1999:
            return "must be a status code (≤127 or ≥2000); 128–1999 are fault codes"
    elif kind == "bool":
        return None if value.__class__ is bool else "must be true or false"
    elif kind == "int?":
        if value is None:
            return None
        if value.__class__ is not int:
            return "must be an integer or null"
    elif kind == "str":
        if value.__class__ is not str or not value.strip():
            return "must be a non-empty string"
        return f"must be at most {bounds} characters" if len(value) > bounds else None
    elif kind == "mac":
        digits = value.replace(":", "").replace("-", "") if value.__class__ is str else ""
        return None if len(digits) == 12 and set(digits) <= _HEX else "must be a MAC address (12 hex digits)"
    elif kind == "base64":
        if value.__class__ is not str:
            return "must be a Base64 string"
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return "must be a Base64 string"
        return f"must be at most {bounds} bytes" if len(raw) > bounds else None
    if bounds is not None and not (bounds[0] <= value <= bounds[1]):
        return f"must be between {bounds[0]} and {bounds[1]}"
    return None


def _parse_record_time(value: Any) -> datetime | str:
    """An aware UTC datetime, or the problem with the value."""
    if value.__class__ is not str or len(value) < 19:
        return "must be an ISO-8601 date-time with a time zone, e.g. 2026-01-31T12:00:00Z"
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        return "must be an ISO-8601 date-time with a time zone, e.g. 2026-01-31T12:00:00Z"
    if dt.tzinfo is None:
        return "must include a time zone (Z or ±hh:mm)"
    return dt.astimezone(UTC)


def _is_canonical_utc(text: str) -> bool:
    """``YYYY-MM-DDTHH:MM:SS.ffffffZ`` laid out exactly (the digits were checked by the parser)."""
    return (len(text) == 27 and text[26] == "Z" and text[19] == "." and text[10] == "T" and text[4] == "-"
            and text[7] == "-" and text[13] == ":" and text[16] == ":")


@dataclass(slots=True)
class ValidRecord:
    index: int
    serial: str
    record_type: str
    recorded_at: datetime
    data: dict


def record_validate(index: int, record: Any, *, earliest: datetime, latest: datetime) -> tuple[ValidRecord | None, list[dict]]:
    """Check one record against DIG's schema and our sanity rules; never raises."""
    if record.__class__ is not dict:
        return None, [{"index": index, "field": "", "message": "each record must be a JSON object"}]
    errors: list[dict] = []
    rtype = record.get("Type")
    schema = RECORD_SCHEMA.get(rtype) if rtype.__class__ is str else None
    if schema is None:
        errors.append({"index": index, "field": "Type", "message": f"unknown record type {rtype!r}; one of {', '.join(RECORD_SCHEMA)}"})
    serial = record.get("SerialNo")
    if serial.__class__ is not str or not serial.strip():
        errors.append({"index": index, "field": "SerialNo", "message": "required (the device's Geotab serial)"})
        serial = ""
    else:
        serial = serial.strip().upper()
    raw_when = record.get("DateTime")
    when = _parse_record_time(raw_when)
    if when.__class__ is str:
        errors.append({"index": index, "field": "DateTime", "message": when})
    elif when > latest:
        errors.append({"index": index, "field": "DateTime", "message": "is in the future"})
    elif when < earliest:
        errors.append({"index": index, "field": "DateTime", "message": f"is older than {(latest - earliest).days} days"})
    if schema is None:
        return None, errors
    data = {"Type": rtype, "DateTime": "", "SerialNo": serial}
    for name, value in record.items():
        if name in _BASE_FIELDS:
            continue
        spec = schema.get(name)
        if spec is None:
            errors.append({"index": index, "field": name, "message": f"is not a field of {rtype}"})
            continue
        kind, _, bounds = spec
        # The common cases inline (a number in range, a boolean): most of a GPS record.
        if kind == "float" and value.__class__ in _NUMBER and (bounds is None or bounds[0] <= value <= bounds[1]):
            data[name] = value
            continue
        if kind == "bool" and value.__class__ is bool:
            data[name] = value
            continue
        problem = _field_problem(kind, value, bounds)
        if problem:
            errors.append({"index": index, "field": name, "message": problem})
        elif value is not None:  # DIG's convention: null optional fields are omitted
            data[name] = value
    for name in _REQUIRED[rtype]:
        if name not in record:
            errors.append({"index": index, "field": name, "message": "required"})
    if errors:
        return None, errors
    # Stored in one canonical UTC form. Most clients send exactly that already (DIG's own
    # examples do), and then the parsed text is kept rather than formatted again.
    data["DateTime"] = raw_when if _is_canonical_utc(raw_when) else when.isoformat(timespec="microseconds")[:-6] + "Z"
    return ValidRecord(index, serial, rtype, when, data), []


# --------------------------------------------------------------------------- intake


class IntakeError(Exception):
    """The body as a whole is unusable (nothing stored)."""

    def __init__(self, detail: str, *, code: str = "invalid", status: int = 400):
        super().__init__(detail)
        self.detail, self.code, self.status = detail, code, status


class IdempotencyConflict(IntakeError):
    def __init__(self, detail: str):
        super().__init__(detail, code="idempotency_conflict", status=409)


@dataclass
class IntakeResult:
    accepted: int = 0
    duplicates: int = 0
    held: int = 0
    rejected: int = 0
    errors: list[dict] = field(default_factory=list)
    replayed: bool = False

    def as_dict(self) -> dict:
        return {"accepted": self.accepted, "duplicates": self.duplicates, "held": self.held,
                "rejected": self.rejected, "errors": self.errors}


def _reject_non_json_constant(name: str):
    # Python's json accepts NaN/Infinity, JSON does not; stored, they would make the outbox
    # payload unreadable by DIG (and by PostgreSQL's jsonb).
    raise ValueError(f"{name} is not a JSON number")


def records_parse(body: bytes) -> list:
    """The request body as a list of 1..5000 items, or IntakeError (400/413)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        # Not strict JSON as orjson reads it (or beyond its limits, such as integers over 64
        # bits): the standard library decides, and says precisely what is wrong.
        try:
            data = json.loads(body, parse_constant=_reject_non_json_constant)
        except (ValueError, UnicodeDecodeError) as exc:
            raise IntakeError(f"Malformed JSON: {exc}.", code="parse_error") from exc
    if not isinstance(data, list):
        raise IntakeError("The body must be a JSON array of records.", code="not_an_array")
    if not data:
        raise IntakeError("The array is empty: send 1 to 5000 records.", code="empty")
    if len(data) > MAX_RECORDS:
        raise IntakeError(f"Too many records: {len(data)} (at most {MAX_RECORDS} per request).",
                          code="too_many_records", status=413)
    return data


def records_intake(*, body: bytes, user=None, idempotency_key: str = "") -> IntakeResult:
    """Validate and durably store a POSTed batch. Valid records are committed before this
    returns; invalid ones are reported per index and field; repeats are stored once."""
    key = (idempotency_key or "").strip()
    if len(key) > 255:
        raise IntakeError("Idempotency-Key must be at most 255 characters.", code="invalid_idempotency_key")
    request_hash = hashlib.sha256(body).hexdigest() if key else ""
    if key and user is not None:
        replay = _intake_key_replay(user=user, key=key, request_hash=request_hash)
        if replay is not None:
            return replay
    items = records_parse(body)
    now = timezone.now()
    earliest = now - timedelta(days=knob("RECORDS_MAX_AGE_DAYS", 365))
    latest = now + timedelta(seconds=knob("RECORDS_MAX_FUTURE_SECONDS", 300))

    result = IntakeResult()
    valid: list[ValidRecord] = []
    for index, item in enumerate(items):
        rec, errors = record_validate(index, item, earliest=earliest, latest=latest)
        if rec is None:
            result.errors.extend(errors)
            result.rejected += 1
        else:
            valid.append(rec)

    devices = {
        serial: (pk, status, database_name)
        for pk, serial, status, database_name in where_in(
            Device.objects.all(), "serial", {r.serial for r in valid}
        ).values_list("pk", "serial", "status", "database_name")
    }
    rows: list[tuple] = []
    seen: set[tuple] = set()
    per_device: dict[int, list[int]] = {}
    for rec in valid:
        device = devices.get(rec.serial)
        if device is None:
            result.errors.append({"index": rec.index, "field": "SerialNo", "message": f"unknown serial {rec.serial!r}"})
            result.rejected += 1
            continue
        if device[1] == Device.Status.TERMINATED:
            result.errors.append({"index": rec.index, "field": "SerialNo",
                                  "message": f"device {rec.serial} is terminated: its data is no longer accepted"})
            result.rejected += 1
            continue
        dedup = (rec.serial, rec.record_type, rec.recorded_at)
        result.accepted += 1
        if dedup in seen:
            result.duplicates += 1
            continue
        seen.add(dedup)
        ready = bool(device[2])
        if not ready:
            result.held += 1
        per_device.setdefault(device[0], []).append(len(rows))
        rows.append([device[0], rec.serial, rec.record_type, rec.recorded_at,
                     json_text(rec.data),
                     DeviceRecord.Status.QUEUED if ready else DeviceRecord.Status.HELD,
                     "" if ready else DeviceRecord.HoldReason.NOT_READY, 0,
                     rec.data["DateTime"]])  # the UTC time as text, for COPY (no second isoformat)
    result.errors.sort(key=lambda e: e["index"])

    try:
        with transaction.atomic():
            if key and user is not None:
                RecordIntakeKey.objects.create(user=user, key=key, request_hash=request_hash, response={})
            if rows:
                _assign_fair_keys(rows, per_device, now=now)
                inserted = _insert_rows(rows, now=now)
                result.duplicates += len(rows) - inserted
                if result.held and inserted < len(rows):
                    # A repeat of a held record is not held a second time.
                    result.held = min(result.held, inserted)
            if key and user is not None:
                RecordIntakeKey.objects.filter(user=user, key=key).update(response=result.as_dict())
            if rows and len(rows) > result.held:
                transaction.on_commit(_nudge_forwarder)
    except IntegrityError:
        # A concurrent request with the same Idempotency-Key won: answer as it did.
        replay = _intake_key_replay(user=user, key=key, request_hash=request_hash) if key and user is not None else None
        if replay is None:
            raise
        return replay
    return result


def _intake_key_replay(*, user, key: str, request_hash: str) -> IntakeResult | None:
    stored = RecordIntakeKey.objects.filter(user=user, key=key).first()
    if stored is None:
        return None
    if stored.request_hash != request_hash:
        raise IdempotencyConflict("This Idempotency-Key was used with a different body.")
    data = stored.response or {}
    return IntakeResult(
        accepted=data.get("accepted", 0), duplicates=data.get("duplicates", 0), held=data.get("held", 0),
        rejected=data.get("rejected", 0), errors=data.get("errors", []), replayed=True,
    )


def _assign_fair_keys(rows: list[list], per_device: dict[int, list[int]], *, now: datetime) -> None:
    """Weighted fair queueing: each device has a virtual clock that advances by a fixed cost
    per record and never lags behind real time. Ordering the queue by it interleaves devices,
    so a device that dumps 100,000 records delays another device's 10 by at most a batch,
    while each device's own records stay oldest first."""
    now_ms = int(now.timestamp() * 1000)
    cost_ms = 1000.0 / knob("DIG_FAIR_SHARE_RECORDS_PER_S", 10.0)
    device_ids = sorted(per_device)
    spans = [int(len(per_device[d]) * cost_ms) for d in device_ids]
    table = DeviceQueueClock._meta.db_table
    greatest = "GREATEST" if connection.vendor == "postgresql" else "MAX"
    # One upsert per request: creates missing clocks, advances each by its records' cost and
    # returns the new end; rows are locked in device order, so concurrent intakes cannot deadlock.
    ends: dict[int, int] = {}
    upsert = (f"ON CONFLICT (device_id) DO UPDATE SET fair_clock = "
              f"{greatest}({table}.fair_clock + (excluded.fair_clock - %s), excluded.fair_clock) "
              f"RETURNING device_id, fair_clock")
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Two array parameters, whatever the number of devices: a statement with thousands
            # of placeholders costs more to build and parse than the upsert itself. xmax = 0
            # marks a clock just created: a device seen for the first time.
            cursor.execute(
                f"INSERT INTO {table} (device_id, fair_clock) "
                f"SELECT d, c FROM unnest(%s::bigint[], %s::bigint[]) AS v(d, c) ORDER BY d {upsert}, xmax = 0",
                [device_ids, [now_ms + w for w in spans], now_ms],
            )
            new_devices = []
            for device_id, end, created in cursor.fetchall():
                ends[device_id] = end
                if created:
                    new_devices.append(device_id)
        else:
            new_devices = device_ids
            for chunk in range(0, len(device_ids), 500):
                ids, widths = device_ids[chunk:chunk + 500], spans[chunk:chunk + 500]
                values = ", ".join(["(%s, %s)"] * len(ids))
                params = [p for d, w in zip(ids, widths) for p in (d, now_ms + w)]
                cursor.execute(f"INSERT INTO {table} (device_id, fair_clock) VALUES {values} {upsert}",
                               [*params, now_ms])
                ends.update(cursor.fetchall())
    _feeds_create(sorted(new_devices))
    for device_id, span in zip(device_ids, spans):
        start = ends[device_id] - span
        for n, pos in enumerate(per_device[device_id]):
            rows[pos][7] = start + int(n * cost_ms)


def _feeds_create(device_ids: list[int]) -> None:
    """The feed rows (the forwarder's per-device stats, listed on the ingestion page) of
    devices seen for the first time. DO NOTHING takes no lock on an existing feed, so intake
    never waits for a settlement."""
    if not device_ids:
        return
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {DeviceFeed._meta.db_table} (device_id, records_sent, records_rejected) "
                f"SELECT d, 0, 0 FROM unnest(%s::bigint[]) AS v(d) ORDER BY d ON CONFLICT (device_id) DO NOTHING",
                [device_ids],
            )
    else:
        DeviceFeed.objects.bulk_create([DeviceFeed(device_id=d) for d in device_ids], ignore_conflicts=True)


_COLUMNS = ("device_id", "serial", "record_type", "recorded_at", "payload", "status", "hold_reason",
            "fair_key", "cause", "received_at", "available_at", "attempts")


def _insert_rows(rows: list[list], *, now: datetime) -> int:
    """Insert, skipping (serial, type, DateTime) repeats; returns how many were new.

    PostgreSQL: COPY the rows straight into the table inside a savepoint. A batch that repeats
    a stored (serial, type, DateTime) (a client retry, an overlapping upload, a concurrent
    intake) fails that COPY on the unique key; then the rows go through a temp table and
    INSERT … ON CONFLICT DO NOTHING, which is always right but writes twice. New data, the
    common case, pays for one COPY and no lookup."""
    table = DeviceRecord._meta.db_table
    cols = ", ".join(_COLUMNS)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            stamp = now.isoformat()
            tail = f"\t{stamp}\t{stamp}\t0\n"
            # COPY text format built in one pass. Only the JSON payload can hold a backslash;
            # JSON text never holds a raw tab or newline.
            buffer = "".join(
                f"{r[0]}\t{r[1]}\t{r[2]}\t{r[8]}\t{r[4].replace(chr(92), chr(92) * 2)}\t{r[5]}\t{r[6]}\t{r[7]}\t{tail}"
                for r in rows
            )
            try:
                with transaction.atomic(), cursor.cursor.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
                    copy.write(buffer)
                return len(rows)
            except (IntegrityError, connection.Database.IntegrityError):
                pass  # one of these keys is stored already (raw COPY: the driver's error)
            cursor.execute(
                "CREATE TEMP TABLE IF NOT EXISTS ingestion_record_stage ("
                "device_id bigint, serial varchar(12), record_type varchar(32), recorded_at timestamptz, "
                "payload text, status varchar(10), hold_reason varchar(200), fair_key bigint, cause varchar(300), "
                "received_at timestamptz, available_at timestamptz, attempts integer) ON COMMIT DELETE ROWS"
            )
            with cursor.cursor.copy(f"COPY ingestion_record_stage ({cols}) FROM STDIN") as copy:
                copy.write(buffer)
            cursor.execute(
                f"INSERT INTO {table} ({cols}) SELECT {cols} FROM ingestion_record_stage "
                "ON CONFLICT (serial, record_type, recorded_at) DO NOTHING"
            )
            inserted = cursor.rowcount
            cursor.execute("TRUNCATE ingestion_record_stage")
            return inserted
        adapt = connection.ops.adapt_datetimefield_value
        stamp = adapt(now)
        full = [(r[0], r[1], r[2], adapt(r[3]), *r[4:8], "", stamp, stamp, 0) for r in rows]
        placeholders = ", ".join(["%s"] * len(_COLUMNS))
        sql = f"INSERT INTO {table} ({cols}) VALUES ({placeholders}) ON CONFLICT DO NOTHING"
        before = DeviceRecord.objects.count() if connection.vendor != "sqlite" else None
        cursor.executemany(sql, full)
        if before is None:
            return cursor.rowcount
        return DeviceRecord.objects.count() - before


def _nudge_forwarder() -> None:
    """Start a forwarder soon, at most one nudge per second (the beat job covers a lost one)."""
    from django.core.cache import cache

    try:
        if not cache.add("ingestion:forward-nudge", 1, timeout=1):
            return
        from ingestion.tasks.records import records_forward_task

        records_forward_task.delay()
    except Exception:  # the broker being down must not fail an intake that has committed
        logger.warning("could not enqueue the DIG forwarder; the beat sweep will pick the records up", exc_info=True)


# --------------------------------------------------------------------------- hold / release / replay


def records_hold_for_devices(*, device_ids: Sequence[int], reason: str) -> int:
    """Hold the queued records of these devices (e.g. terminated): not sent, not dropped."""
    reason = (reason or DeviceRecord.HoldReason.STAFF)[:200]
    device_ids = list(device_ids)
    held = where_in(DeviceRecord.objects.filter(status=DeviceRecord.Status.QUEUED), "device_id", device_ids).update(
        status=DeviceRecord.Status.HELD, hold_reason=reason
    )
    # Records already held because the device was not ready now wait for the stronger reason:
    # readiness alone must not release them.
    where_in(
        DeviceRecord.objects.filter(status=DeviceRecord.Status.HELD, hold_reason=DeviceRecord.HoldReason.NOT_READY),
        "device_id", device_ids,
    ).update(hold_reason=reason)
    return held


def _ready_device_ids(device_ids: Iterable[int]) -> list[int]:
    return list(
        Device.objects.filter(pk__in=list(device_ids)).exclude(database_name="")
        .exclude(status=Device.Status.TERMINATED).values_list("pk", flat=True)
    )


def records_release_for_devices(*, device_ids: Sequence[int]) -> int:
    """Queue the records held because their device was not ready, for devices that now are
    (assigned to a database, not terminated). Safe to call any number of times."""
    ready = _ready_device_ids(device_ids)
    if not ready:
        return 0
    now = timezone.now()
    released = DeviceRecord.objects.filter(
        device_id__in=ready, status=DeviceRecord.Status.HELD, hold_reason=DeviceRecord.HoldReason.NOT_READY
    ).update(status=DeviceRecord.Status.QUEUED, hold_reason="", available_at=now)
    if released:
        transaction.on_commit(_nudge_forwarder)
    return released


def records_release_after_termination_cancelled(*, device_ids: Sequence[int]) -> int:
    """A termination was cancelled (MyAdmin undid it): the records held because the device was
    terminated wait for readiness again, and go back to the queue at once for devices that are
    ready. Returns how many were queued."""
    device_ids = list(device_ids)
    where_in(
        DeviceRecord.objects.filter(status=DeviceRecord.Status.HELD, hold_reason=DeviceRecord.HoldReason.TERMINATED),
        "device_id", device_ids,
    ).update(hold_reason=DeviceRecord.HoldReason.NOT_READY)
    return records_release_for_devices(device_ids=device_ids)


def records_release_sweep(*, limit: int = 1000) -> int:
    """The beat's safety net: release held records of every device that has become ready,
    whether or not anyone called `records_release_for_devices`."""
    candidates = (
        DeviceRecord.objects.filter(status=DeviceRecord.Status.HELD, hold_reason=DeviceRecord.HoldReason.NOT_READY)
        .values_list("device_id", flat=True).distinct()[:limit]
    )
    return records_release_for_devices(device_ids=list(candidates))


@dataclass
class ReplayResult:
    queued: int = 0
    held: int = 0
    skipped: int = 0


def records_replay(*, record_ids: Sequence[int]) -> ReplayResult:
    """Send rejected or held records again (after a fix): queued when their device can take
    data, otherwise held with the reason. Records already queued or sent are skipped."""
    result = ReplayResult()
    now = timezone.now()
    with transaction.atomic():
        rows = DeviceRecord.objects.filter(
            pk__in=list(record_ids), status__in=[DeviceRecord.Status.REJECTED, DeviceRecord.Status.HELD]
        )
        result.skipped = len(record_ids) - rows.count()
        by_device = dict(
            Device.objects.filter(pk__in=rows.values("device_id")).values_list("pk", "status")
        )
        ready = set(_ready_device_ids(by_device))
        terminated = {pk for pk, status in by_device.items() if status == Device.Status.TERMINATED}
        result.queued = rows.filter(device_id__in=ready).update(
            status=DeviceRecord.Status.QUEUED, hold_reason="", cause="", attempts=0, available_at=now
        )
        result.held += rows.filter(device_id__in=terminated).update(
            status=DeviceRecord.Status.HELD, hold_reason=DeviceRecord.HoldReason.TERMINATED
        )
        result.held += rows.exclude(device_id__in=ready | terminated).update(
            status=DeviceRecord.Status.HELD, hold_reason=DeviceRecord.HoldReason.NOT_READY
        )
        if result.queued:
            transaction.on_commit(_nudge_forwarder)
    return result


# --------------------------------------------------------------------------- retention


def records_prune(*, older_than_days: float | None = None, batch_size: int = 5000, max_batches: int = 20) -> int:
    """Delete forwarded records older than the retention period, in bounded batches (short
    transactions, no long lock). Also drops Idempotency-Keys older than a day."""
    days = older_than_days if older_than_days is not None else knob("RECORDS_RETENTION_DAYS", 30.0)
    cutoff = timezone.now() - timedelta(days=days)
    deleted = 0
    for _ in range(max_batches):
        ids = list(
            DeviceRecord.objects.filter(status=DeviceRecord.Status.SENT, sent_at__lt=cutoff)
            .order_by("sent_at").values_list("pk", flat=True)[:batch_size]
        )
        if not ids:
            break
        deleted += DeviceRecord.objects.filter(pk__in=ids).delete()[0]
    RecordIntakeKey.objects.filter(created_at__lt=timezone.now() - timedelta(days=1)).delete()
    return deleted


# --------------------------------------------------------------------------- reporting


def records_overview(*, window_minutes: int = 15) -> dict:
    """Backlog, throughput, lag and reject causes, for the admin page."""
    now = timezone.now()
    since = now - timedelta(minutes=window_minutes)
    counts = dict(
        DeviceRecord.objects.filter(status__in=[DeviceRecord.Status.QUEUED, DeviceRecord.Status.HELD])
        .values_list("status").annotate(n=Count("id")).values_list("status", "n")
    )
    # The head of the queue (the partial queue index, O(1)): how long the next record to go
    # has waited — the lag a new record joins.
    oldest = (
        DeviceRecord.objects.filter(status=DeviceRecord.Status.QUEUED).order_by("fair_key", "id")
        .values_list("received_at", flat=True).first()
    )
    sent_recent = DeviceRecord.objects.filter(status=DeviceRecord.Status.SENT, sent_at__gte=since).count()
    causes = list(
        DeviceRecord.objects.filter(status=DeviceRecord.Status.REJECTED).values("cause")
        .annotate(n=Count("id")).order_by("-n")[:10]
    )
    holds = list(
        DeviceRecord.objects.filter(status=DeviceRecord.Status.HELD).values("hold_reason")
        .annotate(n=Count("id")).order_by("-n")[:10]
    )
    return {
        "queued": counts.get(DeviceRecord.Status.QUEUED, 0),
        "held": counts.get(DeviceRecord.Status.HELD, 0),
        "head_of_queue_wait_s": (now - oldest).total_seconds() if oldest else 0.0,
        "sent_per_minute": sent_recent / window_minutes,
        "window_minutes": window_minutes,
        "reject_causes": causes,
        "hold_reasons": holds,
    }
