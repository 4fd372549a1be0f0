"""The simulated MyAdmin JSON-RPC endpoint (reference geotab.md §1, §2, §4.1, §7).

POST only (GET → 405 [C S4]); body either the documented form field ``JSON-RPC`` or raw JSON
[C S2; 3P S17]. Errors are HTTP 200 with ``{"error": {"name": "JSONRPCError", "message",
"errors": [{"name", "message"}]}}`` [C S2]; rate limits are HTTP 429 with Retry-After [C S9].
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import string
from datetime import UTC, datetime

from django.db import IntegrityError, transaction
from django.db.models import F
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from sandbox.faults import run_with_faults
from sandbox.myadmin import auth
from sandbox.myadmin.models import (
    SandboxAccount,
    SandboxDevice,
    SandboxRateWindow,
    SandboxTerminationReason,
    SandboxUser,
)
from sandbox.myadmin.seed import ensure_seeded

logger = logging.getLogger(__name__)

SYSTEM = "myadmin"
# 10032 → "CX" [C S6]; 10184's prefix is unpublished: "CV" is the sandbox's guess.
PRODUCT_PREFIXES = {10032: "CX", 10184: "CV"}
PRODUCT_TYPES = {10032: "CustomDevice", 10184: "CustomVehicleDevice"}
SERIAL_ALPHABET = string.ascii_uppercase + string.digits
BULK_MAX = 1000
PAGE_SIZE = 1000


class RpcError(Exception):
    def __init__(self, name: str, message: str):
        super().__init__(message)
        self.name = name
        self.message = message


def rpc_error(name: str, message: str) -> JsonResponse:
    return JsonResponse({"error": {"name": "JSONRPCError", "message": message,
                                   "errors": [{"name": name, "message": message}]}})


def rpc_result(result) -> JsonResponse:
    return JsonResponse({"result": result}, safe=False)


def _rate_limit_per_minute() -> int:
    try:
        return int(os.environ.get("SANDBOX_MYADMIN_RATE_PER_MINUTE", "550"))  # [C S9]
    except ValueError:
        return 550


def _over_rate_limit(key: str) -> int | None:
    """Count this request in its one-minute window; seconds to wait when over the limit."""
    now = timezone.now().timestamp()
    window = int(now // 60)
    with transaction.atomic():
        updated = SandboxRateWindow.objects.filter(key=key, window=window).update(count=F("count") + 1)
        if not updated:
            try:
                with transaction.atomic():
                    SandboxRateWindow.objects.create(key=key, window=window, count=1)
            except IntegrityError:
                SandboxRateWindow.objects.filter(key=key, window=window).update(count=F("count") + 1)
        count = SandboxRateWindow.objects.filter(key=key, window=window).values_list("count", flat=True).first()
    if window % 50 == 0:
        SandboxRateWindow.objects.filter(window__lt=window - 5).delete()
    if count and count > _rate_limit_per_minute():
        return max(1, int((window + 1) * 60 - now) + 1)
    return None


def _parse_body(request) -> dict:
    content_type = request.content_type or ""
    if content_type.startswith("application/x-www-form-urlencoded") or "JSON-RPC" in request.POST:
        raw = request.POST.get("JSON-RPC")
        if raw is None:
            raise RpcError("ArgumentException", "Missing form field JSON-RPC")
    else:
        raw = request.body.decode("utf-8", errors="replace")
    try:
        body = json.loads(raw or "")
    except ValueError as exc:
        raise RpcError("JsonSerializerException", f"Invalid JSON-RPC body: {exc}") from exc
    if not isinstance(body, dict) or not isinstance(body.get("method"), str):
        raise RpcError("ArgumentException", "JSON-RPC body needs a method")
    params = body.get("params") or {}
    if not isinstance(params, dict):
        raise RpcError("ArgumentException", "params must be an object")
    return {"method": body["method"], "params": params}


@csrf_exempt
@require_http_methods(["POST"])
def jsonrpc(request, version: str = "v2"):
    ensure_seeded()
    try:
        body = _parse_body(request)
    except RpcError as exc:
        return rpc_error(exc.name, exc.message)
    method, params = body["method"], body["params"]
    handler = HANDLERS.get(method)
    if handler is None:
        return rpc_error("MissingMethodException", f"Unknown method: {method}")

    caller = str(params.get("apiKey") or request.META.get("REMOTE_ADDR") or "anonymous")
    wait = _over_rate_limit(f"{caller}")
    if wait is not None:
        response = JsonResponse({"error": {"name": "JSONRPCError", "message": "Too Many Requests",
                                           "errors": [{"name": "TooManyRequests", "message": "Rate limit exceeded"}]}},
                                status=429)
        response["Retry-After"] = str(wait)
        return response

    def execute():
        try:
            with transaction.atomic():
                if method == "Authenticate":
                    return rpc_result(handler(params))
                user = _authorised_user(params)
                return rpc_result(handler(user, params))
        except RpcError as exc:
            return rpc_error(exc.name, exc.message)

    def rate_limited(fault):
        response = JsonResponse({"error": {"name": "JSONRPCError", "message": "Too Many Requests",
                                           "errors": [{"name": "TooManyRequests", "message": "Rate limit exceeded"}]}},
                                status=429)
        response["Retry-After"] = str(fault.retry_after_seconds)
        return response

    return run_with_faults(
        request, SYSTEM, method, execute,
        rate_limited=rate_limited,
        expire_session=lambda: auth.session_expire(params.get("sessionId")),
    )


def _authorised_user(params: dict) -> SandboxUser:
    session = auth.session_lookup(params.get("sessionId"))
    if session is None or str(session.user.user_id) != str(params.get("apiKey") or ""):
        # An unknown/foreign session is reported like an expired one: re-authenticate.
        raise RpcError("SessionExpiredException", "Session is invalid or has expired; call Authenticate")
    if auth.user_for_session(params.get("sessionId")) is None:
        raise RpcError("SessionExpiredException", "Session has expired; call Authenticate")
    return session.user


# --------------------------------------------------------------------------- helpers


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _parse_iso(value, field: str) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        parsed = datetime.fromisoformat(str(value))  # Python 3.11 reads "Z"
    except ValueError as exc:
        raise RpcError("ArgumentException", f"{field} is not an ISO-8601 date") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _account(user: SandboxUser, erp_no) -> SandboxAccount:
    account = user.accounts.filter(account_id=str(erp_no or "")).first()
    if account is None:
        raise RpcError("MyAdminException", f"User is not authorized for account {erp_no!s}")
    return account


def _product(params: dict) -> int:
    try:
        product_id = int(params.get("productId"))
    except (TypeError, ValueError) as exc:
        raise RpcError("ArgumentException", "productId is required") from exc
    if product_id not in PRODUCT_PREFIXES:
        raise RpcError("MyAdminException", f"Invalid product: {product_id}")
    return product_id


def _new_serials(product_id: int, count: int) -> list[str]:
    prefix = PRODUCT_PREFIXES[product_id]
    serials: set[str] = set()
    for _ in range(20):
        while len(serials) < count:
            serials.add(prefix + "".join(secrets.choice(SERIAL_ALPHABET) for _ in range(12 - len(prefix))))
        taken = set(SandboxDevice.objects.filter(serial__in=serials).values_list("serial", flat=True))
        serials -= taken
        if len(serials) == count:
            return sorted(serials)
    raise RpcError("MyAdminException", "Could not allocate serial numbers")


def _mint(user: SandboxUser, params: dict, *, account: SandboxAccount, count: int) -> list[dict]:
    product_id = _product(params)
    serials = _new_serials(product_id, count)
    SandboxDevice.objects.bulk_create(
        SandboxDevice(serial=s, product_id=product_id, account=account, promo_code=str(params.get("promoCode") or ""))
        for s in serials
    )
    return [{"isSuccess": True, "serialNo": s, "error": None} for s in serials]


def _visible_devices(user: SandboxUser):
    return SandboxDevice.objects.filter(account__in=user.accounts.all()).select_related("account")


def _device(user: SandboxUser, serial, *, is_imei: bool = False) -> SandboxDevice:
    qs = _visible_devices(user)
    device = (qs.filter(imei=str(serial or "")) if is_imei else qs.filter(serial=str(serial or ""))).first()
    if device is None:
        raise RpcError("MyAdminException", f"Device not found: {serial}")
    return device


def _termination_pending(device: SandboxDevice) -> bool:
    return bool(device.terminated_at and device.termination_pending
                and device.terminated_at.astimezone(UTC).date() == timezone.now().astimezone(UTC).date())


def _contract(device: SandboxDevice) -> dict:
    return {
        "id": device.pk,
        "account": {"accountId": device.account.account_id},
        "device": {"id": device.pk, "serialNumber": device.serial, "deviceType": PRODUCT_TYPES[device.product_id]},
        "productId": device.product_id,
        "productCode": str(device.product_id),
        "comments": device.comments,
        "promoCode": device.promo_code,
        "groupId": device.group_id or None,
        "isTerminated": device.terminated_at is not None,
        "terminatedDate": _iso(device.terminated_at),
        "startDate": _iso(device.created_at),
        "contractStartDate": _iso(device.created_at),
        "simCardNumber": device.sim_number or None,
        "latestDeviceDatabase": {"databaseName": device.database_name} if device.database_name else None,
    }


# --------------------------------------------------------------------------- methods


def authenticate(params: dict) -> dict:
    username = str(params.get("username") or "")
    user = SandboxUser.objects.filter(username__iexact=username).first()
    if user is None:
        raise RpcError("WebServerInvokerJSONException", f"UnknownUser: {username}")  # [C S2]
    if not secrets.compare_digest(user.password, str(params.get("password") or "")):
        # Undocumented in MyAdmin [I]: same exception type, a different message.
        raise RpcError("WebServerInvokerJSONException", f"IncorrectPassword: {username}")
    session = auth.session_open(user)
    return {
        "userId": str(user.user_id),
        "sessionId": str(session.session_id),
        "lastLogonDate": _iso(timezone.now()),
        "accounts": [{"accountId": a.account_id, "currency": {"code": a.currency_code, "name": a.currency_code}}
                     for a in user.accounts.all()],
        "roles": [{"name": "Device_Admin", "comments": ""}, {"name": "Third-Party-Integrator", "comments": ""}],
        "name": user.username,
    }


def provision_device(user: SandboxUser, params: dict) -> dict:
    account = user.accounts.order_by("account_id").first()
    if account is None:
        raise RpcError("MyAdminException", "User has no default account")
    return _mint(user, params, account=account, count=1)[0]


def provision_device_to_account(user: SandboxUser, params: dict) -> dict:
    account = _account(user, params.get("erpNo"))
    return _mint(user, params, account=account, count=1)[0]


def provision_devices_bulk(user: SandboxUser, params: dict) -> list[dict]:
    account = _account(user, params.get("erpNo"))
    try:
        quantity = int(params.get("quantity", 1))
    except (TypeError, ValueError) as exc:
        raise RpcError("ArgumentException", "quantity must be an integer") from exc
    if not 1 <= quantity <= BULK_MAX:
        raise RpcError("ArgumentOutOfRangeException", f"quantity must be between 1 and {BULK_MAX}")
    return _mint(user, params, account=account, count=quantity)


def update_device_contracts(user: SandboxUser, params: dict) -> None:
    serials = params.get("serialNos") or []
    if not isinstance(serials, list) or not serials:
        raise RpcError("ArgumentException", "serialNos is required")
    serials = [str(s) for s in serials]
    devices = list(_visible_devices(user).filter(serial__in=serials))
    missing = sorted(set(serials) - {d.serial for d in devices})
    if missing:  # all or nothing
        raise RpcError("MyAdminException", f"Device not found: {', '.join(missing[:10])}")
    fields = []
    for flag, field, key, limit in (("updateComments", "comments", "comments", 500),
                                    ("updatePromoCode", "promo_code", "promoCode", 64),
                                    ("updateGroupId", "group_id", "groupId", 64)):
        if params.get(flag):
            fields.append(field)
            for device in devices:
                setattr(device, field, str(params.get(key) or "")[:limit])
    if fields:
        SandboxDevice.objects.bulk_update(devices, fields, batch_size=500)


def terminate_device_billing(user: SandboxUser, params: dict) -> None:
    device = _device(user, params.get("serialNo"), is_imei=bool(params.get("isImei")))
    try:
        reason_id = int(params.get("reasonId"))
    except (TypeError, ValueError) as exc:
        raise RpcError("ArgumentException", "reasonId is required") from exc
    if not SandboxTerminationReason.objects.filter(reason_id=reason_id).exists():
        raise RpcError("MyAdminException", f"Invalid termination reason: {reason_id}")
    if device.terminated_at is not None:
        raise RpcError("MyAdminException", f"Device {device.serial} is already terminated")
    device.terminated_at = timezone.now()
    device.termination_reason_id = reason_id
    device.termination_comments = str(params.get("comments") or "")[:500]
    device.termination_pending = True
    device.save()


def cancel_device_termination(user: SandboxUser, params: dict) -> None:
    device = _device(user, params.get("serialNo"))
    if not _termination_pending(device):
        raise RpcError("MyAdminException", f"Device {device.serial} has no pending termination to cancel")
    device.terminated_at = None
    device.termination_reason_id = None
    device.termination_comments = ""
    device.termination_pending = False
    device.save()


def get_termination_reasons(user: SandboxUser, params: dict) -> list[dict]:
    return [{"id": r.reason_id, "devicePlanId": 5, "parentId": None, "sortId": r.sort_id, "name": r.name}
            for r in SandboxTerminationReason.objects.all()]


def get_device_contracts(user: SandboxUser, params: dict) -> list[dict]:
    account = _account(user, params.get("forAccount"))
    from_date = _parse_iso(params.get("fromDate"), "fromDate")
    to_date = _parse_iso(params.get("toDate"), "toDate")
    if from_date is None or to_date is None:
        raise RpcError("ArgumentException", "fromDate and toDate are required")
    qs = SandboxDevice.objects.filter(account=account, created_at__gte=from_date, created_at__lte=to_date)
    qs = qs.select_related("account")
    if params.get("serialNos"):
        qs = qs.filter(serial__in=[str(s) for s in params["serialNos"]])
    if params.get("imeis"):
        qs = qs.filter(imei__in=[str(s) for s in params["imeis"]])
    if params.get("commentsFilter"):
        qs = qs.filter(comments__icontains=str(params["commentsFilter"]))
    if params.get("nextId") not in (None, ""):
        try:
            qs = qs.filter(pk__gt=int(params["nextId"]))
        except (TypeError, ValueError) as exc:
            raise RpcError("ArgumentException", "nextId must be an integer") from exc
    return [_contract(d) for d in qs.order_by("pk")[:PAGE_SIZE]]


def lookup_device(user: SandboxUser, params: dict) -> dict:
    device = _device(user, params.get("serialNo"))
    return {
        "serialNo": device.serial,
        "firmwareVersion": "",
        "comments": device.comments,
        "lastServerCommunication": None,
        "possibleIssues": [],
        "simNumber": device.sim_number,
        "simActive": bool(device.sim_number),
        "lastValidGpsRecord": None,
        "lastValidEngineRecord": None,
        "request": None,
        "resultDateUtc": _iso(timezone.now()),
    }


def get_device_database_names(user: SandboxUser, params: dict) -> list[dict]:
    serials = params.get("serialNumbers") or []
    if not isinstance(serials, list):
        raise RpcError("ArgumentException", "serialNumbers must be a list")
    devices = _visible_devices(user).filter(serial__in=[str(s) for s in serials])
    return [{"serialNo": d.serial, "ownerDatabaseName": d.database_name or None,
             "sharedDatabaseNames": list(d.shared_database_names or [])} for d in devices]


HANDLERS = {
    "Authenticate": authenticate,
    "ProvisionDevice": provision_device,
    "ProvisionDeviceToAccount": provision_device_to_account,
    "ProvisionDevicesBulk": provision_devices_bulk,
    "UpdateDeviceContracts": update_device_contracts,
    "TerminateDeviceBilling": terminate_device_billing,
    "CancelDeviceTerminationAsync": cancel_device_termination,
    "GetTerminationReasons": get_termination_reasons,
    "GetDeviceContracts": get_device_contracts,
    "LookupDevice": lookup_device,
    "GetDeviceDatabaseNamesAsync": get_device_database_names,
}

