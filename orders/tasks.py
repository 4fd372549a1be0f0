"""Celery tasks for orders: thin wrappers over orders.services; ids in, idempotent."""

from celery import shared_task

from integrations.base import backoff_delay

PUSH_MAX_RETRIES = 8


@shared_task(name="orders.sync", ignore_result=True, soft_time_limit=600, time_limit=660)
def sync_orders(*, job_id: int | None = None, actor_id: int | None = None):
    """The beat's sync, or staff's "Sync now" with the job (portal.jobs) whose page they watch."""
    from django.contrib.auth import get_user_model

    from orders.models import OrderSyncRun
    from orders.services import order_sync
    from portal.jobs import JobAlreadyFinished, admin_url, job_finish, job_running

    actor = get_user_model().objects.filter(pk=actor_id).first() if actor_id else None
    try:
        with job_running(job_id):
            run = order_sync(actor=actor, job_id=job_id)
            if job_id is not None:
                summary = {name: getattr(run, name) for name in
                           ("fetched", "created", "updated", "unchanged", "flagged", "failed")}
                if run.error:
                    summary["error"] = run.error
                summary["links"] = [{"label": f"Order sync run #{run.pk}",
                                     "url": admin_url("orders.OrderSyncRun", run.pk)}]
                job_finish(job_id=job_id, result=summary,
                           status="failed" if run.status == OrderSyncRun.Status.FAILED else None)
    except JobAlreadyFinished:
        return None
    return {"run": run.pk, "status": run.status}


@shared_task(name="orders.push_fulfilment", bind=True, ignore_result=True, max_retries=PUSH_MAX_RETRIES,
             soft_time_limit=120, time_limit=150)
def push_fulfilment(self, order_id: int):
    from orders.services import PushRetryable, order_push_fulfilment

    try:
        order_push_fulfilment(order_id=order_id)
    except PushRetryable as exc:
        # The partner write is idempotent by order, so an unknown outcome may be resent too.
        # Out of retries, the beat sweeper picks the order up again later.
        if self.request.retries >= PUSH_MAX_RETRIES:
            return
        delay = exc.error.retry_after or backoff_delay(self.request.retries + 1, base=5, cap=300)
        raise self.retry(countdown=delay) from exc


@shared_task(name="orders.push_sweep", ignore_result=True, soft_time_limit=60, time_limit=90)
def push_sweep():
    from orders.services import orders_push_sweep

    return orders_push_sweep()


@shared_task(name="orders.provision_collect", ignore_result=True, soft_time_limit=120, time_limit=150)
def provision_collect():
    """Attach serials minted in the background to their order items."""
    from orders.models import Order
    from orders.services import order_provision_collect

    attached = 0
    for order in Order.objects.filter(status=Order.Status.PROVISIONING)[:500]:
        attached += order_provision_collect(order=order)
    return attached
