"""DIG's record schema as the simulator enforces it at POST time (reference/geotab.md §5.2).

A record that breaks the schema makes the whole POST a 400, like the real OpenAPI validation;
well-formed records that DIG refuses later (unassigned serial, stale timestamp, a status code
outside the status range) are reported through /invalidrecords instead (see services.py).

The table repeats the portal's (ingestion.services.records.RECORD_SCHEMA) on purpose: the
simulator stands in for Geotab and is written from the vendor's documentation, not from the
client it tests, so a mistake in the portal's table shows up as a 400 here instead of being
shared. The two differ where DIG's POST-time and later checks differ (status codes, lengths).
"""

import base64
import binascii
from datetime import UTC, datetime

INT16 = (-32768, 32767)
BYTE = (0, 255)

# field → (kind, required, (lo, hi) or max bytes for base64)
_BOOL = ("bool", False, None)
SCHEMA: dict[str, dict[str, tuple]] = {
    "GpsRecord": {
        "Latitude": ("float", True, (-90.0, 90.0)),
        "Longitude": ("float", True, (-180.0, 180.0)),
        "Speed": ("float", False, (0.0, 1000.0)),
        "IsGpsValid": _BOOL, "IsIgnitionOn": _BOOL,
        **{f"IsAuxiliary{i}On": _BOOL for i in range(1, 9)},
    },
    "StatusRecord": {"Code": ("int", True, (-2**31, 2**31 - 1)), "Value": ("int", True, (-2**31, 2**31 - 1))},
    "GenericStatusRecord": {"Code": ("int", True, (-2**31, 2**31 - 1)), "Value": ("int", True, (-2**31, 2**31 - 1))},
    "GenericFaultRecord": {"Code": ("int", True, (128, 1999)), "FaultStateActive": ("bool", True, None)},
    "AccelerationRecord": {"X": ("int", True, INT16), "Y": ("int", True, INT16), "Z": ("int", True, INT16)},
    "BinaryRecord": {"Data": ("base64", True, 32745)},
    "BluetoothRecord": {"Address": ("mac", True, None), "Data": ("float", True, None), "DataType": ("int", True, BYTE)},
    "DriverChangeRecord": {"KeyType": ("int", True, BYTE), "DriverId": ("base64", True, 239)},
    "J1708FaultRecord": {
        "MessageId": ("int", True, BYTE), "ParameterId": ("int?", False, (0, 511)),
        "SubsystemId": ("int?", False, (0, 511)), "FailureModeIdentifier": ("int", True, (0, 15)),
        "OccurrenceCount": ("int", True, BYTE), "FaultStateActive": ("bool", True, None),
    },
    "J1939FaultRecord": {
        "SuspectParameterNumber": ("int", True, (0, 524287)), "FailureModeIdentifier": ("int", True, BYTE),
        "OccurrenceCount": ("int", True, BYTE), "SourceAddress": ("int", True, BYTE),
        "MalfunctionLamp": _BOOL, "RedStopLamp": _BOOL, "AmberWarningLamp": _BOOL, "ProtectWarningLamp": _BOOL,
        "FaultStateActive": ("bool", True, None),
    },
    "ObdiiFaultRecord": {"Code": ("str", True, None), "FaultStateActive": ("bool", True, None)},
    "VinRecord": {"VehicleIdentificationNumber": ("str", True, None)},
}


def parse_datetime(value) -> datetime | None:
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt


def _check(kind: str, value, bounds) -> str | None:
    if kind in ("int", "int?"):
        if value is None and kind == "int?":
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            return "must be an integer"
    elif kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return "must be a number"
    elif kind == "bool":
        return None if isinstance(value, bool) else "must be true or false"
    elif kind == "str":
        return None if isinstance(value, str) and value else "must be a non-empty string"
    elif kind == "mac":
        if not isinstance(value, str) or len(value.replace(":", "").replace("-", "")) != 12:
            return "must be a MAC address"
        return None
    elif kind == "base64":
        if not isinstance(value, str):
            return "must be a Base64 string"
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return "must be a Base64 string"
        return f"must be at most {bounds} bytes" if len(raw) > bounds else None
    if bounds is not None and not (bounds[0] <= value <= bounds[1]):
        return f"must be between {bounds[0]} and {bounds[1]}"
    return None


_BASE = frozenset({"Type", "DateTime", "SerialNo"})


def validate_record(record) -> list[str]:
    """Schema errors of one record (empty when valid). Called for every record of every POST,
    so it stays a single pass over the record's keys."""
    if record.__class__ is not dict:
        return ["record must be an object"]
    fields = SCHEMA.get(record.get("Type"))
    if fields is None:
        return [f"Type: unknown record type {record.get('Type')!r}"]
    errors = []
    serial = record.get("SerialNo")
    if serial.__class__ is not str or not serial:
        errors.append("SerialNo: required")
    if parse_datetime(record.get("DateTime")) is None:
        errors.append("DateTime: required, ISO-8601")
    present = 0
    for name, value in record.items():
        spec = fields.get(name)
        if spec is None:
            if name not in _BASE:
                errors.append(f"{name}: unknown field")
            continue
        present += spec[1]
        problem = _check(spec[0], value, spec[2])
        if problem:
            errors.append(f"{name}: {problem}")
    if present < _REQUIRED[record["Type"]][0]:
        errors.extend(f"{name}: required" for name in _REQUIRED[record["Type"]][1] if name not in record)
    return errors


_REQUIRED = {
    rtype: (sum(1 for spec in fields.values() if spec[1]), [n for n, spec in fields.items() if spec[1]])
    for rtype, fields in SCHEMA.items()
}
