"""Celery tasks for provisioning: thin, idempotent wrappers over devices.services.provisioning.

Processing twice is harmless: the service writes each call down under a row lock before making
it and never repeats a call it has written down, so a redelivered task (acks_late,
reject_on_worker_lost) only continues where the previous one stopped.
"""

from celery import shared_task


@shared_task(name="devices.provisioning_request_process", acks_late=True)
def provisioning_request_process_task(request_id: int) -> str:
    from devices.services.provisioning import provisioning_request_process

    req = provisioning_request_process(request_id=request_id)
    return req.status if req else "missing"


@shared_task(name="devices.provisioning_reconcile_due", acks_late=True)
def provisioning_reconcile_due_task() -> dict:
    from devices.services.provisioning import provisioning_reconcile_due

    return provisioning_reconcile_due()


@shared_task(name="devices.provisioning_sweep", acks_late=True)
def provisioning_sweep_task() -> int:
    from devices.services.provisioning import provisioning_sweep

    return provisioning_sweep()
