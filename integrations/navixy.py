"""Navixy user-API client: tracker registration and the catalogues it needs.

Wire facts (see reference/navixy.md): actions are POSTed as JSON to ``{base}/{action}``; the
hash travels as ``Authorization: NVX <hash>``; every answer is ``{"success": true, ...}`` or
``{"success": false, "status": {"code", "description"}}`` (plus ``errors[]`` on code 7).
Errors are keyed on ``code`` only: descriptions drift between platform versions.

Retry policy, decided here per error class and never for a call that may have executed:
- 4 (session ended) with a session hash → log in again (single-flight) and resend once;
- 15 / HTTP 429 and 8 (queue busy) → not executed: back off and resend, a bounded number of times;
- everything else surfaces as a typed error for the caller to decide.

Plain Python: no Django imports. The portal hands in the token store and rate limiter.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import requests

from integrations.base import (
    AuthenticationError,
    MemoryRateLimiter,
    MemoryTokenStore,
    NotExecutedError,
    OutcomeUnknownError,
    RateLimitedError,
    RateLimiter,
    RejectedError,
    SessionExpiredError,
    SharedCredential,
    TokenStore,
    backoff_delay,
    parse_retry_after,
)

logger = logging.getLogger(__name__)

SYSTEM = "navixy"

# The platform allows 50 requests/s per hash. A fixed-window limiter can let 2x its limit
# through across a window boundary, so we count in 0.2 s windows of 8 calls: at most 48 calls
# in any sliding second (6 windows touch it), 40/s sustained.
RATE_WINDOW_SECONDS = 0.2
RATE_WINDOW_CALLS = 8

MOBILE_APP_MODEL = "mobile_unknown_xgps"
# Model-code prefixes of the mobile apps, from the panel API's register_retry notes [C S14].
MOBILE_MODEL_PREFIXES = ("navixymobile", "mobile_unknown", "iosnavixytracker")
DEVICE_PLUGINS = {44: False, 37: True}  # plugin id → activation code mandatory
MOBILE_PLUGINS = {35: False, 68: True}


# --------------------------------------------------------------------------- typed errors


class NavixyErrorMixin:
    """Adds the platform's numeric ``code`` and the ``errors`` list (code 7) to an error."""

    code: int = 0
    errors: list[dict] = []

    def field_errors(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for item in self.errors or []:
            if isinstance(item, dict):
                out.setdefault(str(item.get("parameter") or "non_field_errors"), []).append(
                    str(item.get("error") or "invalid")
                )
        return out


def _error_class(name: str, base: type, code: int, doc: str) -> type:
    return type(name, (NavixyErrorMixin, base), {"code": code, "__doc__": doc})


class NavixyRejected(NavixyErrorMixin, RejectedError):
    """Any other refusal by the platform (code kept in ``code``)."""


class NavixyNotExecuted(NavixyErrorMixin, NotExecutedError):
    """The platform did not act; resending later is safe."""


class NavixyOutcomeUnknown(NavixyErrorMixin, OutcomeUnknownError):
    """Code 1/6 or a bare 5xx: the platform may have acted."""


InvalidParameters = _error_class("InvalidParameters", RejectedError, 7, "7: invalid parameters; see errors[]")
WrongHash = _error_class("WrongHash", AuthenticationError, 3, "3: malformed hash")
WrongCredentials = _error_class("WrongCredentials", AuthenticationError, 102, "102: wrong login or password")
UserNotActivated = _error_class("UserNotActivated", AuthenticationError, 103, "103: user not activated")
ServiceAuthError = _error_class("ServiceAuthError", AuthenticationError, 2, "2: service auth error")
AccessDenied = _error_class("AccessDenied", RejectedError, 11, "11: access denied")
OperationNotPermitted = _error_class("OperationNotPermitted", RejectedError, 13, "13: sub-user lacks the right")
SessionEnded = _error_class("SessionEnded", SessionExpiredError, 4, "4: session ended or unknown hash")
ApiKeyRejected = _error_class("ApiKeyRejected", AuthenticationError, 4, "4 with an API key: key unknown")
QueueBusy = _error_class("QueueBusy", NotExecutedError, 8, "8: queue service error, try again later")
DatabaseUnavailable = _error_class("DatabaseUnavailable", NotExecutedError, 14, "14: database unavailable")
RateLimited = _error_class("RateLimited", RateLimitedError, 15, "15: too many requests")
LoginsLimitExceeded = _error_class("LoginsLimitExceeded", NotExecutedError, 104, "104: logins limit exceeded")
LoginAttemptsExceeded = _error_class("LoginAttemptsExceeded", NotExecutedError, 105, "105: login attempts exceeded")
NotFound = _error_class("NotFound", RejectedError, 201, "201: not found in database")
EntityNotFound = _error_class("EntityNotFound", RejectedError, 204, "204: entity (group) not found")
DeviceBlocked = _error_class("DeviceBlocked", RejectedError, 208, "208: device blocked")
NotSupportedByDevice = _error_class("NotSupportedByDevice", RejectedError, 214, "214: not supported by the device")
NotAllowedForClones = _error_class("NotAllowedForClones", RejectedError, 219, "219: not allowed for clones")
UnknownModel = _error_class("UnknownModel", RejectedError, 220, "220: unknown device model")
DeviceLimitExceeded = _error_class("DeviceLimitExceeded", RejectedError, 221, "221: device limit exceeded")
PluginNotFound = _error_class("PluginNotFound", RejectedError, 222, "222: plugin not found or not for this model")
PhoneInUse = _error_class("PhoneInUse", RejectedError, 223, "223: phone number already in use")
DeviceIdInUse = _error_class("DeviceIdInUse", RejectedError, 224, "224: device ID already in use")
WrongLegalType = _error_class("WrongLegalType", RejectedError, 225, "225: not allowed for this legal type")
WrongIccid = _error_class("WrongIccid", RejectedError, 226, "226: wrong ICCID")
WrongActivationCode = _error_class("WrongActivationCode", RejectedError, 227, "227: activation code unknown or used")
DeviceAlreadyConnected = _error_class("DeviceAlreadyConnected", RejectedError, 242, "242: device already connected")
DeviceAlreadyCorrupted = _error_class("DeviceAlreadyCorrupted", RejectedError, 252, "252: device already corrupted")
RegistrationForbidden = _error_class("RegistrationForbidden", RejectedError, 257, "257: registration forbidden")
BundleNotFound = _error_class("BundleNotFound", RejectedError, 258, "258: bundle not found")
# [I] 264 is documented for the panel's register_retry (once per 120 s per tracker); it means
# "not now", so it is classified as not executed.
RetryTooSoon = _error_class("RetryTooSoon", NotExecutedError, 264, "264: timeout not reached")
DatabaseError = _error_class("DatabaseError", OutcomeUnknownError, 1, "1: database error")
UnexpectedError = _error_class("UnexpectedError", OutcomeUnknownError, 6, "6: unexpected error")

ERRORS_BY_CODE: dict[int, type] = {
    cls.code: cls
    for cls in (
        InvalidParameters, WrongHash, WrongCredentials, UserNotActivated, ServiceAuthError, AccessDenied,
        OperationNotPermitted, SessionEnded, QueueBusy, DatabaseUnavailable, RateLimited, LoginsLimitExceeded,
        LoginAttemptsExceeded, NotFound, EntityNotFound, DeviceBlocked, NotSupportedByDevice,
        NotAllowedForClones, UnknownModel, DeviceLimitExceeded, PluginNotFound, PhoneInUse, DeviceIdInUse,
        WrongLegalType, WrongIccid, WrongActivationCode, DeviceAlreadyConnected, DeviceAlreadyCorrupted,
        RegistrationForbidden, BundleNotFound, RetryTooSoon, DatabaseError, UnexpectedError,
    )
}


def error_for(code: int, description: str, *, http_status: int | None, errors: list | None,
              using_api_key: bool = False) -> Exception:
    cls = ERRORS_BY_CODE.get(code)
    if code == 4 and using_api_key:
        cls = ApiKeyRejected  # keys never expire: an unknown key is a configuration error
    if cls is None:
        # Unlisted codes: 5xx may have executed; other statuses are refusals.
        cls = NavixyOutcomeUnknown if (http_status or 0) >= 500 else NavixyRejected
    exc = cls(f"{code} {description}".strip(), system=SYSTEM, error_name=f"navixy.{code}",
              http_status=http_status, details={"code": code, "errors": errors or []})
    exc.code = code
    exc.errors = errors or []
    return exc


# --------------------------------------------------------------------------- typed results


@dataclass(frozen=True)
class Model:
    id: int | None
    code: str
    name: str
    vendor: str
    type: str
    id_type: str
    has_phone: bool
    has_apn_settings: bool
    register: bool

    @property
    def is_mobile(self) -> bool:
        return self.code.startswith(MOBILE_MODEL_PREFIXES)


@dataclass(frozen=True)
class Plugin:
    id: int
    type: str
    module: str
    filter_exclusion: bool
    filter_values: tuple[str, ...]


@dataclass(frozen=True)
class Group:
    id: int
    title: str
    color: str


@dataclass(frozen=True)
class Tracker:
    id: int
    label: str
    group_id: int
    clone: bool
    source_id: int | None
    device_id: str
    model: str
    blocked: bool
    tariff_id: int | None
    phone: str | None
    creation_date: date | None
    tariff_end_date: date | None


def _date(value: Any) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def parse_tracker(raw: dict) -> Tracker:
    source = raw.get("source") or {}
    phone = source.get("phone")
    # Examples show device_id as a number and phones with "+": normalise both.
    phone = str(phone).lstrip("+") if phone not in (None, "") else None
    return Tracker(
        id=int(raw["id"]),
        label=str(raw.get("label") or ""),
        group_id=int(raw.get("group_id") or 0),
        clone=bool(raw.get("clone", False)),
        source_id=int(source["id"]) if source.get("id") is not None else None,
        device_id=str(source.get("device_id") or ""),
        model=str(source.get("model") or ""),
        blocked=bool(source.get("blocked", False)),
        tariff_id=int(source["tariff_id"]) if source.get("tariff_id") is not None else None,
        phone=phone,
        creation_date=_date(source.get("creation_date")),
        tariff_end_date=_date(source.get("tariff_end_date")),
    )


def parse_model(raw: dict) -> Model:
    return Model(
        id=raw.get("id"), code=str(raw["code"]), name=str(raw.get("name") or raw["code"]),
        vendor=str(raw.get("vendor") or ""), type=str(raw.get("type") or ""),
        id_type=str(raw.get("id_type") or ""), has_phone=bool(raw.get("has_phone", False)),
        has_apn_settings=bool(raw.get("has_apn_settings", False)), register=bool(raw.get("register", True)),
    )


def parse_plugin(raw: dict) -> Plugin:
    flt = raw.get("filter") or {}
    return Plugin(
        id=int(raw["id"]), type=str(raw.get("type") or ""), module=str(raw.get("module") or ""),
        filter_exclusion=bool(flt.get("exclusion", True)), filter_values=tuple(flt.get("values") or ()),
    )


# --------------------------------------------------------------------------- the client


class NavixyClient:
    """One instance per process is fine: the session hash lives in the shared token store."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str = "",
        login: str = "",
        password: str = "",
        token_store: TokenStore | None = None,
        rate_limiter: RateLimiter | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        max_busy_retries: int = 4,
        sleep: Callable[[float], None] = time.sleep,
    ):
        from integrations.base import VendorSession

        if not base_url:
            raise ValueError("NAVIXY_API_URL is not configured")
        if not api_key and not (login and password):
            raise ValueError("set NAVIXY_API_KEY, or NAVIXY_LOGIN and NAVIXY_PASSWORD")
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self._login = login
        self._password = password
        self.session = VendorSession(SYSTEM, connect_timeout=connect_timeout, read_timeout=read_timeout)
        self.rate_limiter = rate_limiter or MemoryRateLimiter()
        self.max_busy_retries = max_busy_retries
        self.sleep = sleep
        self.credential = None
        if not api_key:
            self.credential = SharedCredential(
                store=token_store or MemoryTokenStore(), key=f"navixy:session:{login}", login=self._authenticate
            )

    # ---- transport

    def _parse(self, response: requests.Response, *, using_api_key: bool = False) -> dict:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or "success" not in body:
            if response.status_code == 429:
                raise RateLimited("HTTP 429", retry_after=parse_retry_after(response.headers.get("Retry-After")))
            if response.status_code == 503:
                # Service unavailable: the request was turned away before any work.
                raise NavixyNotExecuted("HTTP 503 without a Navixy envelope")
            raise NavixyOutcomeUnknown(f"HTTP {response.status_code} without a Navixy envelope")
        if body.get("success") is True:
            return body
        status = body.get("status") or {}
        try:
            code = int(status.get("code"))
        except (TypeError, ValueError):
            raise NavixyOutcomeUnknown(f"HTTP {response.status_code}: error without a code") from None
        exc = error_for(code, str(status.get("description") or ""), http_status=response.status_code,
                        errors=body.get("errors"), using_api_key=using_api_key)
        if isinstance(exc, RateLimitedError):
            exc.retry_after = parse_retry_after(response.headers.get("Retry-After"))
        raise exc

    def _send(self, action: str, params: dict, hash_value: str | None) -> dict:
        headers = {"Content-Type": "application/json"}
        if hash_value:
            headers["Authorization"] = f"NVX {hash_value}"
        # Null-omission rule: the platform reads a missing field as null.
        body = {k: v for k, v in params.items() if v is not None}
        self.rate_limiter.acquire(
            f"navixy:{'key' if self.api_key else self._login}", limit=RATE_WINDOW_CALLS,
            period=RATE_WINDOW_SECONDS,
        )
        return self.session.call(
            action, "POST", f"{self.base_url}/{action}", json=body, headers=headers,
            parse=lambda r: self._parse(r, using_api_key=bool(self.api_key)), digest_payload=body,
        )

    def _authenticate(self) -> dict:
        body = self.session.call(
            "user/auth", "POST", f"{self.base_url}/user/auth",
            json={"login": self._login, "password": self._password},
            headers={"Content-Type": "application/json"}, parse=self._parse, digest_payload={"login": self._login},
        )
        if body.get("type", "authenticated") != "authenticated":
            raise AuthenticationError("the Navixy user needs a second factor; use an API key", system=SYSTEM)
        return {"hash": body["hash"]}

    def call(self, action: str, params: dict | None = None) -> dict:
        """Send one action; resend only when the platform certainly did not act."""
        params = params or {}
        renewed = False
        busy = 0
        while True:
            cred = None
            if self.api_key:
                hash_value = self.api_key
            else:
                cred = self.credential.get()
                hash_value = cred.get("hash")
            try:
                return self._send(action, params, hash_value)
            except SessionExpiredError:
                if renewed or self.credential is None:
                    raise
                renewed = True
                self.credential.renew(cred)  # single-flight: only one worker logs in again
            except (RateLimitedError, QueueBusy, DatabaseUnavailable, NavixyNotExecuted) as exc:
                busy += 1
                if busy > self.max_busy_retries:
                    raise
                delay = exc.retry_after if exc.retry_after is not None else backoff_delay(busy, base=0.5, cap=10)
                logger.info("navixy %s: %s; retrying in %.2fs", action, exc, delay)
                self.sleep(min(delay, 30.0))

    # ---- catalogue

    def list_models(self, *, codes: list[str] | None = None) -> list[Model]:
        body = self.call("tracker/list_models", {"codes": codes})
        return [parse_model(m) for m in body.get("list") or []]

    def plugin_list(self) -> list[Plugin]:
        body = self.call("plugin/list")
        return [parse_plugin(p) for p in body.get("list") or []]

    def group_list(self) -> list[Group]:
        body = self.call("tracker/group/list")
        return [Group(id=int(g["id"]), title=str(g.get("title") or ""), color=str(g.get("color") or ""))
                for g in body.get("list") or []]

    def group_create(self, *, title: str, color: str = "1E96DC") -> int:
        """Not idempotent: a lost answer may leave a group behind (look it up by title)."""
        body = self.call("tracker/group/create", {"title": title, "color": color})
        return int(body["id"])

    # ---- trackers

    def register(
        self,
        *,
        label: str,
        group_id: int,
        plugin_id: int,
        model: str,
        device_id: str | None = None,
        phone: str | None = None,
        apn_name: str | None = None,
        apn_user: str | None = None,
        apn_password: str | None = None,
        activation_code: str | None = None,
        notification_email: str | None = None,
        notification_phone: str | None = None,
        send_register_commands: bool | None = None,
    ) -> Tracker:
        """tracker/register. Never resent after an unknown outcome: the caller reconciles
        (look the tracker up) first, because a second unit would be created."""
        body = self.call("tracker/register", {
            "label": label, "group_id": group_id, "plugin_id": plugin_id, "model": model,
            "device_id": device_id, "phone": phone, "apn_name": apn_name, "apn_user": apn_user,
            "apn_password": apn_password, "activation_code": activation_code,
            "notification_email": notification_email, "notification_phone": notification_phone,
            "send_register_commands": send_register_commands,
        })
        return parse_tracker(body["value"])

    def register_retry(
        self,
        *,
        tracker_id: int | None = None,
        device_id: str | None = None,
        apn_name: str | None = None,
        apn_user: str | None = None,
        apn_password: str | None = None,
        send_register_commands: bool | None = None,
    ) -> Tracker:
        if tracker_id is None and not device_id:
            raise ValueError("tracker_id or device_id is required")
        body = self.call("tracker/register_retry", {
            "tracker_id": tracker_id, "device_id": device_id, "apn_name": apn_name, "apn_user": apn_user,
            "apn_password": apn_password, "send_register_commands": send_register_commands,
        })
        return parse_tracker(body["value"])

    def tracker_list(self, *, labels: list[str] | None = None) -> list[Tracker]:
        """Trackers whose label *contains* any of ``labels`` (all when None)."""
        body = self.call("tracker/list", {"labels": list(dict.fromkeys(labels)) if labels else None})
        return [parse_tracker(t) for t in body.get("list") or []]

    def tracker_read(self, *, tracker_id: int) -> Tracker:
        body = self.call("tracker/read", {"tracker_id": tracker_id})
        return parse_tracker(body["value"])
