"""Sessions of the simulated MyAdmin (other sandbox parts, e.g. partner shipping, use them)."""

import uuid
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from sandbox.myadmin.models import SandboxSession, SandboxUser

DEFAULT_SESSION_SECONDS = 7 * 24 * 3600  # one week [C S8 Authenticate]


def session_seconds() -> int:
    import os

    value = os.environ.get("SANDBOX_MYADMIN_SESSION_SECONDS") or getattr(
        settings, "SANDBOX_MYADMIN_SESSION_SECONDS", DEFAULT_SESSION_SECONDS
    )
    try:
        return max(1, int(value))
    except (TypeError, ValueError):
        return DEFAULT_SESSION_SECONDS


def session_open(user: SandboxUser) -> SandboxSession:
    return SandboxSession.objects.create(user=user, expires_at=timezone.now() + timedelta(seconds=session_seconds()))


def _as_uuid(value) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError, AttributeError):
        return None


def session_lookup(session_id) -> SandboxSession | None:
    sid = _as_uuid(session_id)
    if sid is None:
        return None
    return SandboxSession.objects.select_related("user").filter(session_id=sid).first()


def user_for_session(session_id) -> SandboxUser | None:
    """The user of a live session; None when the session is unknown or expired."""
    session = session_lookup(session_id)
    if session is None or session.expires_at <= timezone.now():
        return None
    return session.user


def session_expire(session_id) -> None:
    sid = _as_uuid(session_id)
    if sid is not None:
        SandboxSession.objects.filter(session_id=sid).update(expires_at=timezone.now() - timedelta(seconds=1))
