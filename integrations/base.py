"""The shared base of every vendor client: one HTTP session with default timeouts, a typed
error hierarchy that says whether a failed call may have executed, and a hook that records
every outbound call in the portal's vendor-call ledger.

Plain Python: nothing here imports Django or the portal's apps. The portal plugs in the
ledger writer (`register_call_recorder`), the shared token store and the shared rate limiter.

Retry classes (decided by the caller, never hidden in the session):
- ``NOT_EXECUTED``: the vendor certainly did not act (connection refused, 429, session
  expired, a validation error before execution). Safe to retry with backoff.
- ``REJECTED``: the vendor answered and refused (business/validation error). Retrying the same
  request gives the same answer; a person or a changed input is needed.
- ``UNKNOWN``: the request may have reached the vendor and been executed (read timeout,
  connection reset after sending, 5xx). Never retried blindly: reconcile first.
"""

from __future__ import annotations

import contextlib
import contextvars
import email.utils
import hashlib
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Protocol

import requests
from requests.adapters import HTTPAdapter

logger = logging.getLogger(__name__)

USER_AGENT = "IntegratorPortal/1.0 (+https://github.com/)"
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_READ_TIMEOUT = 30.0

# Keys whose values never leave the process in a log line, a digest or the ledger.
SECRET_KEYS = frozenset(
    {
        "password",
        "sessionid",
        "apikey",
        "hash",
        "token",
        "tokenstring",
        "bearertoken",
        "refreshtoken",
        "authorization",
        "auth-sessionid",
        "credentials",
        "activation_code",
        "apn_password",
    }
)
REDACTED = "***"


class Outcome(str, Enum):
    OK = "ok"
    NOT_EXECUTED = "not_executed"
    REJECTED = "rejected"
    UNKNOWN = "unknown"


class VendorError(Exception):
    """A vendor call that did not succeed. ``outcome`` says whether it may have executed."""

    outcome: Outcome = Outcome.UNKNOWN

    def __init__(
        self,
        message: str,
        *,
        system: str = "",
        method: str = "",
        error_name: str = "",
        http_status: int | None = None,
        retry_after: float | None = None,
        details: Any = None,
    ):
        super().__init__(message)
        self.message = message
        self.system = system
        self.method = method
        self.error_name = error_name
        self.http_status = http_status
        self.retry_after = retry_after
        self.details = details

    @property
    def may_have_executed(self) -> bool:
        return self.outcome == Outcome.UNKNOWN

    @property
    def retryable(self) -> bool:
        return self.outcome == Outcome.NOT_EXECUTED

    def __str__(self) -> str:
        name = f"{self.error_name}: " if self.error_name else ""
        return f"{name}{self.message}"


class NotExecutedError(VendorError):
    """The vendor certainly did not act; safe to retry with backoff."""

    outcome = Outcome.NOT_EXECUTED


class RateLimitedError(NotExecutedError):
    """HTTP 429 or a vendor's own rate-limit code; ``retry_after`` in seconds when known."""


class SessionExpiredError(NotExecutedError):
    """The vendor refused the session before acting; authenticate again and retry once."""


class RejectedError(VendorError):
    """The vendor answered and refused the request; retrying the same input cannot help."""

    outcome = Outcome.REJECTED


class AuthenticationError(RejectedError):
    """Wrong or unknown credentials: staff must fix the configuration."""


class OutcomeUnknownError(VendorError):
    """The request may have been executed (timeout after sending, reset, 5xx)."""

    outcome = Outcome.UNKNOWN


# --------------------------------------------------------------------------- ledger hook


@dataclass
class CallRecord:
    """What the ledger keeps of one outbound call. Never holds a secret."""

    system: str
    method: str
    url: str
    request_digest: str
    outcome: Outcome
    http_status: int | None
    error_name: str
    error_message: str
    duration_ms: int
    attempt: int
    target: str
    request_id: str
    started_at: datetime
    response_summary: str = ""


_recorders: list[Callable[[CallRecord], None]] = []


def register_call_recorder(recorder: Callable[[CallRecord], None]) -> None:
    if recorder not in _recorders:
        _recorders.append(recorder)


@dataclass
class CallContext:
    target: str = ""
    attempt: int = 1
    request_id: str = ""


_call_context: contextvars.ContextVar[CallContext] = contextvars.ContextVar(
    "vendor_call_context", default=CallContext()  # noqa: B039 - never mutated: contexts are replaced, not edited
)


@contextlib.contextmanager
def vendor_call_context(
    *, target: str = "", attempt: int | None = None, request_id: str | None = None
) -> Iterator[CallContext]:
    """Label the vendor calls made inside the block (e.g. target="devices.Device:42")."""
    parent = _call_context.get()
    ctx = CallContext(
        target=target or parent.target,
        attempt=attempt if attempt is not None else parent.attempt,
        request_id=request_id if request_id is not None else parent.request_id,
    )
    token = _call_context.set(ctx)
    try:
        yield ctx
    finally:
        _call_context.reset(token)


def current_call_context() -> CallContext:
    return _call_context.get()


def redact(value: Any) -> Any:
    """A deep copy of ``value`` with every secret-looking key masked."""
    if isinstance(value, dict):
        return {
            k: (REDACTED if str(k).lower() in SECRET_KEYS else redact(v)) for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    return value


def request_digest(payload: Any) -> str:
    """SHA-256 of the canonical JSON of the payload, secrets masked first."""
    canonical = json.dumps(redact(payload), sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


# --------------------------------------------------------------------------- session


class VendorSession:
    """A requests session with default timeouts, a User-Agent and the ledger hook.

    It never retries a request: urllib3 retries are off (a POST that timed out may have
    executed), so each vendor client decides, per method, what a failure allows.
    """

    def __init__(
        self,
        system: str,
        *,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        user_agent: str = USER_AGENT,
        pool_size: int = 10,
    ):
        self.system = system
        self.timeout = (connect_timeout, read_timeout)
        self.http = requests.Session()
        adapter = HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0)
        self.http.mount("http://", adapter)
        self.http.mount("https://", adapter)
        self.http.headers["User-Agent"] = user_agent

    def call(
        self,
        method: str,
        http_method: str,
        url: str,
        *,
        parse: Callable[[requests.Response], Any],
        digest_payload: Any = None,
        timeout: tuple[float, float] | float | None = None,
        summarize: Callable[[Any], str] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Send one request and return ``parse(response)``; record the outcome either way.

        ``parse`` turns the response into a result or raises a ``VendorError`` subclass;
        transport failures are classified here: nothing sent → NOT_EXECUTED, anything after
        the request may have reached the vendor → UNKNOWN.
        """
        ctx = current_call_context()
        started = datetime.now(UTC)
        t0 = time.monotonic()
        status: int | None = None
        result: Any = None
        error: VendorError | None = None
        try:
            response = self.http.request(
                http_method, url, timeout=timeout or self.timeout, **kwargs
            )
            status = response.status_code
            result = parse(response)
            return result
        except VendorError as exc:
            exc.system = exc.system or self.system
            exc.method = exc.method or method
            exc.http_status = exc.http_status or status
            error = exc
            raise
        except requests.RequestException as exc:
            error = classify_transport_error(exc, system=self.system, method=method)
            raise error from exc
        except ValueError as exc:
            # The vendor answered with something we cannot read: we cannot tell what it did.
            error = OutcomeUnknownError(
                f"unreadable response: {exc}", system=self.system, method=method, http_status=status
            )
            raise error from exc
        finally:
            duration_ms = int((time.monotonic() - t0) * 1000)
            record = CallRecord(
                system=self.system,
                method=method,
                url=url.split("?", 1)[0],
                request_digest=request_digest(digest_payload) if digest_payload is not None else "",
                outcome=error.outcome if error else Outcome.OK,
                http_status=status,
                error_name=(error.error_name or type(error).__name__) if error else "",
                error_message=(error.message[:500] if error else ""),
                duration_ms=duration_ms,
                attempt=ctx.attempt,
                target=ctx.target,
                request_id=ctx.request_id,
                started_at=started,
                response_summary=(summarize(result) if (summarize and error is None) else "")[:500],
            )
            _emit(record)


def _emit(record: CallRecord) -> None:
    for recorder in _recorders:
        try:
            recorder(record)
        except Exception:  # the ledger must never turn a vendor success into a failure
            logger.exception("vendor-call recorder failed for %s.%s", record.system, record.method)


def classify_transport_error(exc: requests.RequestException, *, system: str, method: str) -> VendorError:
    """Connection never established → NOT_EXECUTED; anything later → UNKNOWN."""
    if isinstance(exc, requests.ConnectTimeout):
        return NotExecutedError(f"connect timeout: {exc}", system=system, method=method, error_name="ConnectTimeout")
    if isinstance(exc, requests.ReadTimeout):
        return OutcomeUnknownError(f"read timeout: {exc}", system=system, method=method, error_name="ReadTimeout")
    if isinstance(exc, requests.ConnectionError):
        if _is_connect_failure(exc):
            return NotExecutedError(
                f"connection refused: {exc}", system=system, method=method, error_name="ConnectionRefused"
            )
        return OutcomeUnknownError(
            f"connection lost after sending: {exc}", system=system, method=method, error_name="ConnectionLost"
        )
    if isinstance(exc, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema)):
        return NotExecutedError(f"invalid URL: {exc}", system=system, method=method, error_name="InvalidURL")
    return OutcomeUnknownError(str(exc), system=system, method=method, error_name=type(exc).__name__)


def _is_connect_failure(exc: BaseException) -> bool:
    """True when the chain shows the TCP connection was never made (nothing was sent)."""
    from urllib3.exceptions import NameResolutionError, NewConnectionError

    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, (NewConnectionError, NameResolutionError, ConnectionRefusedError)):
            return True
        stack.extend([e.__cause__, e.__context__, getattr(e, "reason", None)])
        stack.extend(a for a in getattr(e, "args", ()) if isinstance(a, BaseException))
    return False


# --------------------------------------------------------------------------- backoff


def backoff_delay(attempt: int, *, base: float = 1.0, cap: float = 60.0) -> float:
    """Full-jitter exponential backoff (AWS Architecture Blog): uniform in [0, min(cap, base·2^n)]."""
    return random.uniform(0, min(cap, base * (2 ** max(0, attempt - 1))))  # noqa: S311 - jitter, not crypto


def parse_retry_after(value: str | None, *, default: float | None = None) -> float | None:
    """RFC 9110 Retry-After: delta-seconds or an HTTP-date."""
    if not value:
        return default
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


# --------------------------------------------------------------------------- shared state


class TokenStore(Protocol):
    """Where a client keeps its session/token so every worker shares one (see portal.vendor)."""

    def get(self, key: str) -> dict | None: ...

    def set(self, key: str, value: dict) -> None: ...

    def lock(self, key: str) -> contextlib.AbstractContextManager[dict | None]:
        """Hold an exclusive lock on ``key`` across processes; yields the current value."""
        ...


class MemoryTokenStore:
    """A process-local store, for scripts and unit tests."""

    def __init__(self) -> None:
        self._data: dict[str, dict] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, key: str) -> dict | None:
        return self._data.get(key)

    def set(self, key: str, value: dict) -> None:
        self._data[key] = value

    @contextlib.contextmanager
    def lock(self, key: str) -> Iterator[dict | None]:
        with self._guard:
            lk = self._locks.setdefault(key, threading.Lock())
        with lk:
            yield self._data.get(key)


@dataclass
class SharedCredential:
    """A vendor session shared by all workers, renewed single-flight.

    ``login()`` returns a dict (the session/token). ``renew(stale)`` logs in again only if the
    stored value is still the one the caller found stale; otherwise another worker already
    renewed it and that value is returned. One login at a time, whatever the worker count.
    """

    store: TokenStore
    key: str
    login: Callable[[], dict]

    def get(self) -> dict:
        value = self.store.get(self.key)
        if value:
            return value
        return self.renew(None)

    def renew(self, stale: dict | None) -> dict:
        with self.store.lock(self.key) as current:
            if current and current != stale:
                return current
            fresh = self.login()
            self.store.set(self.key, fresh)
            return fresh

    def forget(self) -> None:
        with self.store.lock(self.key):
            self.store.set(self.key, {})


class RateLimiter(Protocol):
    def acquire(self, name: str, *, limit: int, period: float, max_wait: float = 30.0) -> None:
        """Block until one more call fits under ``limit`` per ``period`` seconds; raise
        ``RateLimitedError`` (not executed) if that would take longer than ``max_wait``."""
        ...


@dataclass
class MemoryRateLimiter:
    """A process-local fixed-window limiter (the portal uses a shared one, portal.vendor)."""

    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    _windows: dict[str, tuple[int, int]] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def acquire(self, name: str, *, limit: int, period: float, max_wait: float = 30.0) -> None:
        deadline = self.clock() + max_wait
        while True:
            now = self.clock()
            window = int(now // period)
            with self._guard:
                current, count = self._windows.get(name, (window, 0))
                if current != window:
                    current, count = window, 0
                if count < limit:
                    self._windows[name] = (current, count + 1)
                    return
            wait = (window + 1) * period - now
            if now + wait > deadline:
                raise RateLimitedError(
                    f"client-side limit of {limit}/{period:g}s for {name} reached",
                    error_name="ClientRateLimit",
                    retry_after=wait,
                )
            self.sleep(wait + 1e-3)  # just past the edge, whatever the float rounding
