"""Intake: idempotent upsert, flags instead of deletes, bad orders recorded per field."""

import pytest

from orders.models import Account, Order, OrderEvent, OrderItem, OrderSyncRun
from orders.services import order_create_manual, order_sync
from tests.orders.conftest import raw_items, raw_order

pytestmark = pytest.mark.django_db


def _snapshot():
    return (
        list(Order.objects.order_by("id").values()),
        list(OrderItem.objects.order_by("id").values()),
        OrderEvent.objects.count(),
    )


def test_sync_creates_orders_items_and_accounts(fake_source, catalogue):
    source = fake_source([raw_order(1), raw_order(2, account="FLEETCO")], {1: raw_items(1, 3), 2: raw_items(2, 1)})
    run = order_sync(source=source)
    assert (run.status, run.fetched, run.created, run.updated, run.failed) == ("succeeded", 2, 2, 0, 0)
    order = Order.objects.get(order_header_id=1)
    assert order.account.account_id == "ACME01"
    assert order.ship_city == "Oakland" and order.purchase_order_number == "PO-1" and order.validated
    assert order.status == Order.Status.NEW and order.source == Order.Source.API
    assert order.items.count() == 3
    item = order.items.first()
    assert item.product == catalogue["INTEG-TRK-100"] and item.requires_imei and item.requires_sim
    assert set(Account.objects.values_list("account_id", flat=True)) == {"ACME01", "FLEETCO"}


def test_resync_changes_nothing(fake_source, catalogue):
    source = fake_source([raw_order(n) for n in range(1, 6)], {n: raw_items(n) for n in range(1, 6)})
    order_sync(source=source)
    before = _snapshot()
    run = order_sync(source=source)
    assert (run.created, run.updated, run.unchanged, run.flagged, run.failed) == (0, 0, 5, 0, 0)
    assert _snapshot() == before
    assert OrderSyncRun.objects.count() == 2


def test_changed_header_and_items_are_updated_before_approval(fake_source, catalogue):
    source = fake_source([raw_order(1)], {1: raw_items(1, 2)})
    order_sync(source=source)
    source.orders = [raw_order(1, comment="Leave at reception")]
    source.items = {1: raw_items(1, 3)}
    run = order_sync(source=source)
    assert run.updated == 1
    order = Order.objects.get(order_header_id=1)
    assert order.comment == "Leave at reception" and order.items.count() == 3


def test_items_changed_after_approval_flag_the_order_instead(fake_source, catalogue):
    source = fake_source([raw_order(1)], {1: raw_items(1, 2)})
    order_sync(source=source)
    Order.objects.update(status=Order.Status.APPROVED)
    source.orders = [raw_order(1, comment="changed")]
    source.items = {1: raw_items(1, 3)}
    run = order_sync(source=source)
    order = Order.objects.get(order_header_id=1)
    assert run.flagged == 1 and order.flagged and "after approval" in order.flag_reason
    assert order.items.count() == 2


def test_cancelled_and_vanished_orders_are_flagged_not_deleted(fake_source, catalogue):
    source = fake_source([raw_order(1), raw_order(2)], {1: raw_items(1), 2: raw_items(2)})
    order_sync(source=source)
    source.orders = [raw_order(1, status="Cancelled")]
    run = order_sync(source=source)
    assert run.flagged == 2
    one, two = Order.objects.get(order_header_id=1), Order.objects.get(order_header_id=2)
    assert one.flagged and "Cancelled" in one.flag_reason
    assert two.flagged and "No longer listed" in two.flag_reason
    assert Order.objects.count() == 2 and OrderItem.objects.count() == 4
    # A third run changes nothing more.
    again = order_sync(source=source)
    assert (again.flagged, again.updated) == (0, 0)
    # The vanished order comes back: the flag is lifted.
    source.orders = [raw_order(1, status="Cancelled"), raw_order(2)]
    order_sync(source=source)
    assert not Order.objects.get(order_header_id=2).flagged


@pytest.mark.parametrize(
    "bad, field",
    [
        (raw_order(7, orderDate=None), "orderDate"),
        (raw_order(7, orderDate="yesterday"), "orderDate"),
        (raw_order("7"), "orderHeaderId"),
        (raw_order(7, account=None) | {"account": None}, "account"),
        (raw_order(7) | {"account": {"id": 1}}, "account.accountId"),
        (raw_order(7, validated="yes"), "validated"),
        (raw_order(7, purchaseOrderNumber=12345), "purchaseOrderNumber"),
        (raw_order(7, shippingContact={"name": ["x"]}), "shippingContact.name"),
        (raw_order(7, shipmentStatus=""), "shipmentStatus"),
        ("not an object", "order"),
    ],
)
def test_malformed_header_is_recorded_and_the_rest_goes_on(fake_source, catalogue, bad, field):
    source = fake_source([raw_order(1), bad, raw_order(2)], {1: raw_items(1), 2: raw_items(2), 7: raw_items(7)})
    run = order_sync(source=source)
    assert run.status == OrderSyncRun.Status.PARTIAL
    assert (run.created, run.failed) == (2, 1)
    assert run.errors[0]["field"] == field and field.split(".")[0] in run.errors[0]["message"]
    assert not Order.objects.filter(order_header_id=7).exists()


@pytest.mark.parametrize(
    "items, field",
    [
        ([{"id": 1, "productCode": "INTEG-TRK-100", "requiresSerialNumber": "yes"}], "items[0].requiresSerialNumber"),
        ([{"id": "1", "productCode": "INTEG-TRK-100", "requiresSerialNumber": True}], "items[0].id"),
        ([{"id": 1, "requiresSerialNumber": True}], "items[0].productCode"),
        ({"id": 1}, "items"),
        ([{"id": 1, "productCode": "A", "requiresSerialNumber": True},
          {"id": 1, "productCode": "B", "requiresSerialNumber": True}], "items[1].id"),
    ],
)
def test_malformed_items_leave_no_half_order(fake_source, catalogue, items, field):
    source = fake_source([raw_order(1), raw_order(7)], {1: raw_items(1), 7: items})
    run = order_sync(source=source)
    assert (run.created, run.failed) == (1, 1)
    assert run.errors == [{"orderHeaderId": 7, "field": field, "message": run.errors[0]["message"]}]
    assert not Order.objects.filter(order_header_id=7).exists()
    assert OrderItem.objects.count() == 2


def test_manual_order_is_matched_by_a_later_sync(fake_source, catalogue):
    order = order_create_manual(account_id="ACME01", order_header_id=1, purchase_order_number="PO-1",
                                items=[{"product_code": "INTEG-TRK-100", "quantity": 2}])
    assert order.items.count() == 2 and order.source == Order.Source.MANUAL
    assert all(i.requires_serial and i.requires_imei for i in order.items.all())
    run = order_sync(source=fake_source([raw_order(1)], {1: raw_items(1, 2)}))
    assert (run.created, run.updated) == (0, 1)
    assert Order.objects.count() == 1


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"account_id": "", "items": [{"product_code": "X"}]}, "account_id"),
        ({"account_id": "ACME01", "items": []}, "items"),
        ({"account_id": "ACME01", "items": [{"product_code": "X", "quantity": 0}]}, "items[0].quantity"),
        ({"account_id": "ACME01", "items": [{"product_code": "", "quantity": 1}]}, "items[0].product_code"),
        ({"account_id": "ACME01", "order_header_id": "12", "items": [{"product_code": "X"}]}, "order_header_id"),
    ],
)
def test_manual_order_bad_input_names_the_field(catalogue, kwargs, field):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as info:
        order_create_manual(**kwargs)
    assert field in info.value.message_dict
    assert Order.objects.count() == 0


def test_source_failure_fails_the_run_and_changes_nothing(catalogue):
    from integrations.base import NotExecutedError

    class Down:
        def iter_orders(self, **_):
            raise NotExecutedError("connection refused")

    run = order_sync(source=Down())
    assert run.status == OrderSyncRun.Status.FAILED and "connection refused" in run.error
    assert Order.objects.count() == 0
