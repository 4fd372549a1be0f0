"""The orders and shipments API: roles, actions calling the services, field-level 4xx, and
query counts pinned for list and detail."""

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from orders.models import Order, OrderItem
from orders.services import order_sync
from tests.orders.conftest import make_iccid, make_imei, raw_items, raw_order

pytestmark = pytest.mark.django_db


@pytest.fixture
def synced(fake_source, catalogue):
    def make(count):
        source = fake_source([raw_order(n) for n in range(1, count + 1)],
                             {n: raw_items(n, 3) for n in range(1, count + 1)})
        order_sync(source=source)
        return Order.objects.order_by("id")
    return make


def _count(client, url):
    client.get(url)  # warm per-process caches (content types, throttle) so only the view is counted
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200, response.content
    return len(ctx.captured_queries), response


def test_list_query_count_does_not_grow_with_orders(synced, api_client_for, viewer):
    client = api_client_for(viewer)
    synced(2)
    small, _ = _count(client, "/api/v1/orders/")
    synced(12)
    large, response = _count(client, "/api/v1/orders/")
    assert len(response.json()["results"]) == 12
    assert small == large == 4  # auth token, roles, orders (+account, shipment), items; no COUNT


def test_detail_query_count_is_pinned(synced, api_client_for, viewer):
    order = synced(1).first()
    queries, response = _count(api_client_for(viewer), f"/api/v1/orders/{order.pk}/")
    body = response.json()
    assert len(body["items"]) == 3 and body["events"][0]["kind"] == "synced"
    assert queries == 5  # auth token, roles, order (+account, shipment), items, events (+actor)


def test_filters_and_search(synced, api_client_for, viewer):
    synced(3)
    item = OrderItem.objects.filter(order__order_header_id=2).first()
    OrderItem.objects.filter(pk=item.pk).update(serial="CX0000000777", imei="490154203237518")
    client = api_client_for(viewer)

    def ids(query):
        return [o["order_header_id"] for o in client.get(f"/api/v1/orders/?{query}").json()["results"]]

    assert ids("search=PO-3") == [3]
    assert ids("search=cx0000000777") == [2]
    assert ids("search=490154203237518") == [2]
    assert ids("search=SR-1") == [1]
    assert sorted(ids("status=new&account=acme01")) == [1, 2, 3]
    assert ids("status=approved") == []
    assert len(ids("reseller=north")) == 3


def test_roles_gate_the_actions(synced, api_client_for, viewer, fulfilment_user, billing_user):
    order = synced(1).first()
    url = f"/api/v1/orders/{order.pk}"
    assert api_client_for(viewer).post(f"{url}/review/").status_code == 403
    assert api_client_for(billing_user).post(f"{url}/review/").status_code == 403
    response = api_client_for(fulfilment_user).post(f"{url}/review/")
    assert response.status_code == 200 and response.json()["status"] == "in_review"
    assert api_client_for(fulfilment_user).post(f"{url}/approve/").json()["status"] == "approved"
    # Provisioning mints billable serials: billing only.
    assert api_client_for(fulfilment_user).post(f"{url}/provision/").status_code == 403


def test_bad_transition_is_a_400_with_a_message(synced, api_client_for, fulfilment_user):
    order = synced(1).first()
    response = api_client_for(fulfilment_user).post(f"/api/v1/orders/{order.pk}/approve/")
    assert response.status_code == 400
    assert "cannot go from New to Approved" in response.json()["detail"]


def test_manual_order_via_api(catalogue, api_client_for, fulfilment_user):
    client = api_client_for(fulfilment_user)
    response = client.post("/api/v1/orders/", {
        "account_id": "FLEETCO", "purchase_order_number": "PO-MAIL-1",
        "items": [{"product_code": "INTEG-VEH-200", "quantity": 2}, {"product_code": "INTEG-HARNESS-9"}],
    }, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["source"] == "manual" and len(body["items"]) == 3 and body["account"] == "FLEETCO"
    bad = client.post("/api/v1/orders/", {"account_id": "FLEETCO", "items": [{"product_code": "X", "quantity": 0}]},
                      format="json")
    assert bad.status_code == 400 and "quantity" in str(bad.json()["errors"]["items"])
    assert Order.objects.count() == 1


def test_assign_and_ship_via_api(provisioned_order, api_client_for, fulfilment_user, viewer):
    client = api_client_for(fulfilment_user)
    url = f"/api/v1/orders/{provisioned_order.pk}"
    first, second = provisioned_order.items.filter(requires_serial=True).order_by("id")
    bad = client.post(f"{url}/assign/", {"item": first.pk, "imei": "490154203237517"}, format="json")
    assert bad.status_code == 400 and "check digit" in bad.json()["errors"]["imei"][0]
    early = client.post(f"{url}/ship/", {"carrier": "ups", "tracking_number": "1Z999AA10123456784"}, format="json")
    assert early.status_code == 400 and f"item {second.pk}" in str(early.json()["errors"]["items"])
    preview = client.post(f"{url}/assignments/", {"preview": True, "text": f"{first.serial},{make_imei(1)},{make_iccid(1)}\n"
                                                  f"{second.serial},{make_imei(2)},{make_iccid(2)}"}, format="json")
    assert preview.json()["ok"] is True and first.refresh_from_db() is None and first.imei == ""
    applied = client.post(f"{url}/assignments/", {"text": f"{first.serial},{make_imei(1)},{make_iccid(1)}\n"
                                                  f"{second.serial},{make_imei(2)},{make_iccid(2)}"}, format="json")
    assert applied.json()["status"] == "ready_to_ship"
    assert api_client_for(viewer).post("/api/v1/shipments/", {"order": provisioned_order.pk}).status_code == 403
    shipped = client.post("/api/v1/shipments/", {"order": provisioned_order.pk, "carrier": "fedex",
                                                 "tracking_number": "794612345678"}, format="json")
    assert shipped.status_code == 201, shipped.content
    assert shipped.json()["tracking_url"].endswith("trknbr=794612345678")
    assert client.get(f"{url}/").json()["push_status"] == "pending"


def test_sync_run_bad_orders_visible_via_api(fake_source, catalogue, api_client_for, fulfilment_user, monkeypatch):
    source = fake_source([raw_order(1), raw_order(2, orderDate="soon")], {1: raw_items(1), 2: raw_items(2)})
    monkeypatch.setattr("portal.clients.shipping_client", lambda: source)
    response = api_client_for(fulfilment_user).post("/api/v1/orders/sync/")
    body = response.json()
    assert (body["status"], body["created"], body["failed"]) == ("partial", 1, 1)
    assert body["errors"][0]["orderHeaderId"] == 2 and body["errors"][0]["field"] == "orderDate"


@pytest.mark.parametrize("zone", ["UTC", "America/Toronto"])
def test_order_detail_output_is_drfs_own(synced, api_client_for, viewer, fulfilment_user, monkeypatch, zone):
    """Order serializers render through FastOutputMixin (nested items, events and shipment
    included); the body is byte-for-byte what DRF's own rendering gives."""
    from datetime import date

    from rest_framework import serializers

    from orders.models import Shipment
    from portal.api.serializers import FastOutputMixin

    order = synced(2).first()
    api_client_for(fulfilment_user).post(f"/api/v1/orders/{order.pk}/review/")
    Shipment.objects.create(order=order, carrier="UPS", tracking_number="1Z999", ship_date=date(2026, 11, 20))
    item = order.items.first()
    OrderItem.objects.filter(pk=item.pk).update(serial="CX0000000777")
    client = api_client_for(viewer)
    with timezone.override(zone):
        fast_detail = client.get(f"/api/v1/orders/{order.pk}/").content
        fast_list = client.get("/api/v1/orders/").content
        monkeypatch.setattr(FastOutputMixin, "to_representation", serializers.Serializer.to_representation)
        assert client.get(f"/api/v1/orders/{order.pk}/").content == fast_detail
        assert client.get("/api/v1/orders/").content == fast_list
    body = json.loads(fast_detail)
    assert body["shipment"]["tracking_number"] == "1Z999" and any(e["actor"] for e in body["events"])
    assert any(i["serial"] == "CX0000000777" for i in body["items"])
