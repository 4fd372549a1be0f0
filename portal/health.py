"""/health/: database, broker and the age of the last beat heartbeat, as JSON (200 or 503)."""

from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.utils import timezone

from portal.celery import app as celery_app
from portal.models import Heartbeat

# Heartbeats older than this many periods mean beat or every worker is down.
STALE_AFTER_PERIODS = 4


def _check_database() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return {"ok": True}
    except Exception as exc:  # any failure is the answer, not a 500
        return {"ok": False, "error": type(exc).__name__}


def _check_broker() -> dict:
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return {"ok": True, "transport": conn.transport_cls}
    except Exception as exc:
        return {"ok": False, "error": type(exc).__name__}


def _check_heartbeat(db_ok: bool) -> dict:
    period = settings.HEARTBEAT_PERIOD_SECONDS
    if not db_ok:
        return {"ok": False, "error": "database unavailable", "period_seconds": period}
    beat = Heartbeat.objects.filter(name="beat").first()
    if beat is None:
        return {"ok": False, "age_seconds": None, "period_seconds": period, "error": "no heartbeat yet"}
    age = (timezone.now() - beat.beat_at).total_seconds()
    return {
        "ok": age < period * STALE_AFTER_PERIODS,
        "age_seconds": round(age, 1),
        "period_seconds": period,
        "worker": beat.worker,
        "last_at": beat.beat_at.isoformat(),
    }


def health(request):
    database = _check_database()
    broker = _check_broker()
    heartbeat = _check_heartbeat(database["ok"])
    ok = database["ok"] and broker["ok"] and heartbeat["ok"]
    body = {
        "status": "ok" if ok else "unavailable",
        "database": database,
        "broker": broker,
        "heartbeat": heartbeat,
        "time": timezone.now().isoformat(),
    }
    return JsonResponse(body, status=200 if ok else 503)


def heartbeat_is_fresh(max_age: timedelta) -> bool:
    beat = Heartbeat.objects.filter(name="beat").first()
    return bool(beat and timezone.now() - beat.beat_at < max_age)
