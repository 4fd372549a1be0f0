"""API tokens with a last-use time, and the admin login lockout.

Tokens: ``ApiToken`` rows (several per user, named, revocable; only a SHA-256 digest of the
key is stored). ``PortalTokenAuthentication`` accepts them as ``Authorization: Token <key>``
and still accepts DRF's single per-user ``authtoken`` keys, so existing clients keep working.

Lockout: after ``LOGIN_MAX_FAILURES`` failed logins within ``LOGIN_LOCKOUT_SECONDS`` for one
username (or LOGIN_MAX_FAILURES_PER_ADDRESS from one address), further attempts are refused for that period, even with the
right password. Counters live in the cache (Redis in production, shared by every process).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.backends import ModelBackend
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication

from portal.models import ApiToken

# Named tokens carry a prefix, so a key is looked up in exactly one table.
KEY_PREFIX = "pt_"
# Writing last_used_at on every request would turn each API read into a write: once a minute.
LAST_USED_RESOLUTION = timedelta(seconds=60)


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def api_token_create(*, user, name: str) -> tuple[ApiToken, str]:
    """A new token for ``user``; returns (token, key). The key is not stored and cannot be
    shown again."""
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "Give the token a name (what will use it)."})
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(user=user, name=name[:100], prefix=key[len(KEY_PREFIX):][:8],
                                    key_digest=_digest(key))
    return token, key


def api_token_revoke(*, token_ids, actor=None) -> int:
    from portal.audit import Action, audit_bulk

    ids = list(ApiToken.objects.filter(pk__in=token_ids, revoked_at__isnull=True).values_list("pk", flat=True))
    if ids:
        ApiToken.objects.filter(pk__in=ids).update(revoked_at=timezone.now())
        audit_bulk(model=ApiToken, ids=ids, action=Action.BULK_UPDATE, changes={"revoked": True}, actor=actor,
                   message="API tokens revoked")
    return len(ids)


class PortalTokenAuthentication(TokenAuthentication):
    def authenticate_credentials(self, key):
        if not key.startswith(KEY_PREFIX):
            # DRF's per-user token (raises AuthenticationFailed if unknown): one query either way.
            return super().authenticate_credentials(key)
        token = ApiToken.objects.select_related("user").filter(key_digest=_digest(key)).first()
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid token.")
        if token.revoked_at is not None:
            raise exceptions.AuthenticationFailed("Token revoked.")
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        now = timezone.now()
        if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return token.user, token


# --- login lockout --------------------------------------------------------------------------

def _max_failures() -> int:
    return getattr(settings, "LOGIN_MAX_FAILURES", 5)


def _lockout_seconds() -> int:
    return getattr(settings, "LOGIN_LOCKOUT_SECONDS", 900)


def _keys(username: str, ip: str) -> list[str]:
    keys = []
    if username:
        keys.append("portal:loginfail:user:" + hashlib.sha256(username.lower().encode()).hexdigest()[:32])
    if ip:
        keys.append("portal:loginfail:ip:" + ip)
    return keys


def _limit_for(key: str) -> int:
    if ":ip:" in key:
        # Per address the bar is much higher: an office shares one address, and a low bar would
        # let one person's typos (or an attacker) lock everyone there out.
        return getattr(settings, "LOGIN_MAX_FAILURES_PER_ADDRESS", 100)
    return _max_failures()


def client_ip(request) -> str:
    return (request.META.get("REMOTE_ADDR") or "") if request is not None else ""


def login_locked(*, username: str, ip: str) -> bool:
    return any((cache.get(k) or 0) >= _limit_for(k) for k in _keys(username, ip))


def login_failed(*, username: str, ip: str) -> None:
    for key in _keys(username, ip):
        # add() starts the window; incr() keeps its expiry (the window is from the first failure).
        if not cache.add(key, 1, _lockout_seconds()):
            try:
                cache.incr(key)
            except ValueError:
                cache.set(key, 1, _lockout_seconds())


def login_succeeded(*, username: str) -> None:
    cache.delete_many(_keys(username, ""))


LOCKED_MESSAGE = (
    "Too many failed sign-in attempts. Sign-in is locked for {minutes} minutes; "
    "ask an administrator if you need access sooner."
)


class LockoutModelBackend(ModelBackend):
    """ModelBackend that refuses locked usernames/addresses and counts failures. It raises
    PermissionDenied when locked, which stops Django trying other backends."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        ip = client_ip(request)
        if username is not None and login_locked(username=username, ip=ip):
            raise PermissionDenied("login locked")
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None and username is not None:
            login_failed(username=username, ip=ip)
        elif user is not None:
            login_succeeded(username=username)
        return user


class PortalAdminAuthenticationForm(AdminAuthenticationForm):
    """The admin login form, saying plainly when sign-in is locked."""

    def clean(self):
        username = self.cleaned_data.get("username") or ""
        if username and login_locked(username=username, ip=client_ip(self.request)):
            raise ValidationError(
                LOCKED_MESSAGE.format(minutes=max(1, _lockout_seconds() // 60)), code="locked"
            )
        return super().clean()
