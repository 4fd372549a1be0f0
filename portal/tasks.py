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


@shared_task(name="portal.vendor_call_rollup", ignore_result=True, soft_time_limit=120, time_limit=150)
def vendor_call_rollup() -> None:
    """Count settled hours of the vendor-call ledger for the dashboard's error rates."""
    from portal.ledger_rollup import vendor_call_rollup as rollup

    rollup()


@shared_task(name="portal.dashboard_refresh", ignore_result=True, soft_time_limit=60, time_limit=90)
def dashboard_refresh() -> None:
    """Recompute the dashboard's cached panels, so page views read the shared cache (Redis in
    production) instead of paying for the aggregations."""
    from portal.dashboard import dashboard_refresh as refresh

    refresh()


@shared_task(name="portal.jobs_fail_stale", ignore_result=True, soft_time_limit=60, time_limit=90)
def jobs_fail_stale() -> int:
    """Finish as failed the jobs that made no progress for JOB_STALE_SECONDS (work lost)."""
    from portal.jobs import jobs_fail_stale as sweep

    return sweep()
