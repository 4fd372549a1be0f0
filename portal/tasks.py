import socket

from celery import shared_task
from django.utils import timezone

from portal.models import Heartbeat


@shared_task(name="portal.heartbeat", ignore_result=True, soft_time_limit=10, time_limit=20)
def heartbeat(*, name: str = "beat") -> None:
    """Sent by beat, executed by a worker: its timestamp proves both are running."""
    Heartbeat.objects.update_or_create(
        name=name, defaults={"beat_at": timezone.now(), "worker": socket.gethostname()}
    )
