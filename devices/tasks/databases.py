"""Celery tasks for customer MyGeotab databases: thin, idempotent wrappers over
devices.services.databases."""

from celery import shared_task

from integrations.base import NotExecutedError, OutcomeUnknownError, backoff_delay

MAX_ADD_ATTEMPTS = 5


@shared_task(bind=True, name="devices.devices_refresh_readiness", max_retries=3, acks_late=True,
             soft_time_limit=120, time_limit=150)
def devices_refresh_readiness_task(self, device_ids: list[int] | None = None) -> dict:
    """Beat job (all pending devices) and the follow-up of an add (``device_ids``)."""
    from devices.services.databases import devices_refresh_readiness

    try:
        result = devices_refresh_readiness(device_ids=device_ids)
    except (NotExecutedError, OutcomeUnknownError) as exc:
        # A read: asking again is always safe. The beat run covers whatever still fails.
        if self.request.retries >= self.max_retries:
            raise
        raise self.retry(exc=exc, countdown=5 + backoff_delay(self.request.retries + 1, base=5, cap=60)) from exc
    return {"checked": result.checked, "became_ready": len(result.became_ready),
            "released_records": result.released_records}


@shared_task(bind=True, name="devices.device_add_to_database", max_retries=MAX_ADD_ATTEMPTS, acks_late=True,
             soft_time_limit=120, time_limit=150)
def device_add_to_database_task(self, device_id: int, database_id: int, actor_id: int | None = None) -> str:
    """Add one device in the background; safe to run twice (the service looks the serial up first)."""
    from django.contrib.auth import get_user_model

    from devices.models import CustomerDatabase, Device
    from devices.services.databases import device_add_to_database

    device = Device.objects.filter(pk=device_id).first()
    database = CustomerDatabase.objects.filter(pk=database_id).first()
    if device is None or database is None:
        return "gone"
    actor = get_user_model().objects.filter(pk=actor_id).first() if actor_id else None
    result = device_add_to_database(device=device, database=database, actor=actor)
    if result.retryable and self.request.retries < self.max_retries:
        raise self.retry(countdown=5 + backoff_delay(self.request.retries + 1, base=5, cap=120))
    return result.outcome.value
