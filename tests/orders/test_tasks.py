"""Tasks are thin and idempotent; the beat schedule names real tasks; malformed orders served
over HTTP by the simulator are recorded per field while the rest of the run goes on."""

import pytest
from celery.exceptions import Retry

from integrations.base import OutcomeUnknownError
from orders import schedule, tasks
from orders.models import Order, OrderSyncRun
from orders.services import PushRetryable, order_sync, orders_push_sweep


def test_schedule_entries_name_registered_tasks():
    from portal.celery import app

    names = {entry["task"] for entry in schedule.PERIODIC_TASKS}
    assert names == {"orders.sync", "orders.push_sweep", "orders.provision_collect"}
    assert names <= set(app.tasks)


def test_push_task_retries_on_a_retryable_failure(monkeypatch):
    def fail(*, order_id):
        raise PushRetryable(OutcomeUnknownError("read timeout"))

    monkeypatch.setattr("orders.services.order_push_fulfilment", fail)
    monkeypatch.setattr(tasks.push_fulfilment, "retry", lambda countdown: Retry(when=countdown))
    with pytest.raises(Retry):
        tasks.push_fulfilment.run(1)


@pytest.mark.django_db
def test_sweeper_requeues_stale_pushes(provisioned_order, monkeypatch, django_capture_on_commit_callbacks):
    sent = []
    monkeypatch.setattr(tasks.push_fulfilment, "delay_on_commit", lambda order_id: sent.append(order_id))
    Order.objects.filter(pk=provisioned_order.pk).update(status=Order.Status.SHIPPED, push_status="unknown")
    from datetime import timedelta

    assert orders_push_sweep(older_than=timedelta(minutes=5)) == 0  # just updated: not stale yet
    assert orders_push_sweep(older_than=timedelta(seconds=-1)) == 1
    assert sent == [provisioned_order.pk]


@pytest.mark.django_db(transaction=True)
def test_malformed_orders_from_the_api_over_http(shipping, catalogue):
    from sandbox.shipping.models import ShippingOrder
    from sandbox.shipping.seed import ensure_seeded

    ensure_seeded()
    ShippingOrder.objects.filter(order_header_id=700102).update(
        raw_override={"orderHeaderId": 700102, "account": {"accountId": "FLEETCO"}, "orderDate": 20260101,
                      "shipmentStatus": "PendingFulfillment"})
    ShippingOrder.objects.filter(order_header_id=700104).update(
        raw_override={"orderHeaderId": 700104, "orderDate": "2026-01-01T00:00:00Z", "shipmentStatus": "x"})
    run = order_sync(source=shipping)
    assert (run.status, run.created, run.failed) == (OrderSyncRun.Status.PARTIAL, 2, 2)
    assert {(e["orderHeaderId"], e["field"]) for e in run.errors} == {(700102, "orderDate"), (700104, "account")}
    assert set(Order.objects.values_list("order_header_id", flat=True)) == {700101, 700103}
