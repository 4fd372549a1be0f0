"""The simulated MyGeotab JSON-RPC server (``POST …/sandbox/mygeotab/apiv1``).

Speaks what the official `mygeotab` SDK needs (reference §4.8): HTTP 200 with
``Content-Type: application/json``; errors carry both the documented shape
(``code``/``message``/``data.type``) and the legacy ``name: "JSONRPCError"`` +
``errors[0].name/message`` the SDK reads; ``Authenticate`` answers ``path: "ThisServer"``
(or a database's configured path); expired sessions give ``InvalidUserException``.

Served faults (sandbox.faults): rate_limit → HTTP 429 + ``OverLimitException`` body +
Retry-After; outage → 503; server_error → 500; session_expiry → the caller's session is
deleted first. The sandbox's own per-minute limits answer ``OverLimitException`` with HTTP 200
and Retry-After (the real status is not documented: the portal's client handles both).
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta

from django.apps import apps
from django.db import IntegrityError, transaction
from django.db.models import F
from django.http import JsonResponse
from django.utils import timezone as dj_timezone
from django.views.decorators.csrf import csrf_exempt

from sandbox.faults import run_with_faults
from sandbox.mygeotab.models import (
    MAX_DATE,
    SandboxAsset,
    SandboxDatabase,
    SandboxRateWindow,
    SandboxSession,
    SandboxUser,
)
from sandbox.mygeotab.seed import ensure_seeded

SYSTEM = "mygeotab"
SERIAL_RE = re.compile(r"^[A-Za-z0-9]{1,12}$")
# Serial prefix → (deviceType, productId). "CX"/10032 is confirmed [C G2]; "CV" for 10184 is the
# same guess the MyAdmin sandbox uses when it mints CustomVehicleDevice serials.
PREFIX_TYPES = {"CX": ("CustomDevice", 10032), "CV": ("CustomVehicleDevice", 10184)}
VEHICLE_TYPES = {"CustomVehicleDevice"}
WRITE_METHODS = {"Add", "Set", "Remove"}


class RpcError(Exception):
    def __init__(self, type_name: str, message: str, *, code: int = -32000, status: int = 200,
                 retry_after: int | None = None):
        super().__init__(message)
        self.type_name = type_name
        self.message = message
        self.code = code
        self.status = status
        self.retry_after = retry_after


def _error_response(exc: RpcError) -> JsonResponse:
    body = {
        "error": {
            "code": exc.code,
            "message": exc.message,
            "name": "JSONRPCError",
            "data": {"id": str(uuid.uuid4()), "type": exc.type_name, "requestIndex": 0},
            "errors": [{"name": exc.type_name, "message": exc.message}],
        },
        "jsonrpc": "2.0",
        "requestIndex": 0,
    }
    response = JsonResponse(body, status=exc.status)
    if exc.retry_after is not None:
        response["Retry-After"] = str(exc.retry_after)
    return response


def _ok(result) -> JsonResponse:
    return JsonResponse({"result": result, "jsonrpc": "2.0"})


def _fmt(value: datetime) -> str:
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _parse_date(value) -> datetime:
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise RpcError("ArgumentException", f"'{value}' is not an ISO 8601 date") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# --------------------------------------------------------------------------- request handling


@csrf_exempt
def apiv1(request):
    if request.method != "POST":
        return _error_response(RpcError("MissingMethodException", "POST a JSON-RPC body", code=-32601))
    try:
        body = json.loads(request.body or b"")
        if not isinstance(body, dict):
            raise TypeError("not an object")
    except (ValueError, TypeError):
        return _error_response(RpcError("JsonSerializerException", "Invalid JSON (RFC 8259)", code=-32700))
    method = str(body.get("method") or "")
    params = body.get("params") or {}
    if not isinstance(params, dict):
        return _error_response(RpcError("JsonSerializerException", "params must be an object", code=-32700))
    ensure_seeded()

    def execute():
        try:
            # Counted (and committed) before the call runs: refused calls count too [C G9].
            _count_for(method, params)
            with transaction.atomic():
                return _ok(_dispatch(method, params))
        except RpcError as exc:
            return _error_response(exc)

    def expire_session():
        session_id = (params.get("credentials") or {}).get("sessionId")
        if session_id:
            SandboxSession.objects.filter(session_id=session_id).delete()

    return run_with_faults(
        request, SYSTEM, method, execute,
        rate_limited=lambda fault: _error_response(RpcError(
            "OverLimitException", "API calls quota exceeded. Maximum admitted 10 per 1m.",
            status=429, retry_after=fault.retry_after_seconds)),
        unavailable=lambda fault: _error_response(RpcError(
            "DatabaseMaintenanceException", "Service unavailable", status=503)),
        server_error=lambda fault: _error_response(RpcError(
            "GenericException", "An unexpected error occurred", status=500)),
        expire_session=expire_session,
    )


def _dispatch(method: str, params: dict):
    if method == "GetVersion":
        return "sandbox-1.0"
    if method == "Authenticate":
        return _authenticate(params)
    handlers = {"Add": _add, "Get": _get, "Set": _set, "Remove": _remove}
    if method not in handlers:
        raise RpcError("MissingMethodException", f"Method '{method}' not found", code=-32601)
    user = _user_for(params.get("credentials"))
    type_name = params.get("typeName")
    if type_name != "Device":
        raise RpcError("ArgumentException", f"The sandbox supports typeName 'Device' only, not '{type_name}'")
    return handlers[method](user.database, params)


def _count_for(method: str, params: dict) -> None:
    if method == "Authenticate":
        username, database_name = params.get("userName"), params.get("database")
    elif method in ("Add", "Get", "Set", "Remove"):
        credentials = params.get("credentials") if isinstance(params.get("credentials"), dict) else {}
        username, database_name = credentials.get("userName"), credentials.get("database")
    else:
        return
    db = SandboxDatabase.objects.filter(name=database_name or "").first()
    if db is None:
        return
    if method == "Authenticate":
        limit = db.authenticate_per_minute
    else:
        limit = db.write_per_minute if method in WRITE_METHODS else db.read_per_minute
    _count_call(f"{method}|{params.get('typeName') or ''}|{username}|{db.name}", limit)


def _count_call(key: str, limit: int) -> None:
    """Per-minute rule per (method, entity, user, database) [C G7]; over it → OverLimitException."""
    now = dj_timezone.now().timestamp()
    window = int(now // 60)
    with transaction.atomic():
        try:
            with transaction.atomic():
                SandboxRateWindow.objects.get_or_create(key=key, window=window)
        except IntegrityError:
            pass
        SandboxRateWindow.objects.filter(key=key, window=window).update(count=F("count") + 1)
        count = SandboxRateWindow.objects.get(key=key, window=window).count
    if count > limit:
        retry_after = max(1, int((window + 1) * 60 - now) + 1)
        raise RpcError("OverLimitException",
                       f"API calls quota exceeded. Maximum admitted {limit} per 1m.", retry_after=retry_after)


def _authenticate(params: dict) -> dict:
    username = str(params.get("userName") or "")
    password = str(params.get("password") or "")
    database_name = params.get("database")
    if database_name:
        database = SandboxDatabase.objects.filter(name=database_name).first()
        if database is None:
            # The SDK recognises "UnknownDatabase" in this exception's message [C G10].
            raise RpcError("DbUnavailableException", f"UnknownDatabase: the database '{database_name}' does not exist")
        users = SandboxUser.objects.filter(database=database, username=username)
    else:
        # The database may be omitted when the user belongs to exactly one [C G6].
        users = SandboxUser.objects.filter(username=username)
    candidates = list(users.select_related("database")[:2])
    if len(candidates) != 1 or candidates[0].password != password:
        raise RpcError("InvalidUserException", "Incorrect login credentials")
    user = candidates[0]
    database = user.database
    session = SandboxSession.objects.create(
        user=user, expires_at=dj_timezone.now() + timedelta(seconds=database.session_lifetime_seconds)
    )
    return {
        "credentials": {"database": database.name, "sessionId": session.session_id, "userName": user.username},
        "path": database.path or "ThisServer",
    }


def _user_for(credentials) -> SandboxUser:
    if not isinstance(credentials, dict):
        raise RpcError("InvalidUserException", "Incorrect login credentials")
    database = SandboxDatabase.objects.filter(name=credentials.get("database") or "").first()
    if database is None:
        raise RpcError("DbUnavailableException",
                       f"UnknownDatabase: the database '{credentials.get('database')}' does not exist")
    user = SandboxUser.objects.filter(database=database, username=credentials.get("userName") or "").first()
    if user is None:
        raise RpcError("InvalidUserException", "Incorrect login credentials")
    if credentials.get("sessionId"):
        session = SandboxSession.objects.filter(session_id=credentials["sessionId"], user=user).first()
        if session is None or session.expires_at <= dj_timezone.now():
            raise RpcError("InvalidUserException", "Incorrect login credentials")
        return user
    # A password inside credentials is accepted too [C G3].
    if credentials.get("password") and credentials["password"] == user.password:
        return user
    raise RpcError("InvalidUserException", "Incorrect login credentials")


# --------------------------------------------------------------------------- Device entity


def _entity(asset: SandboxAsset) -> dict:
    entity = {
        "id": asset.entity_id,
        "serialNumber": asset.serial_number,
        "name": asset.name,
        "deviceType": asset.device_type,
        "productId": asset.product_id,
        "groups": [{"id": g} for g in asset.groups],
        "comment": asset.comment,
        "timeZoneId": asset.time_zone_id,
        "activeFrom": _fmt(asset.active_from),
        "activeTo": _fmt(asset.active_to),
        "version": asset.version,
    }
    if asset.device_type in VEHICLE_TYPES:
        entity.update({
            "vehicleIdentificationNumber": asset.vehicle_identification_number,
            "licensePlate": asset.license_plate,
            "licenseState": asset.license_state,
        })
    return entity


def _clean_serial(value) -> str:
    serial = str(value or "").replace("-", "").upper()
    if not serial:
        raise RpcError("ArgumentNullException", "Value cannot be null. Parameter name: serialNumber")
    if len(serial) > 12:
        raise RpcError("ArgumentException", f"serialNumber '{value}' is longer than 12 characters")
    if not SERIAL_RE.match(serial):
        raise RpcError("ArgumentException", f"serialNumber '{value}' is not alphanumeric")
    return serial


def _apply_fields(asset: SandboxAsset, entity: dict) -> None:
    if "name" in entity:
        name = str(entity.get("name") or "").strip()
        if not name:
            raise RpcError("ArgumentException", "Device name cannot be empty")
        if len(name) > 50:
            raise RpcError("ArgumentException", "Device name is longer than 50 characters")
        asset.name = name
    if "groups" in entity:
        groups = entity.get("groups") or []
        if not isinstance(groups, list) or not all(isinstance(g, dict) and g.get("id") for g in groups):
            raise RpcError("ArgumentException", 'groups must be a list of {"id": ...} references')
        asset.groups = [str(g["id"]) for g in groups] or ["GroupCompanyId"]
    if "comment" in entity:
        asset.comment = str(entity.get("comment") or "")[:1024]
    if "timeZoneId" in entity:
        tz = str(entity.get("timeZoneId") or "UTC")
        if tz == "Unknown":  # rejected since 5.7.1703 [C G4]
            raise RpcError("ArgumentException", "timeZoneId 'Unknown' is not valid")
        asset.time_zone_id = tz
    if asset.device_type in VEHICLE_TYPES:
        if "vehicleIdentificationNumber" in entity:
            vin = str(entity.get("vehicleIdentificationNumber") or "")
            if len(vin) > 17:
                raise RpcError("ArgumentException", "vehicleIdentificationNumber is longer than 17 characters")
            asset.vehicle_identification_number = vin
        if "licensePlate" in entity:
            asset.license_plate = str(entity.get("licensePlate") or "")[:20]
        if "licenseState" in entity:
            asset.license_state = str(entity.get("licenseState") or "")[:20]


def _set_owner_database(serial: str, database_name: str) -> None:
    """Tell the sandbox's MyAdmin part which database owns the serial (what the real MyAdmin
    learns from MyGeotab), so GetDeviceDatabaseNamesAsync reports it. Serials MyAdmin never
    minted are accepted all the same, as a real MyGeotab accepts any valid serial."""
    try:
        myadmin_device = apps.get_model("sandbox_myadmin", "SandboxDevice")
    except LookupError:  # the MyAdmin simulator is not installed
        return
    myadmin_device.objects.filter(serial__iexact=serial).update(database_name=database_name)


def _add(db: SandboxDatabase, params: dict) -> str:
    entity = params.get("entity")
    if not isinstance(entity, dict):
        raise RpcError("ArgumentNullException", "Value cannot be null. Parameter name: entity")
    serial = _clean_serial(entity.get("serialNumber"))
    device_type, product_id = PREFIX_TYPES.get(serial[:2], ("CustomDevice", None))
    asset = SandboxAsset(database=db, serial_number=serial, device_type=device_type, product_id=product_id,
                         name=serial, groups=["GroupCompanyId"])
    _apply_fields(asset, {"name": entity.get("name") or serial, **{k: v for k, v in entity.items() if k != "name"}})
    existing = SandboxAsset.objects.filter(serial_number=serial).select_related("database").first()
    if existing is not None:
        # The real server's wording for a serial owned by another database is unknown (open question 1).
        where = "this database" if existing.database_id == db.pk else "another database"
        raise RpcError("DuplicateException", f"A device with serial number '{serial}' already exists in {where}")
    asset.active_to = MAX_DATE  # Add forces activeTo to the max date [C G4]
    try:
        with transaction.atomic():
            asset.save()
    except IntegrityError:
        raise RpcError("DuplicateException", f"A device with serial number '{serial}' already exists") from None
    _set_owner_database(serial, db.name)
    return asset.entity_id


def _get(db: SandboxDatabase, params: dict) -> list:
    search = params.get("search") or {}
    if not isinstance(search, dict):
        raise RpcError("ArgumentException", "search must be an object")
    qs = SandboxAsset.objects.filter(database=db).order_by("id")
    if search.get("id"):
        qs = qs.filter(entity_id=search["id"])
    if search.get("serialNumber"):
        qs = qs.filter(serial_number__iexact=str(search["serialNumber"]).replace("-", ""))
    if search.get("name"):
        qs = qs.filter(name__iexact=search["name"])
    limit = params.get("resultsLimit")
    if limit is not None:
        if not isinstance(limit, int) or limit < 0 or limit > 50000:
            raise RpcError("OverLimitException", "resultsLimit must be between 0 and 50000")
        qs = qs[:limit]
    return [_entity(a) for a in qs]


def _set(db: SandboxDatabase, params: dict) -> None:
    entity = params.get("entity")
    if not isinstance(entity, dict) or not entity.get("id"):
        raise RpcError("ArgumentException", "Set needs the entity with its id")
    asset = SandboxAsset.objects.select_for_update().filter(database=db, entity_id=entity["id"]).first()
    if asset is None:
        raise RpcError("ArgumentException", f"Device '{entity['id']}' not found")
    if "serialNumber" in entity:
        serial = _clean_serial(entity["serialNumber"])
        if serial != asset.serial_number:
            if SandboxAsset.objects.filter(serial_number=serial).exists():
                raise RpcError("DuplicateException", f"A device with serial number '{serial}' already exists")
            _set_owner_database(asset.serial_number, "")
            asset.serial_number = serial
    _apply_fields(asset, entity)
    if entity.get("activeFrom"):
        asset.active_from = _parse_date(entity["activeFrom"])
    if entity.get("activeTo"):
        active_to = _parse_date(entity["activeTo"])
        # Up to now + 24 h archives the device; a later non-max date is forced to max [C G4].
        asset.active_to = active_to if active_to <= dj_timezone.now() + timedelta(hours=24) else MAX_DATE
    if asset.active_from > asset.active_to:
        raise RpcError("ArgumentException", "activeFrom cannot be later than activeTo")
    asset.version += 1
    asset.save()
    _set_owner_database(asset.serial_number, db.name)


def _remove(db: SandboxDatabase, params: dict) -> None:
    entity = params.get("entity")
    if not isinstance(entity, dict) or not entity.get("id"):
        raise RpcError("ArgumentException", "Remove needs the entity with its id")
    asset = SandboxAsset.objects.filter(database=db, entity_id=entity["id"]).first()
    if asset is None:
        raise RpcError("ArgumentException", f"Device '{entity['id']}' not found")
    asset.delete()
    _set_owner_database(asset.serial_number, "")
