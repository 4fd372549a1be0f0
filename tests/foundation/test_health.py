from datetime import timedelta

import pytest
from django.utils import timezone

from portal.models import Heartbeat
from portal.tasks import heartbeat

pytestmark = pytest.mark.django_db


def test_health_reports_every_part_and_is_200_with_a_fresh_heartbeat(client):
    heartbeat()
    response = client.get("/health/")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert body["database"]["ok"] and body["broker"]["ok"] and body["heartbeat"]["ok"]
    assert body["heartbeat"]["age_seconds"] < body["heartbeat"]["period_seconds"]


def test_health_is_503_without_a_heartbeat(client):
    response = client.get("/health/")
    assert response.status_code == 503
    assert response.json()["heartbeat"]["error"] == "no heartbeat yet"


def test_health_is_503_when_the_heartbeat_is_stale(client, settings):
    Heartbeat.objects.create(name="beat", beat_at=timezone.now() - timedelta(seconds=settings.HEARTBEAT_PERIOD_SECONDS * 10))
    response = client.get("/health/")
    assert response.status_code == 503
    assert response.json()["heartbeat"]["ok"] is False


def test_health_is_503_when_the_broker_is_unreachable(client, settings, monkeypatch):
    from portal import health

    def broken():
        raise ConnectionRefusedError("broker down")

    monkeypatch.setattr(health.celery_app, "connection_for_write", broken)
    heartbeat()
    response = client.get("/health/")
    assert response.status_code == 503
    assert response.json()["broker"] == {"ok": False, "error": "ConnectionRefusedError"}
