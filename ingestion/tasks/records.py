"""Celery tasks for device records: thin wrappers over the services."""

import logging

from celery import shared_task
from django.core.cache import cache

logger = logging.getLogger(__name__)

# A forwarding run spends at most DIG_FORWARD_TIME_BUDGET_SECONDS (default 60 s), far below the
# soft limit and the broker's visibility timeout.
FORWARD_SOFT_LIMIT = 180
FORWARD_HARD_LIMIT = 240
_SLOT_KEY = "ingestion:forwarder-slot:{}"


def _acquire_slot() -> str | None:
    """At most DIG_FORWARD_WORKERS forwarding chains at once (nudges and beat can both start
    one); a slot left by a killed worker expires on its own."""
    from ingestion.services.records import knob

    for n in range(int(knob("DIG_FORWARD_WORKERS", 2))):
        key = _SLOT_KEY.format(n)
        if cache.add(key, 1, timeout=FORWARD_HARD_LIMIT):
            return key
    return None


@shared_task(name="ingestion.records_forward", ignore_result=True,
             soft_time_limit=FORWARD_SOFT_LIMIT, time_limit=FORWARD_HARD_LIMIT)
def records_forward_task() -> int:
    """Send queued records to DIG; chain another run while a backlog remains."""
    from ingestion.services.outbox import records_forward

    slot = _acquire_slot()
    if slot is None:
        return 0
    try:
        summary = records_forward()
    finally:
        cache.delete(slot)
    if summary.stopped:
        logger.info("DIG forwarding stopped: %s", summary.stopped)
    if summary.backlog:
        records_forward_task.delay()
    return summary.sent


@shared_task(name="ingestion.records_poll_invalid", ignore_result=True, soft_time_limit=120, time_limit=150)
def records_poll_invalid_task() -> int:
    """Read DIG's invalid-records feed from the saved cursor."""
    from ingestion.services.feedback import records_poll_invalid

    return records_poll_invalid().matched


@shared_task(name="ingestion.records_release_sweep", ignore_result=True, soft_time_limit=120, time_limit=150)
def records_release_sweep_task() -> int:
    """Release held records of devices that have become ready."""
    from ingestion.services.records import records_release_sweep

    return records_release_sweep()


@shared_task(name="ingestion.records_prune", ignore_result=True, soft_time_limit=240, time_limit=300)
def records_prune_task() -> int:
    """Delete forwarded records past the retention period, in bounded batches."""
    from ingestion.services.records import records_prune

    return records_prune()


@shared_task(name="ingestion.records_replay", ignore_result=True, soft_time_limit=240, time_limit=300)
def records_replay_task(*, record_ids: list[int], job_id: int | None = None, actor_id: int | None = None):
    """Staff's replay of rejected/held records, in batches, reported to its job."""
    from django.contrib.auth import get_user_model

    from ingestion.services.replay_jobs import records_replay_as_job

    actor = get_user_model().objects.filter(pk=actor_id).first() if actor_id else None
    return records_replay_as_job(job_id=job_id, record_ids=record_ids, actor=actor)
