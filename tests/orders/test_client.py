"""The partner shipping client against the simulator over real HTTP."""

from datetime import date

import pytest

from integrations.base import (
    NotExecutedError,
    OutcomeUnknownError,
    RateLimitedError,
    RejectedError,
)
from integrations.shipping import FulfilmentItem
from portal.models import VendorCall

pytestmark = pytest.mark.django_db(transaction=True)


def test_lists_seeded_orders_with_the_3p_shape(shipping):
    orders = shipping.list_orders()
    assert [o["orderHeaderId"] for o in orders] == [700101, 700102, 700103, 700104]
    first = orders[0]
    assert first["account"] == {"accountId": "ACME01", "id": 4101}
    assert first["shipmentStatus"] == "PendingFulfillment"
    assert set(first["shippingContact"]) == {"name", "email", "street1", "street2", "city", "state", "zipCode",
                                             "telephone1", "telephone2"}
    items = shipping.list_items(700101)
    assert [i["productCode"] for i in items] == ["INTEG-TRK-100", "INTEG-TRK-100", "INTEG-HARNESS-9"]
    assert items[0]["requiresImei"] and items[0]["requiresSimNumber"] and not items[2]["requiresSerialNumber"]
    assert items[0]["shippingHeaderPartnerId"] == 700101


def test_paging_and_filters(shipping):
    assert [o["orderHeaderId"] for o in shipping.iter_orders(per_page=3)] == [700101, 700102, 700103, 700104]
    assert [o["orderHeaderId"] for o in shipping.list_orders(purchase_order_number="FC-PO-00917")] == [700102]
    assert shipping.list_orders(status="Cancelled") == []
    assert len(shipping.list_orders(from_date=date(2000, 1, 1), page=2, per_page=2)) == 2


def test_expired_session_is_renewed_once(shipping, fault):
    shipping.list_orders()
    fault("session_expiry", "ListOrders", remaining=1)
    assert len(shipping.list_orders()) == 4
    calls = list(VendorCall.objects.filter(system="myadmin_shipping", method="ListOrders").order_by("id")
                 .values_list("http_status", flat=True))
    assert calls == [200, 401, 200]


@pytest.mark.parametrize("mode, error", [
    ("rate_limit", RateLimitedError), ("outage", NotExecutedError), ("server_error", OutcomeUnknownError),
])
def test_faults_are_classified(shipping, fault, mode, error):
    fault(mode, "ListOrders", remaining=1)
    with pytest.raises(error):
        shipping.list_orders()
    assert len(shipping.list_orders()) == 4


def test_fulfilment_write_rejects_missing_assignments(shipping):
    items = shipping.list_items(700103)
    with pytest.raises(RejectedError) as info:
        shipping.submit_fulfilment(700103, carrier="UPS", tracking_number="1Z999", ship_date=date.today(),
                                   items=[FulfilmentItem(item_id=i["id"], serial_number="") for i in items])
    assert "serialNumber" in str(info.value.details)


def test_fulfilment_write_rejects_serials_of_another_account(shipping):
    items = shipping.list_items(700103)
    with pytest.raises(RejectedError) as info:
        shipping.submit_fulfilment(
            700103, carrier="UPS", tracking_number="1Z999", ship_date=date.today(),
            items=[FulfilmentItem(item_id=i["id"], serial_number="CX0000000404", imei="490154203237518",
                                  sim_number="8944500102198304826") for i in items])
    assert "not a device on account INTEG01" in str(info.value.details)
