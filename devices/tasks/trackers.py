"""Celery tasks for Navixy trackers: thin, idempotent wrappers over devices.services.trackers."""

from celery import shared_task

from integrations.base import backoff_delay

MAX_REGISTER_ATTEMPTS = 8


@shared_task(bind=True, name="devices.tracker_register", max_retries=MAX_REGISTER_ATTEMPTS, acks_late=True)
def tracker_register_task(self, tracker_id: int) -> str:
    from devices.services.trackers import (
        Outcome,
        tracker_register,
        tracker_register_give_up,
    )

    outcome = tracker_register(tracker_id=tracker_id)
    if outcome in (Outcome.RETRY, Outcome.UNKNOWN):
        if self.request.retries >= self.max_retries:
            tracker_register_give_up(tracker_id=tracker_id, outcome=outcome)
            return outcome
        # Short countdowns only (no long ETAs); an unknown outcome is looked up first anyway.
        raise self.retry(countdown=5 + backoff_delay(self.request.retries + 1, base=5, cap=120))
    return outcome


@shared_task(name="devices.tracker_register_retry", acks_late=True)
def tracker_register_retry_task(tracker_id: int, actor_id: int | None = None) -> str:
    from django.contrib.auth import get_user_model

    from devices.services.trackers import tracker_register_retry

    actor = get_user_model().objects.filter(pk=actor_id).first() if actor_id else None
    return tracker_register_retry(tracker_id=tracker_id, actor=actor)


@shared_task(name="devices.tracker_refresh", acks_late=True)
def tracker_refresh_task(tracker_id: int) -> str:
    from devices.services.trackers import tracker_refresh

    return tracker_refresh(tracker_id=tracker_id)


@shared_task(name="devices.navixy_catalogue_refresh", acks_late=True)
def navixy_catalogue_refresh_task() -> dict:
    from devices.services.trackers import navixy_catalogue_refresh

    return navixy_catalogue_refresh()


@shared_task(name="devices.trackers_sweep", acks_late=True)
def trackers_sweep_task() -> int:
    from devices.services.trackers import trackers_sweep

    return len(trackers_sweep())
