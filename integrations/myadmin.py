"""Geotab MyAdmin JSON-RPC client (reference: shared/reference/geotab.md §1, §2, §4.1).

Plain Python, no Django. One instance per process is fine; the session (``userId`` +
``sessionId``) lives in the shared token store so every worker uses the same one, and it is
renewed single-flight only when MyAdmin answers ``SessionExpiredException``.

Retry policy, per the portal's invariants:
- every method: a 429 (or the client-side limiter) is retried after ``Retry-After`` / jittered
  backoff, a bounded number of times; an expired session is renewed and the call sent once more.
  Both are "not executed", so resending cannot bill twice.
- read-only methods (lookups, contracts, reasons, database names) are also retried on an
  unknown outcome (timeout, 5xx): reading twice is harmless.
- billable/writing methods (Provision*, Terminate*, Update*) are NEVER resent after an unknown
  outcome: the caller gets ``OutcomeUnknownError`` and reconciles.

Wire facts marked GUESS below are [I]/[3P] in the reference: they are isolated here.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from integrations.base import (
    AuthenticationError,
    NotExecutedError,
    OutcomeUnknownError,
    RateLimitedError,
    RejectedError,
    SessionExpiredError,
    SharedCredential,
    VendorError,
    VendorSession,
    backoff_delay,
    parse_retry_after,
)

logger = logging.getLogger(__name__)

SYSTEM = "myadmin"

# Product ids and their MyGeotab device types [C S6].
PRODUCT_CUSTOM_DEVICE = 10032
PRODUCT_CUSTOM_VEHICLE_DEVICE = 10184
PRODUCT_TYPES = {
    PRODUCT_CUSTOM_DEVICE: "CustomDevice",
    PRODUCT_CUSTOM_VEHICLE_DEVICE: "CustomVehicleDevice",
}
# Serial prefixes: "CX" for 10032 is confirmed [C S6]; the 10184 prefix is not published.
# GUESS: "CV". Nothing in the portal depends on it except display and the sandbox.
SERIAL_PREFIXES = {PRODUCT_CUSTOM_DEVICE: "CX", PRODUCT_CUSTOM_VEHICLE_DEVICE: "CV"}
GUESSED_SERIAL_PREFIXES = {PRODUCT_CUSTOM_VEHICLE_DEVICE}
SERIAL_LENGTH = 12

BULK_MAX = 1000  # ProvisionDevicesBulk quantity 1..1000 [C S8]
CONTRACTS_PAGE_SIZE = 1000  # GetDeviceContracts nextId pages [C S8]

# Documented limits [C S9, S8]: 550/min per endpoint, GetDeviceContracts 1250/15 min. We keep a
# margin under them because other tools (staff in MyAdmin UI, scripts) may share the API key.
ENDPOINT_LIMIT_PER_MINUTE = 500
METHOD_LIMITS = {"GetDeviceContracts": (1200, 15 * 60)}

READ_METHODS = frozenset(
    {
        "GetTerminationReasons",
        "GetDeviceContracts",
        "LookupDevice",
        "GetDeviceDatabaseNamesAsync",
    }
)

# errors[0].name values that mean "the server refused before acting" [C S2, S10 whitelist].
REJECTED_NAMES = frozenset(
    {
        "MyAdminException",
        "ArgumentException",
        "ArgumentNullException",
        "ArgumentOutOfRangeException",
        "SecurityException",
        "DuplicateException",
        "InvalidDataException",
        "UserAuthenticationException",
        "WebServerInvokerJSONException",
    }
)
SESSION_EXPIRED_NAME = "SessionExpiredException"


# --------------------------------------------------------------------------- typed errors


class MyAdminRejectedError(RejectedError):
    """MyAdmin answered with a business/validation error: nothing was done."""


class DeviceNotFoundError(MyAdminRejectedError):
    """The serial is unknown to MyAdmin (or not visible to this user)."""


# --------------------------------------------------------------------------- typed results


@dataclass(frozen=True)
class Account:
    account_id: str
    currency_code: str = ""


@dataclass(frozen=True)
class ApiUser:
    user_id: str
    session_id: str
    name: str = ""
    accounts: tuple[Account, ...] = ()


@dataclass(frozen=True)
class ProvisionResult:
    is_success: bool
    serial_no: str | None
    error: str | None = None


@dataclass(frozen=True)
class TerminationReason:
    id: int
    name: str


@dataclass(frozen=True)
class DeviceContract:
    id: int
    serial_no: str
    account_id: str
    product_id: int | None
    device_type: str
    comments: str
    promo_code: str
    group_id: str
    is_terminated: bool
    terminated_date: datetime | None
    start_date: datetime | None
    database_name: str
    raw: dict = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class DeviceLookup:
    serial_no: str
    comments: str
    sim_number: str
    firmware_version: str
    last_server_communication: datetime | None
    raw: dict = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class DeviceDatabaseNames:
    serial_no: str
    owner_database_name: str
    shared_database_names: tuple[str, ...] = ()


# --------------------------------------------------------------------------- helpers


def format_date(value: datetime) -> str:
    """ISO-8601 UTC with milliseconds, as the JSON-RPC APIs expect [C S2]."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def parse_date(value: Any) -> datetime | None:
    if not value:
        return None
    text = str(value).replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def classify_rpc_error(method: str, error: Any, http_status: int) -> VendorError:
    """Turn the JSON-RPC ``error`` object into a typed exception.

    ``error.name`` is always JSONRPCError; the server exception type is ``errors[0].name`` [C S2].
    GUESS: names beyond the documented ones are treated as "unknown outcome" for writes (the
    server may have failed half-way) — only the known refusal names count as not executed.
    """
    error = error if isinstance(error, dict) else {"message": str(error)}
    inner = (error.get("errors") or [{}])[0] or {}
    name = str(inner.get("name") or error.get("name") or "JSONRPCError")
    message = str(inner.get("message") or error.get("message") or "MyAdmin error")
    kwargs = {"system": SYSTEM, "method": method, "error_name": name, "http_status": http_status,
              "details": {"errors": error.get("errors")}}
    if name == SESSION_EXPIRED_NAME or SESSION_EXPIRED_NAME in message:
        return SessionExpiredError(message, **kwargs)
    if method == "Authenticate" and name in REJECTED_NAMES:
        return AuthenticationError(message, **kwargs)
    if name in REJECTED_NAMES:
        # GUESS: MyAdmin does not document a "not found" error; the sandbox says "not found".
        if "not found" in message.lower() or "notfound" in message.lower():
            return DeviceNotFoundError(message, **kwargs)
        return MyAdminRejectedError(message, **kwargs)
    return OutcomeUnknownError(message, **kwargs)


def _parse_response(method: str) -> Callable[[requests.Response], Any]:
    def parse(response: requests.Response) -> Any:
        status = response.status_code
        if status == 429:
            raise RateLimitedError(
                "MyAdmin rate limit (HTTP 429)", system=SYSTEM, method=method, error_name="HTTP429",
                http_status=429, retry_after=parse_retry_after(response.headers.get("Retry-After"), default=None),
            )
        if status >= 500:
            # The server may have acted before failing: unknown for writes.
            raise OutcomeUnknownError(
                f"MyAdmin HTTP {status}", system=SYSTEM, method=method, error_name=f"HTTP{status}", http_status=status
            )
        if status == 405:
            raise RejectedError("method not allowed (MyAdmin accepts POST only)", system=SYSTEM, method=method,
                                error_name="HTTP405", http_status=status)
        if status >= 400:
            raise RejectedError(f"MyAdmin HTTP {status}", system=SYSTEM, method=method,
                                error_name=f"HTTP{status}", http_status=status)
        body = response.json()  # ValueError → unknown (handled by VendorSession)
        if not isinstance(body, dict):
            raise ValueError("JSON-RPC body is not an object")  # noqa: TRY004 - ValueError = unreadable → unknown
        if body.get("error") is not None:
            raise classify_rpc_error(method, body["error"], status)
        if "result" not in body:
            raise ValueError("JSON-RPC body has neither result nor error")
        return body["result"]

    return parse


def _summary(result: Any) -> str:
    if isinstance(result, list):
        return f"{len(result)} item(s)"
    if isinstance(result, dict):
        serial = result.get("serialNo")
        if serial:
            return f"serialNo={serial} isSuccess={result.get('isSuccess')}"
        return ",".join(sorted(k for k in result if k.lower() not in {"sessionid", "userid"}))[:200]
    return "" if result is None else str(result)[:200]


def _provision_result(raw: Any) -> ProvisionResult:
    raw = raw or {}
    serial = raw.get("serialNo") or None
    return ProvisionResult(is_success=bool(raw.get("isSuccess")) and bool(serial), serial_no=serial,
                           error=raw.get("error") or None)


def _contract(raw: dict) -> DeviceContract:
    device = raw.get("device") or {}
    account = raw.get("account") or {}
    database = raw.get("latestDeviceDatabase") or {}
    product = raw.get("productId", raw.get("productCode"))
    try:
        product_id = int(product) if product not in (None, "") else None
    except (TypeError, ValueError):
        product_id = None
    return DeviceContract(
        id=int(raw.get("id") or 0),
        serial_no=str(device.get("serialNumber") or raw.get("serialNo") or ""),
        account_id=str(account.get("accountId") or ""),
        product_id=product_id,
        device_type=str(device.get("deviceType") or ""),
        comments=str(raw.get("comments") or ""),
        promo_code=str(raw.get("promoCode") or ""),
        group_id=str(raw.get("groupId") or ""),
        is_terminated=bool(raw.get("isTerminated")),
        terminated_date=parse_date(raw.get("terminatedDate")),
        start_date=parse_date(raw.get("startDate") or raw.get("contractStartDate")),
        database_name=str(database.get("databaseName") or ""),
        raw=raw,
    )


# --------------------------------------------------------------------------- the client


class MyAdminClient:
    """MyAdmin JSON-RPC over POST, form field ``JSON-RPC`` (the documented encoding [C S2])."""

    max_rate_limit_retries = 4
    max_read_retries = 2

    def __init__(
        self,
        api_url: str,
        username: str,
        password: str,
        *,
        token_store,
        rate_limiter,
        connect_timeout: float = 5,
        read_timeout: float = 30,
        requests_per_minute: int = ENDPOINT_LIMIT_PER_MINUTE,
        sleep: Callable[[float], None] = time.sleep,
        max_backoff: float = 60.0,
    ):
        if not api_url:
            raise ValueError("MYADMIN_API_URL is not configured")
        self.api_url = api_url
        self.username = username
        self._password = password
        self.rate_limiter = rate_limiter
        self.requests_per_minute = requests_per_minute
        self.sleep = sleep
        self.max_backoff = max_backoff
        self.session = VendorSession(SYSTEM, connect_timeout=connect_timeout, read_timeout=read_timeout)
        self.credential = SharedCredential(store=token_store, key=f"myadmin:{username}", login=self._login)

    def __repr__(self) -> str:
        return f"MyAdminClient({self.api_url!r}, {self.username!r})"

    # ----------------------------------------------------------------- transport

    def _send(self, method: str, params: dict) -> Any:
        """One HTTP request (after the client-side limiter); no retries here."""
        self.rate_limiter.acquire("myadmin", limit=self.requests_per_minute, period=60.0,
                                  max_wait=self.max_backoff)
        if method in METHOD_LIMITS:
            limit, period = METHOD_LIMITS[method]
            self.rate_limiter.acquire(f"myadmin:{method}", limit=limit, period=period, max_wait=self.max_backoff)
        payload = {"id": -1, "method": method, "params": params}
        return self.session.call(
            method, "POST", self.api_url,
            parse=_parse_response(method),
            digest_payload=payload,
            summarize=_summary,
            data={"JSON-RPC": json.dumps(payload, separators=(",", ":"))},
        )

    def _send_with_backoff(self, method: str, params_for: Callable[[], dict]) -> Any:
        """Retry what certainly did not execute: 429 (after Retry-After) and, for reads, unknowns."""
        rate_attempt = 0
        read_attempt = 0
        while True:
            try:
                return self._send(method, params_for())
            except RateLimitedError as exc:
                rate_attempt += 1
                if rate_attempt > self.max_rate_limit_retries:
                    raise
                delay = exc.retry_after if exc.retry_after is not None else backoff_delay(rate_attempt, base=2.0)
                # Jitter on top of Retry-After so many workers do not return in lock-step.
                delay = min(self.max_backoff, delay + backoff_delay(1, base=0.25))
                logger.info("MyAdmin %s rate limited; retrying in %.2fs", method, delay)
                self.sleep(delay)
            except OutcomeUnknownError:
                read_attempt += 1
                if method not in READ_METHODS or read_attempt > self.max_read_retries:
                    raise
                self.sleep(min(self.max_backoff, backoff_delay(read_attempt, base=0.5)))

    def _call(self, method: str, params: dict | None = None) -> Any:
        """An authenticated call: credentials go inside ``params`` [C S1]; on
        SessionExpiredException renew once (single-flight across workers) and resend."""
        params = {k: v for k, v in (params or {}).items() if v is not None}
        credential = self.credential.get()

        def with_auth(cred: dict) -> Callable[[], dict]:
            return lambda: {"apiKey": cred["userId"], "sessionId": cred["sessionId"], **params}

        try:
            return self._send_with_backoff(method, with_auth(credential))
        except SessionExpiredError:
            fresh = self.credential.renew(credential)
            return self._send_with_backoff(method, with_auth(fresh))

    # ----------------------------------------------------------------- auth

    def authenticate(self) -> ApiUser:
        """Authenticate (not via the shared store; see ``credential`` for that)."""
        raw = self._send_with_backoff("Authenticate", lambda: {"username": self.username, "password": self._password})
        if not isinstance(raw, dict) or not raw.get("sessionId") or not raw.get("userId"):
            raise AuthenticationError("Authenticate returned no session", system=SYSTEM, method="Authenticate")
        accounts = tuple(
            Account(account_id=str(a.get("accountId") or ""), currency_code=str((a.get("currency") or {}).get("code") or ""))
            for a in raw.get("accounts") or []
        )
        return ApiUser(user_id=str(raw["userId"]), session_id=str(raw["sessionId"]), name=str(raw.get("name") or ""),
                       accounts=accounts)

    def _login(self) -> dict:
        user = self.authenticate()
        return {
            "userId": user.user_id,
            "sessionId": user.session_id,
            "accounts": [a.account_id for a in user.accounts],
            "obtainedAt": format_date(datetime.now(UTC)),
        }

    def accounts(self) -> list[str]:
        """The ERP account numbers this user may provision to (from the stored session)."""
        return list(self.credential.get().get("accounts") or [])

    # ----------------------------------------------------------------- provisioning (billable)

    def provision_device(self, product_id: int, *, promo_code: str | None = None, sub_plan: str | None = None,
                         server: str | None = None) -> ProvisionResult:
        """Legacy: mints a serial on the user's default account [C S3]. Never resent after an unknown outcome."""
        raw = self._call("ProvisionDevice", {"productId": int(product_id), "server": server,
                                             "promoCode": promo_code, "subPlan": sub_plan})
        return _provision_result(raw)

    def provision_device_to_account(self, product_id: int, erp_no: str, *, hardware_id: int | None = None,
                                    promo_code: str | None = None, sub_plan: str | None = None) -> ProvisionResult:
        """Mints ONE billable serial on ``erp_no`` [C S8]. No idempotency key exists: an unknown
        outcome raises ``OutcomeUnknownError`` and must be reconciled, never resent."""
        raw = self._call("ProvisionDeviceToAccount", {
            "productId": int(product_id), "erpNo": erp_no, "hardwareId": hardware_id,
            "promoCode": promo_code, "subPlan": sub_plan,
        })
        return _provision_result(raw)

    def provision_devices_bulk(self, product_id: int, erp_no: str, quantity: int, *,
                               promo_code: str | None = None, sub_plan: str | None = None) -> list[ProvisionResult]:
        """Mints ``quantity`` (1..1000) serials in one call [C S8]; same unknown-outcome rule."""
        if not 1 <= int(quantity) <= BULK_MAX:
            raise ValueError(f"quantity must be between 1 and {BULK_MAX}")
        raw = self._call("ProvisionDevicesBulk", {
            "productId": int(product_id), "erpNo": erp_no, "quantity": int(quantity),
            "promoCode": promo_code, "subPlan": sub_plan,
        })
        return [_provision_result(r) for r in (raw or [])]

    # ----------------------------------------------------------------- contracts

    def update_device_contracts(self, serial_nos: list[str], *, comments: str | None = None,
                                promo_code: str | None = None, group_id: str | int | None = None) -> None:
        """Only the fields given are changed (the ``update*`` flags [C S8]). Returns nothing (undocumented)."""
        if not serial_nos:
            raise ValueError("serial_nos must not be empty")
        params: dict[str, Any] = {"serialNos": list(serial_nos)}
        if comments is not None:
            params.update(updateComments=True, comments=comments)
        if promo_code is not None:
            params.update(updatePromoCode=True, promoCode=promo_code)
        if group_id is not None:
            params.update(updateGroupId=True, groupId=group_id)
        self._call("UpdateDeviceContracts", params)

    def terminate_device_billing(self, serial_no: str, reason_id: int, *, comments: str = "",
                                 is_imei: bool = False) -> None:
        self._call("TerminateDeviceBilling", {"serialNo": serial_no, "reasonId": int(reason_id),
                                              "comments": comments, "isImei": bool(is_imei)})

    def cancel_device_termination(self, serial_no: str) -> None:
        """CancelDeviceTerminationAsync [C S8]; GUESS: its parameter is ``serialNo`` (undocumented)."""
        self._call("CancelDeviceTerminationAsync", {"serialNo": serial_no})

    def get_termination_reasons(self) -> list[TerminationReason]:
        raw = self._call("GetTerminationReasons") or []
        return [TerminationReason(id=int(r["id"]), name=str(r.get("name") or "")) for r in raw]

    def get_device_contracts(self, *, for_account: str, serial_nos: list[str] | None = None,
                             from_date: datetime | None = None, to_date: datetime | None = None,
                             ) -> Iterator[DeviceContract]:
        """All matching contracts, page by page. ``fromDate``/``toDate`` are required by MyAdmin
        [C S8]; without them we ask from 2000 to tomorrow. GUESS: ``nextId`` takes the last
        row's ``id`` of the previous 1000-row page; a short page ends the listing."""
        now = datetime.now(UTC)
        base = {
            "forAccount": for_account,
            "fromDate": format_date(from_date or datetime(2000, 1, 1, tzinfo=UTC)),
            "toDate": format_date(to_date or now + timedelta(days=1)),
            "serialNos": list(serial_nos) if serial_nos else None,
            "devicePlanId": -1,
            "userCompanyId": -1,
        }
        next_id = None
        for _ in range(100_000):  # bound: 100M rows
            page = self._call("GetDeviceContracts", {**base, "nextId": next_id}) or []
            for raw in page:
                yield _contract(raw)
            if len(page) < CONTRACTS_PAGE_SIZE:
                return
            next_id = page[-1].get("id")

    def lookup_device(self, serial_no: str) -> DeviceLookup | None:
        """The device's install/communication state; None when MyAdmin does not know the serial."""
        try:
            raw = self._call("LookupDevice", {"serialNo": serial_no})
        except DeviceNotFoundError:
            return None
        raw = raw or {}
        return DeviceLookup(
            serial_no=str(raw.get("serialNo") or serial_no),
            comments=str(raw.get("comments") or ""),
            sim_number=str(raw.get("simNumber") or ""),
            firmware_version=str(raw.get("firmwareVersion") or ""),
            last_server_communication=parse_date(raw.get("lastServerCommunication")),
            raw=raw,
        )

    def get_device_database_names(self, serial_numbers: list[str]) -> list[DeviceDatabaseNames]:
        """Readiness signal: a non-empty owner database means the serial was added to MyGeotab [C S10].
        GUESS: shared databases arrive as ``sharedDatabaseNames`` (a list of names)."""
        if not serial_numbers:
            return []
        raw = self._call("GetDeviceDatabaseNamesAsync", {"serialNumbers": list(serial_numbers)}) or []
        return [
            DeviceDatabaseNames(
                serial_no=str(r.get("serialNo") or ""),
                owner_database_name=str(r.get("ownerDatabaseName") or ""),
                shared_database_names=tuple(str(s) for s in (r.get("sharedDatabaseNames") or [])),
            )
            for r in raw
        ]


__all__ = [
    "BULK_MAX",
    "PRODUCT_TYPES",
    "SERIAL_PREFIXES",
    "Account",
    "ApiUser",
    "AuthenticationError",
    "DeviceContract",
    "DeviceDatabaseNames",
    "DeviceLookup",
    "DeviceNotFoundError",
    "MyAdminClient",
    "MyAdminRejectedError",
    "NotExecutedError",
    "OutcomeUnknownError",
    "ProvisionResult",
    "RateLimitedError",
    "RejectedError",
    "SessionExpiredError",
    "TerminationReason",
]
