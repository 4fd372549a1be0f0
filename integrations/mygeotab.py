"""MyGeotab JSON-RPC client for a customer's database, on the official `mygeotab` SDK.

The SDK does the wire work (URL building, camelCasing, date (de)serialisation, error
parsing). This wrapper adds what it lacks (reference §4.4-4.6):

- a timeout of our choosing, as a (connect, read) pair (the SDK default is 300 s);
- re-login when the session expires. The SDK forgets the password after `authenticate()`,
  so it cannot re-authenticate itself; each call here builds a fresh `API` from the shared
  session, and an expired session triggers one single-flight login (`SharedCredential`)
  with a fresh `API` that holds the password, then one resend;
- `OverLimitException` (HTTP 200 body or HTTP 429) retried after Retry-After / backoff;
- every call recorded in the vendor-call ledger (`integrations.base` recorders), with the
  password and session id masked;
- errors classified like the other clients (not executed / rejected / unknown).

Needs `mygeotab>=0.9.7`: earlier versions rewrite any server to ``https://<host>/apiv1`` and
cannot reach a plain-HTTP sandbox (reference §4.7).
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import mygeotab
import requests
from mygeotab import API
from mygeotab.api import get_api_url
from mygeotab.exceptions import (
    AuthenticationException,
    MyGeotabException,
    TimeoutException,
)

from integrations.base import (
    AuthenticationError,
    CallRecord,
    NotExecutedError,
    Outcome,
    OutcomeUnknownError,
    RateLimitedError,
    RejectedError,
    SessionExpiredError,
    SharedCredential,
    VendorError,
    _emit,
    backoff_delay,
    classify_transport_error,
    current_call_context,
    parse_retry_after,
    request_digest,
)

logger = logging.getLogger(__name__)


def _sdk_version_ok(version: str) -> bool:
    parts = []
    for piece in version.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts) >= (0, 9, 7)


if not _sdk_version_ok(mygeotab.__version__):  # fail at import, not with a wrong URL at run time
    raise ImportError(f"mygeotab>=0.9.7 is required (found {mygeotab.__version__}): earlier versions "
                      "rewrite every server to https://<host>/apiv1.")

SYSTEM = "mygeotab"
SERIAL_MAX_LENGTH = 12  # [C G6 CustomDevice]
NAME_MAX_LENGTH = 50  # [C G6 CustomDevice]
_SERIAL_RE = re.compile(r"^[A-Z0-9]+$")
# Devices that carry vehicle fields. GUESS: the field names follow the GO-device model
# (licensePlate/licenseState); the CustomVehicleDevice page was not available (reference §3.2).
VEHICLE_DEVICE_TYPES = {"CustomVehicleDevice"}
VEHICLE_FIELDS = ("vehicleIdentificationNumber", "licensePlate", "licenseState")

# Server exception types that mean "refused, nothing done" [C G4 list]. Anything else from a
# write is treated as an unknown outcome (the server may have failed half-way).
REJECTED_NAMES = frozenset({
    "ArgumentException", "ArgumentNullException", "ArgumentOutOfRangeException", "InvalidCastException",
    "InvalidPermissionsException", "MissingMemberException", "MissingMethodException", "JsonSerializerException",
    "GroupRelationViolatedException", "InvalidApiOperationException", "InvalidOperationException",
    "ExpiredPasswordException", "PasswordPolicyViolationException", "CaptchaException",
    "InvalidMyAdminUserException",
})
NOT_EXECUTED_NAMES = frozenset({"DatabaseMaintenanceException"})


class MyGeotabRejectedError(RejectedError):
    """The server refused the request (validation, permissions)."""


class DuplicateDeviceError(MyGeotabRejectedError):
    """``DuplicateException``: the serial already exists (in this database or another one)."""


class InvalidSerialError(ValueError):
    """A serial MyGeotab would refuse; raised before any call is made."""


@dataclass(frozen=True)
class MyGeotabDevice:
    id: str
    serial_number: str
    name: str
    device_type: str
    groups: tuple[str, ...] = ()
    comment: str = ""
    active_to: datetime | None = None
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def archived(self) -> bool:
        return bool(self.active_to and self.active_to <= datetime.now(UTC))


def normalize_serial(serial: str) -> str:
    """Serials are shown with dashes (``C1-800-000-0001``) but stored as 12 characters [C G14]."""
    value = str(serial or "").replace("-", "").strip().upper()
    if not value:
        raise InvalidSerialError("A serial number is required.")
    if len(value) > SERIAL_MAX_LENGTH:
        raise InvalidSerialError(
            f"Serial '{serial}' is {len(value)} characters long; MyGeotab accepts at most {SERIAL_MAX_LENGTH}."
        )
    if not _SERIAL_RE.match(value):
        raise InvalidSerialError(f"Serial '{serial}' may hold only letters and digits.")
    return value


def _device(raw: dict) -> MyGeotabDevice:
    active_to = raw.get("activeTo")
    if isinstance(active_to, str):
        try:
            active_to = datetime.fromisoformat(active_to.replace("Z", "+00:00"))
        except ValueError:
            active_to = None
    if isinstance(active_to, datetime) and active_to.tzinfo is None:
        active_to = active_to.replace(tzinfo=UTC)
    return MyGeotabDevice(
        id=str(raw.get("id") or ""),
        serial_number=str(raw.get("serialNumber") or ""),
        name=str(raw.get("name") or ""),
        device_type=str(raw.get("deviceType") or ""),
        groups=tuple(str(g.get("id")) for g in raw.get("groups") or [] if isinstance(g, dict)),
        comment=str(raw.get("comment") or ""),
        active_to=active_to if isinstance(active_to, datetime) else None,
        raw=raw,
    )


def classify(exc: BaseException, *, method: str) -> VendorError:
    """Turn whatever the SDK raised into the portal's typed errors."""
    kwargs: dict[str, Any] = {"system": SYSTEM, "method": method}
    if isinstance(exc, AuthenticationException):
        cause = exc.__cause__ if isinstance(exc.__cause__, MyGeotabException) else None
        name = cause.name if cause else "AuthenticationException"
        message = cause.message if cause else str(exc)
        if method != "Authenticate":
            # The session we sent was refused (expired or invalidated): log in again.
            return SessionExpiredError(f"session refused: {message}", error_name=name, **kwargs)
        if name == "DbUnavailableException" and "UnknownDatabase" in message:
            return AuthenticationError(f"Unknown database '{exc.database}' on this server.",
                                       error_name=name, **kwargs)
        if name == "DbUnavailableException":  # "Initializing": starting up, try later [C G10]
            return NotExecutedError(f"Database '{exc.database}' is not available yet: {message}",
                                    error_name=name, **kwargs)
        return AuthenticationError(
            f"Wrong user name or password for '{exc.username}' in database '{exc.database}'.",
            error_name=name, **kwargs,
        )
    if isinstance(exc, MyGeotabException):
        name, message = exc.name or "JSONRPCError", exc.message or ""
        kwargs["error_name"] = name
        if name == "OverLimitException":
            # HTTP 200 form: the SDK hides the Retry-After header, so the caller backs off.
            return RateLimitedError(message, **kwargs)
        if name == "DuplicateException":
            return DuplicateDeviceError(message, **kwargs)
        if name == "InvalidUserException":
            return SessionExpiredError(message, **kwargs)
        if name == "DbUnavailableException":
            if "UnknownDatabase" in message:
                return AuthenticationError(message, **kwargs)
            return NotExecutedError(message, **kwargs)
        if name in NOT_EXECUTED_NAMES:
            return NotExecutedError(message, **kwargs)
        if name in REJECTED_NAMES:
            return MyGeotabRejectedError(message, **kwargs)
        return OutcomeUnknownError(message, **kwargs)
    if isinstance(exc, TimeoutException):
        cause = exc.__cause__
        if isinstance(cause, requests.ConnectTimeout):
            return NotExecutedError("connect timeout", error_name="ConnectTimeout", **kwargs)
        return OutcomeUnknownError("read timeout: no answer in time", error_name="ReadTimeout", **kwargs)
    if isinstance(exc, requests.HTTPError):
        response = exc.response
        status = response.status_code if response is not None else None
        kwargs["http_status"] = status
        if status == 429:
            retry_after = parse_retry_after(response.headers.get("Retry-After")) if response is not None else None
            return RateLimitedError("rate limited (HTTP 429)", error_name="OverLimitException",
                                    retry_after=retry_after, **kwargs)
        if status == 503:
            # 503 = the server did not take the request (overload / maintenance, RFC 9110 §15.6.4).
            return NotExecutedError("service unavailable (HTTP 503)", error_name="HTTP503", **kwargs)
        if status is not None and status >= 500:
            return OutcomeUnknownError(f"server error (HTTP {status})", error_name=f"HTTP{status}", **kwargs)
        return MyGeotabRejectedError(f"HTTP {status}", error_name=f"HTTP{status}", **kwargs)
    if isinstance(exc, requests.RequestException):
        return classify_transport_error(exc, system=SYSTEM, method=method)
    if isinstance(exc, (ValueError, KeyError, TypeError)):
        # An answer we cannot read (e.g. an error body without the legacy `errors` array).
        return OutcomeUnknownError(f"unreadable response: {type(exc).__name__}", error_name="Unreadable", **kwargs)
    return OutcomeUnknownError(str(exc)[:200], error_name=type(exc).__name__, **kwargs)


def _summary(result: Any) -> str:
    if isinstance(result, list):
        return f"{len(result)} item(s)"
    if isinstance(result, str):
        return f"id={result}"[:100]
    if isinstance(result, dict):  # Authenticate: never the session id
        return f"path={result.get('path')}"
    return ""


class MyGeotabClient:
    """One customer database, one service user."""

    max_rate_limit_retries = 3
    max_read_retries = 1
    READ_METHODS = frozenset({"Get", "Authenticate"})

    def __init__(
        self,
        server: str,
        database: str,
        username: str,
        password: str,
        *,
        token_store,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        max_backoff: float = 30.0,
    ):
        if not server:
            raise ValueError("No MyGeotab server configured (MYGEOTAB_SERVER or the database's own server).")
        self.server = server
        self.database = database
        self.username = username
        self._password = password
        self.timeout = (connect_timeout, read_timeout)
        self.sleep = sleep
        self.max_backoff = max_backoff
        # VendorToken keys are short; the hash keeps one shared session per (server, db, user).
        digest = hashlib.sha256(f"{server}|{database}|{username}".encode()).hexdigest()[:32]
        self.credential = SharedCredential(store=token_store, key=f"mygeotab:{digest}", login=self._login)

    def __repr__(self) -> str:  # never the password
        return f"MyGeotabClient({self.server!r}, {self.database!r}, {self.username!r})"

    # ----------------------------------------------------------------- transport

    def _invoke(self, method: str, server: str, send: Callable[[], Any], *, digest_payload: Any) -> Any:
        """Run one SDK call (exactly one HTTP request) and record it in the ledger."""
        ctx = current_call_context()
        started = datetime.now(UTC)
        t0 = time.monotonic()
        error: VendorError | None = None
        result: Any = None
        try:
            result = send()
            return result
        except Exception as exc:
            error = classify(exc, method=method)
            raise error from exc
        finally:
            record = CallRecord(
                system=SYSTEM,
                method=method,
                url=get_api_url(server),
                request_digest=request_digest(digest_payload),
                outcome=error.outcome if error else Outcome.OK,
                http_status=error.http_status if error else 200,
                error_name=(error.error_name or type(error).__name__) if error else "",
                error_message=error.message[:500] if error else "",
                duration_ms=int((time.monotonic() - t0) * 1000),
                attempt=ctx.attempt,
                target=ctx.target,
                request_id=ctx.request_id,
                started_at=started,
                response_summary=_summary(result) if error is None else "",
            )
            _emit(record)

    def _with_backoff(self, method: str, send: Callable[[], Any]) -> Any:
        """Retry what certainly did not execute (over limit); reads also retry once on an unknown."""
        rate_attempt = read_attempt = 0
        while True:
            try:
                return send()
            except RateLimitedError as exc:
                rate_attempt += 1
                if rate_attempt > self.max_rate_limit_retries:
                    raise
                delay = exc.retry_after if exc.retry_after is not None else backoff_delay(rate_attempt, base=2.0)
                delay = min(self.max_backoff, delay + backoff_delay(1, base=0.25))
                logger.info("MyGeotab %s over limit; retrying in %.2fs", method, delay)
                self.sleep(delay)
            except (OutcomeUnknownError, NotExecutedError) as exc:
                if isinstance(exc, SessionExpiredError) or method not in self.READ_METHODS:
                    raise
                read_attempt += 1
                if read_attempt > self.max_read_retries:
                    raise
                self.sleep(min(self.max_backoff, backoff_delay(read_attempt, base=0.5)))

    def _login(self) -> dict:
        """A fresh SDK client holding the password: the only kind that can authenticate."""
        api = API(self.username, password=self._password, database=self.database, server=self.server,
                  timeout=self.timeout)
        payload = {"method": "Authenticate", "params": {"database": self.database, "userName": self.username,
                                                        "password": self._password}}

        def send():
            api.authenticate()
            if not api.credentials.session_id:
                raise ValueError("Authenticate returned no session")
            return {"path": "ThisServer" if api.credentials.server == self.server else "redirected"}

        self._with_backoff("Authenticate", lambda: self._invoke("Authenticate", self.server, send,
                                                                digest_payload=payload))
        creds = api.credentials
        # `path` may move the database to another server: later calls go there [C G1].
        return {"sessionId": creds.session_id, "server": creds.server or self.server,
                "database": creds.database or self.database, "userName": creds.username}

    def _call(self, method: str, **params: Any) -> Any:
        """An authenticated call; on a refused session, log in again once and resend."""
        credential = self.credential.get()

        def attempt(cred: dict) -> Any:
            api = API(cred["userName"], session_id=cred["sessionId"], database=cred["database"],
                      server=cred["server"], timeout=self.timeout)
            payload = {"method": method, "params": params}
            return self._with_backoff(method, lambda: self._invoke(
                method, cred["server"], lambda: api.call(method, **params), digest_payload=payload))

        try:
            return attempt(credential)
        except SessionExpiredError:
            fresh = self.credential.renew(credential)
            return attempt(fresh)

    # ----------------------------------------------------------------- API

    def authenticate(self) -> dict:
        """Log in now (ignoring any stored session) and share the new session; returns
        ``{"database", "userName", "server"}`` (never the session id)."""
        fresh = self._login()
        self.credential.store.set(self.credential.key, fresh)
        return {"database": fresh["database"], "userName": fresh["userName"], "server": fresh["server"]}

    def get_devices(self, **search: Any) -> list[MyGeotabDevice]:
        result = self._call("Get", typeName="Device", search=search)
        if not isinstance(result, list):
            raise OutcomeUnknownError("Get returned no list", system=SYSTEM, method="Get")
        return [_device(r) for r in result if isinstance(r, dict)]

    def get_device_by_serial(self, serial: str) -> MyGeotabDevice | None:
        found = self.get_devices(serialNumber=normalize_serial(serial))
        return found[0] if found else None

    def get_device(self, device_id: str) -> MyGeotabDevice | None:
        found = self.get_devices(id=device_id)
        return found[0] if found else None

    def add_device(
        self,
        *,
        serial: str,
        name: str = "",
        groups: list[str] | tuple[str, ...] = ("GroupCompanyId",),
        comment: str = "",
        vehicle: dict | None = None,
    ) -> str:
        """Add a ``Device`` entity; returns its new id. The server derives the device type from
        the serial prefix (reference §3.1), so no ``deviceType`` is sent.

        ``vehicle``: ``{"vehicleIdentificationNumber", "licensePlate", "licenseState"}`` for a
        CustomVehicleDevice (GUESS on the field names, see VEHICLE_FIELDS)."""
        serial = normalize_serial(serial)
        name = (name or serial).strip()
        if len(name) > NAME_MAX_LENGTH:
            raise InvalidSerialError(f"Device name '{name}' is longer than {NAME_MAX_LENGTH} characters.")
        entity: dict[str, Any] = {
            "serialNumber": serial,
            "name": name,
            "groups": [{"id": g} for g in (groups or ("GroupCompanyId",))],
        }
        if comment:
            entity["comment"] = comment
        for key, value in (vehicle or {}).items():
            if key not in VEHICLE_FIELDS:
                raise ValueError(f"Unknown vehicle field '{key}'; expected one of {', '.join(VEHICLE_FIELDS)}.")
            if value:
                entity[key] = value
        result = self._call("Add", typeName="Device", entity=entity)
        if not isinstance(result, str) or not result or len(result) > 64 or " " in result:
            # e.g. an empty non-JSON reply after the server acted: we cannot tell what happened.
            raise OutcomeUnknownError("Add returned no entity id", system=SYSTEM, method="Add")
        return result

    def set_device(self, entity: dict) -> None:
        """``Set`` the whole entity, as read and modified (the documented pattern, reference §3.6)."""
        if not entity.get("id"):
            raise ValueError("Set needs the entity's id")
        result = self._call("Set", typeName="Device", entity=entity)
        if result not in (None, {}, []):
            raise OutcomeUnknownError("Set returned an unexpected body", system=SYSTEM, method="Set")

    def update_device(self, *, device_id: str, changes: dict) -> MyGeotabDevice:
        """Read-modify-write: read the full entity, apply ``changes``, Set it, return the result."""
        current = self.get_device(device_id)
        if current is None:
            raise MyGeotabRejectedError(f"Device '{device_id}' not found in database '{self.database}'.",
                                        system=SYSTEM, method="Get", error_name="NotFound")
        entity = {**current.raw, **changes}
        self.set_device(entity)
        return _device(entity)

    def archive_device(self, *, device_id: str, when: datetime | None = None) -> MyGeotabDevice:
        """Make the device historical: ``activeTo`` = now (up to now + 24 h archives) [C G4].
        Archiving keeps its history, unlike Remove (whose effects are undocumented)."""
        return self.update_device(device_id=device_id, changes={"activeTo": when or datetime.now(UTC)})

    def remove_device(self, *, device_id: str) -> None:
        self._call("Remove", typeName="Device", entity={"id": device_id})
