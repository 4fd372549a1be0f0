"""Geotab Data Intake Gateway (DIG) client: bearer-token auth shared by every worker, record
upload in batches of up to 5000, and the invalid-records feed.

Facts from reference/geotab.md §4.2/§5 (tags there). Guesses are isolated here and marked [I]:
- token lifetimes are not published: we read ``Expires`` from every answer and refresh when
  less than min(60 min, half the lifetime) remains, as Geotab's own adapter does;
- refresh tokens are single-use (403 "already refreshed"): a 401/403 on refresh means "log in
  again";
- 503 on ``/records`` is taken as "not executed" (an outage answer, nothing stored) [I];
  a 500 or an unreadable answer may have stored the batch (outcome unknown);
- the byte limit behind 413 is not published [I]: the caller splits the batch and retries.

Plain Python: no Django. The portal hands in a shared ``TokenStore`` (so all workers use one
token pair) and a shared ``RateLimiter`` (the auth endpoints allow 5 requests/minute each).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
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
    VendorSession,
    parse_retry_after,
)

SYSTEM = "dig"
MAX_RECORDS_PER_POST = 5000
MAX_INVALID_PAGE = 50_000
# The auth endpoints' published limit: 5 requests per minute each [C S10].
AUTH_RATE_LIMIT = 5
AUTH_RATE_PERIOD = 60.0
# Refresh when this much of the bearer lifetime is left (capped at half the lifetime) [C S10].
REFRESH_MARGIN_SECONDS = 3600.0


class PayloadTooLargeError(RejectedError):
    """413: too many records or too many bytes; split the batch."""


class BadRecordsError(RejectedError):
    """400: the body (or one of its records) failed DIG's validation; ``errors`` lists why."""

    @property
    def errors(self) -> list[str]:
        return list(self.details or [])


@dataclass(frozen=True)
class TokenPair:
    bearer: str
    refresh: str
    bearer_expires: float  # epoch seconds
    bearer_created: float

    @property
    def refresh_due_at(self) -> float:
        lifetime = max(0.0, self.bearer_expires - self.bearer_created)
        margin = min(REFRESH_MARGIN_SECONDS, lifetime / 2)
        return self.bearer_expires - margin

    def as_dict(self) -> dict:
        return {
            "bearer": self.bearer,
            "refresh": self.refresh,
            "bearer_expires": self.bearer_expires,
            "bearer_created": self.bearer_created,
        }

    @classmethod
    def from_dict(cls, value: dict | None) -> TokenPair | None:
        if not value or not value.get("bearer"):
            return None
        return cls(
            bearer=value["bearer"],
            refresh=value.get("refresh", ""),
            bearer_expires=float(value.get("bearer_expires", 0)),
            bearer_created=float(value.get("bearer_created", 0)),
        )


@dataclass
class InvalidRecord:
    record: dict
    cause: str
    timestamp: str
    user_id: str = ""


@dataclass
class InvalidRecordsPage:
    records: list[InvalidRecord]
    next_result_key: int | None
    current_result_key: int | None
    total: int | None = None
    extra: dict = field(default_factory=dict)


def _parse_time(value: Any) -> float:
    """DIG timestamps: ISO-8601, with or without a zone (no zone = UTC) [I]."""
    if not value:
        return 0.0
    text = str(value)
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def _envelope(response: requests.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        body = {}
    return body if isinstance(body, dict) else {}


def _errors(body: dict) -> list[str]:
    errors = body.get("Error") or body.get("error") or []
    if isinstance(errors, str):
        return [errors]
    return [str(e) for e in errors]


def _raise_for_status(response: requests.Response, *, auth_call: bool = False) -> dict:
    """Map a DIG answer to the typed errors; return the envelope of a 2xx."""
    status = response.status_code
    body = _envelope(response)
    errors = _errors(body)
    message = "; ".join(errors[:5]) or response.reason or f"HTTP {status}"
    if 200 <= status < 300:
        return body
    if status == 429:
        raise RateLimitedError(
            message, error_name="TooManyRequests",
            retry_after=parse_retry_after(response.headers.get("Retry-After"), default=None),
        )
    if status == 503:
        raise NotExecutedError(
            message, error_name="ServiceUnavailable",
            retry_after=parse_retry_after(response.headers.get("Retry-After"), default=None),
        )
    if status == 401:
        if auth_call:
            raise AuthenticationError(message, error_name="Unauthorized", details=errors)
        raise SessionExpiredError(message, error_name="Unauthorized", details=errors)
    if status == 403:
        raise SessionExpiredError(message, error_name="Forbidden", details=errors)
    if status == 413:
        raise PayloadTooLargeError(message, error_name="PayloadTooLarge", details=errors)
    if status == 400:
        raise BadRecordsError(message, error_name="BadRequest", details=errors)
    if 400 <= status < 500:
        raise RejectedError(message, error_name=f"HTTP{status}", details=errors)
    raise OutcomeUnknownError(message, error_name=f"HTTP{status}", details=errors)


class DigClient:
    """One DIG account. Thread-safe as long as the token store and limiter are."""

    TOKEN_KEY = "dig:tokens"

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        *,
        token_store: TokenStore | None = None,
        rate_limiter: RateLimiter | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        auth_max_wait: float = 30.0,
        clock: Callable[[], float] = time.time,
    ):
        self.base_url = base_url.rstrip("/")
        self.username = username
        self._password = password
        self.session = VendorSession(SYSTEM, connect_timeout=connect_timeout, read_timeout=read_timeout)
        self.rate_limiter = rate_limiter or MemoryRateLimiter()
        self.auth_max_wait = auth_max_wait
        self.clock = clock
        self.credential = SharedCredential(
            store=token_store or MemoryTokenStore(), key=self.TOKEN_KEY, login=self._login_or_refresh
        )
        # Set by `_renew` for the duration of one renewal (per thread): the pair found stale.
        self._renewal = threading.local()

    # ------------------------------------------------------------------ auth

    def _url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def _auth_slot(self, endpoint: str) -> None:
        self.rate_limiter.acquire(
            f"dig:auth:{endpoint}", limit=AUTH_RATE_LIMIT, period=AUTH_RATE_PERIOD, max_wait=self.auth_max_wait
        )

    def _parse_auth(self, response: requests.Response) -> dict:
        body = _raise_for_status(response, auth_call=True)
        data = body.get("Data") or {}
        try:
            bearer = data["BearerToken"]
            refresh = data.get("RefreshToken") or {}
            pair = TokenPair(
                bearer=bearer["TokenString"],
                refresh=refresh.get("TokenString", ""),
                bearer_expires=_parse_time(bearer.get("Expires")),
                bearer_created=_parse_time(bearer.get("Created")) or self.clock(),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise OutcomeUnknownError(f"unexpected authentication answer: {exc}", error_name="BadAnswer") from exc
        return pair.as_dict()

    def authenticate(self) -> TokenPair:
        """Full login with username/password (rate-limited, 5/min)."""
        self._auth_slot("authenticate")
        value = self.session.call(
            "authenticate", "POST", self._url("authentication/authenticate"),
            json={"Username": self.username, "Password": self._password},
            parse=self._parse_auth, digest_payload={"Username": self.username},
        )
        return TokenPair.from_dict(value)

    def _refresh(self, stale: TokenPair) -> TokenPair:
        self._auth_slot("refresh-token")
        value = self.session.call(
            "refresh-token", "POST", self._url("authentication/refresh-token"),
            json={"BearerToken": stale.bearer, "RefreshToken": stale.refresh},
            headers={"Authorization": f"Bearer {stale.bearer}"},
            parse=self._parse_auth, digest_payload={"refresh": True},
        )
        return TokenPair.from_dict(value)

    def _login_or_refresh(self) -> dict:
        """Called by SharedCredential under the store lock: refresh the stale pair when we
        have one (each refresh token is used at most once, because the new pair replaces it
        under the same lock), else — or if DIG refuses the refresh — log in again."""
        stale = getattr(self._renewal, "stale", None)
        if stale is not None and stale.refresh and not getattr(self._renewal, "force_login", False):
            try:
                return self._refresh(stale).as_dict()
            except (AuthenticationError, SessionExpiredError):
                pass  # 401/403: refresh token used or unknown → full login
        return self.authenticate().as_dict()

    def _renew(self, stale: TokenPair | None, *, force_login: bool = False) -> TokenPair:
        self._renewal.stale, self._renewal.force_login = stale, force_login
        try:
            return TokenPair.from_dict(self.credential.renew(stale.as_dict() if stale else None))
        finally:
            self._renewal.stale, self._renewal.force_login = None, False

    def tokens(self) -> TokenPair:
        """The current pair, renewed first if missing or due for refresh."""
        pair = TokenPair.from_dict(self.credential.store.get(self.TOKEN_KEY))
        if pair is None:
            return self._renew(None)
        if self.clock() >= pair.refresh_due_at:
            return self._renew(pair)
        return pair

    def revoke(self) -> None:
        """Revoke the stored refresh token and block its bearer; the next call logs in."""
        pair = TokenPair.from_dict(self.credential.store.get(self.TOKEN_KEY))
        if pair is None:
            return
        self._auth_slot("revoke-token")
        try:
            self.session.call(
                "revoke-token", "POST", self._url("authentication/revoke-token"),
                json={"BearerToken": pair.bearer, "RefreshToken": pair.refresh},
                headers={"Authorization": f"Bearer {pair.bearer}"},
                parse=lambda r: _raise_for_status(r, auth_call=True), digest_payload={"revoke": True},
            )
        except (AuthenticationError, SessionExpiredError):
            pass  # already revoked or unknown: the outcome we wanted
        self.credential.forget()

    def _authorized(self, do: Callable[[str], Any]) -> Any:
        """Run ``do(bearer)``; on 401/403 renew the token once and run it again."""
        pair = self.tokens()
        try:
            return do(pair.bearer)
        except SessionExpiredError:
            fresh = self._renew(pair)
            if fresh.bearer == pair.bearer:  # another worker could not do better: log in
                fresh = self._renew(pair, force_login=True)
            return do(fresh.bearer)

    # ------------------------------------------------------------------ records

    @staticmethod
    def encode_records(records: Sequence[dict | str | bytes]) -> bytes:
        """One JSON array; items may be dicts or already-encoded JSON objects (the outbox
        keeps each record's JSON, so forwarding 5000 of them is a join, not a re-encode)."""
        parts = []
        for item in records:
            if isinstance(item, bytes):
                parts.append(item)
            elif isinstance(item, str):
                parts.append(item.encode())
            else:
                parts.append(json.dumps(item, separators=(",", ":")).encode())
        return b"[" + b",".join(parts) + b"]"

    def post_records(self, records: Sequence[dict | str | bytes]) -> str:
        """Send 1..5000 records; return DIG's tracking id. Raises BadRecordsError (400),
        PayloadTooLargeError (413), RateLimitedError (429), NotExecutedError (503),
        OutcomeUnknownError (timeout/5xx: may have been stored)."""
        return self.post_encoded_records(self.encode_records(records), count=len(records))

    def post_encoded_records(self, body: bytes, *, count: int) -> str:
        """`post_records` for a body that is already one JSON array of ``count`` records (the
        outbox builds it in the database, so 5000 records never become 5000 Python objects)."""
        if not 1 <= count <= MAX_RECORDS_PER_POST:
            raise ValueError(f"post_records takes 1..{MAX_RECORDS_PER_POST} records, got {count}")
        digest = {"records": count, "sha256": hashlib.sha256(body).hexdigest()}

        def parse(response: requests.Response) -> str:
            envelope = _raise_for_status(response)
            return str(envelope.get("Data") or "")

        def do(bearer: str) -> str:
            return self.session.call(
                "records", "POST", self._url("records"), data=body,
                headers={"Authorization": f"Bearer {bearer}", "Content-Type": "application/json"},
                parse=parse, digest_payload=digest, summarize=lambda guid: f"{count} records, id {guid}",
            )

        return self._authorized(do)

    def invalid_records(self, *, next_result_key: int | None = None, number_of_results: int = 1000) -> InvalidRecordsPage:
        """One page of records DIG rejected after accepting them, from the cursor."""
        number_of_results = max(1, min(MAX_INVALID_PAGE, number_of_results))
        params: dict[str, Any] = {"numberOfResults": number_of_results}
        if next_result_key is not None:
            params["nextResultKey"] = next_result_key

        def parse(response: requests.Response) -> InvalidRecordsPage:
            envelope = _raise_for_status(response)
            data = envelope.get("Data") or {}
            items = []
            for raw in data.get("InvalidRecords") or []:
                items.append(InvalidRecord(
                    record=raw.get("BaseRecord") or {}, cause=str(raw.get("Cause") or ""),
                    timestamp=str(raw.get("TimeStamp") or ""), user_id=str(raw.get("UserId") or ""),
                ))
            return InvalidRecordsPage(
                records=items,
                next_result_key=data.get("NextResultKey"),
                current_result_key=data.get("CurrentResultKey"),
                total=data.get("TotalNumberOfInvalidRecords"),
            )

        def do(bearer: str) -> InvalidRecordsPage:
            return self.session.call(
                "invalidrecords", "GET", self._url("invalidrecords"), params=params,
                headers={"Authorization": f"Bearer {bearer}"}, parse=parse, digest_payload=params,
                summarize=lambda page: f"{len(page.records)} invalid records",
            )

        return self._authorized(do)
