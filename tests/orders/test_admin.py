"""The orders admin: list and order page query counts, the order-page actions, assignment
preview, shipping, packing slip, manual entry — all through the same services as the API."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from orders.models import Order
from orders.services import order_sync
from tests.orders.conftest import make_iccid, make_imei, raw_items, raw_order

pytestmark = pytest.mark.django_db


@pytest.fixture
def synced(fake_source, catalogue):
    def make(first, count):
        ids = range(first, first + count)
        order_sync(source=fake_source([raw_order(n) for n in ids], {n: raw_items(n, 3) for n in ids}))
    return make


@pytest.fixture
def admin_client_for(client):
    def make(user):
        client.force_login(user)
        return client
    return make


def _get(client, url):
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200
    return len(ctx.captured_queries), response


def test_changelist_query_count_is_constant(synced, admin_client_for, fulfilment_user):
    client = admin_client_for(fulfilment_user)
    url = reverse("admin:orders_order_changelist")
    synced(1, 2)
    client.get(url)  # warm per-process caches (content types, site)
    small, _ = _get(client, url)
    synced(100, 20)
    large, response = _get(client, url)
    assert small == large
    # session, user, role, 2 × permissions, resellers (from the accounts), count, page; on
    # PostgreSQL one more: the planner's row estimate that replaces a full COUNT(*) of the
    # unfiltered list. No filter reads the orders to draw itself.
    assert large == (9 if connection.vendor == "postgresql" else 8)
    assert b"PO-101" in response.content


def test_changelist_search_by_serial_and_filters(synced, admin_client_for, viewer):
    synced(1, 3)
    Order.objects.get(order_header_id=2).items.filter(pk=Order.objects.get(order_header_id=2).items.first().pk) \
        .update(serial="CX0000000888")
    client = admin_client_for(viewer)
    url = reverse("admin:orders_order_changelist")
    response = client.get(url, {"q": "CX0000000888"})
    assert response.context["cl"].result_count == 1
    assert client.get(url, {"status__exact": "new", "reseller": "Northwind"}).context["cl"].result_count == 3


def test_change_page_query_count_is_pinned(synced, admin_client_for, fulfilment_user):
    synced(1, 1)
    order = Order.objects.get()
    client = admin_client_for(fulfilment_user)
    url = reverse("admin:orders_order_change", args=[order.pk])
    client.get(url)  # warm per-process caches (content types, site)
    first, response = _get(client, url)
    assert b"Start review" in response.content and b"Provision serials" not in response.content
    order.items.first().__class__.objects.bulk_create(
        [order.items.first().__class__(order=order, product_code="INTEG-HARNESS-9", requires_serial=False)
         for _ in range(10)])
    again, _ = _get(client, url)
    assert first == again
    assert first == 10


def test_order_page_actions_follow_roles(synced, admin_client_for, fulfilment_user, billing_user):
    synced(1, 1)
    order = Order.objects.get()
    client = admin_client_for(fulfilment_user)
    do = lambda name: client.post(reverse("admin:orders_order_do", args=[order.pk, name]), follow=True)
    do("review")
    do("approve")
    assert Order.objects.get().status == Order.Status.APPROVED
    response = do("provision")
    assert "Your role does not allow this action." in response.content.decode()
    response = do("approve")
    assert Order.objects.get().status == Order.Status.APPROVED
    response = do("resume")
    assert "cannot go from Approved to In review" in response.content.decode()


def test_assign_view_preview_then_apply(provisioned_order, admin_client_for, fulfilment_user):
    client = admin_client_for(fulfilment_user)
    url = reverse("admin:orders_order_assign", args=[provisioned_order.pk])
    first, second = provisioned_order.items.filter(requires_serial=True).order_by("id")
    bad = client.post(url, {"text": f"{first.serial},490154203237517,{make_iccid(1)}", "preview": "1"})
    assert "wrong check digit" in bad.content.decode() and b'name="apply"' not in bad.content
    text = f"{first.serial},{make_imei(1)},{make_iccid(1)}\n{second.serial},{make_imei(2)},{make_iccid(2)}"
    preview = client.post(url, {"text": text, "preview": "1"})
    assert b'name="apply"' in preview.content
    assert Order.objects.get(pk=provisioned_order.pk).status == Order.Status.PROVISIONING
    client.post(url, {"text": text, "apply": "1"})
    assert Order.objects.get(pk=provisioned_order.pk).status == Order.Status.READY_TO_SHIP


def test_ship_view_refuses_then_ships(provisioned_order, admin_client_for, fulfilment_user):
    client = admin_client_for(fulfilment_user)
    url = reverse("admin:orders_order_ship", args=[provisioned_order.pk])
    data = {"carrier": "ups", "tracking_number": "1Z999AA10123456784", "ship_date": "2026-01-05"}
    response = client.post(url, data, follow=True)
    assert "lacks imei, sim" in response.content.decode()
    for n, item in enumerate(provisioned_order.items.filter(requires_serial=True).order_by("id"), start=1):
        from orders.services import order_item_assign
        order_item_assign(item=item, imei=make_imei(n), sim=make_iccid(n))
    client.post(url, data)
    assert Order.objects.get(pk=provisioned_order.pk).status == Order.Status.SHIPPED


def test_packing_slip(provisioned_order, admin_client_for, viewer):
    response = admin_client_for(viewer).get(reverse("admin:orders_order_packing_slip", args=[provisioned_order.pk]))
    body = response.content.decode()
    assert "Packing slip" in body and "PO-900001" in body
    for item in provisioned_order.items.exclude(serial=""):
        assert item.serial in body


def test_manual_entry_view(catalogue, admin_client_for, fulfilment_user, viewer):
    url = reverse("admin:orders_order_manual")
    data = {"account_id": "ACME01", "purchase_order_number": "PO-EMAIL-7", "items": "INTEG-TRK-100, 2\nINTEG-HARNESS-9"}
    assert admin_client_for(viewer).post(url, data).status_code == 403
    assert not Order.objects.exists()
    client = admin_client_for(fulfilment_user)
    bad = client.post(url, {**data, "items": "INTEG-TRK-100, two"})
    assert "quantity" in bad.content.decode() and not Order.objects.exists()
    client.post(url, data)
    order = Order.objects.get()
    assert order.source == "manual" and order.items.count() == 3 and order.purchase_order_number == "PO-EMAIL-7"


def test_assign_one_item_from_its_row(provisioned_order, admin_client_for, fulfilment_user):
    client = admin_client_for(fulfilment_user)
    url = reverse("admin:orders_order_assign", args=[provisioned_order.pk])
    first = provisioned_order.items.filter(requires_serial=True).order_by("id").first()
    bad = client.post(url, {"single": "1", "item": first.pk, "imei": "490154203237517", "sim": make_iccid(1)}, follow=True)
    assert "wrong check digit" in bad.content.decode()
    client.post(url, {"single": "1", "item": first.pk, "imei": make_imei(1), "sim": make_iccid(1)})
    first.refresh_from_db()
    assert (first.imei, first.sim) == (make_imei(1), make_iccid(1))


def test_sync_now_runs_as_a_job(catalogue, admin_client_for, fulfilment_user, viewer, monkeypatch, fake_source,
                                eager_tasks, django_capture_on_commit_callbacks):
    from orders.models import OrderSyncRun
    from portal.models import Job

    source = fake_source([raw_order(1), raw_order(2, orderDate=None), raw_order(3)], {1: raw_items(1), 3: raw_items(3)})
    monkeypatch.setattr("portal.clients.shipping_client", lambda: source)
    url = reverse("admin:orders_order_sync")
    assert admin_client_for(viewer).post(url).status_code == 403
    assert not Job.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client_for(fulfilment_user).post(url)
    job = Job.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("admin:portal_job_change", args=[job.pk])
    assert (job.kind, job.actor, job.total, job.done, job.failed, job.status) == (
        "order_sync", fulfilment_user, 3, 2, 1, Job.Status.PARTIAL)
    run = OrderSyncRun.objects.get()
    assert run.triggered_by == fulfilment_user and Order.objects.count() == 2
    # The bad order links to the run that recorded it (the portal has no such order).
    failure = job.failures.get()
    assert failure.label == "order 2" and "orderDate" in failure.message
    assert failure.url == reverse("admin:orders_ordersyncrun_change", args=[run.pk])
    assert job.result["created"] == 2
    assert job.result_links == [{"label": f"Order sync run #{run.pk}",
                                 "url": reverse("admin:orders_ordersyncrun_change", args=[run.pk])}]
    page = admin_client_for(fulfilment_user).get(response["Location"]).content.decode()
    assert "Finished with failures" in page and f"Order sync run #{run.pk}" in page

    # The list action does the same.
    changelist = reverse("admin:orders_order_changelist")
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client_for(fulfilment_user).post(
            changelist, {"action": "sync_now", "_selected_action": [Order.objects.first().pk]})
    second = Job.objects.latest("pk")
    assert response["Location"].endswith(f"/portal/job/{second.pk}/change/")
    assert (second.total, second.done, second.failed) == (3, 2, 1)


def test_sync_job_failure_is_recorded(catalogue, monkeypatch, fulfilment_user):
    """A vendor outage fails the run and the job with the error; a crash fails the job too."""
    from integrations.base import NotExecutedError
    from orders.tasks import sync_orders
    from portal.jobs import job_start
    from portal.models import Job

    class Down:
        def iter_orders(self, **kw):
            raise NotExecutedError("connection refused")

    monkeypatch.setattr("portal.clients.shipping_client", lambda: Down())
    job = job_start(kind="order_sync", total=0, actor=fulfilment_user)
    sync_orders(job_id=job.pk, actor_id=fulfilment_user.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED and "connection refused" in job.result["error"]
    # A redelivered message for the finished job does nothing.
    assert sync_orders(job_id=job.pk) is None

    class Broken:
        def iter_orders(self, **kw):
            raise RuntimeError("disk on fire")

    monkeypatch.setattr("portal.clients.shipping_client", lambda: Broken())
    job = job_start(kind="order_sync", total=0)
    with pytest.raises(RuntimeError):
        sync_orders(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED and job.result["error"] == "RuntimeError: disk on fire"


def test_provision_asks_for_confirmation_with_the_serial_count(synced, admin_client_for, billing_user, monkeypatch):
    from orders.admin import ORDER_PAGE_ACTIONS

    synced(1, 1)
    order = Order.objects.get()
    Order.objects.filter(pk=order.pk).update(status=Order.Status.APPROVED)
    calls = []
    monkeypatch.setattr("orders.services.order_provision", lambda order, actor: calls.append(order.pk))
    label, _, cap = ORDER_PAGE_ACTIONS["provision"]
    monkeypatch.setitem(ORDER_PAGE_ACTIONS, "provision", (label, lambda order, actor: calls.append(order.pk), cap))
    client = admin_client_for(billing_user)

    # The list action: the page first, naming the orders and the serials it would mint.
    changelist = reverse("admin:orders_order_changelist")
    data = {"action": "provision", "_selected_action": [order.pk], "index": "0"}
    page = client.post(changelist, data)
    assert page.status_code == 200 and calls == []
    html = page.content.decode()
    assert "This will mint 3 billable Geotab serials on MyAdmin" in html
    assert 'id="portal-confirm-count">1<' in html and str(order) in html
    assert 'name="portal_confirm" value="yes"' in html and f'name="_selected_action" value="{order.pk}"' in html
    client.post(changelist, {**data, "portal_confirm": "yes"})
    assert calls == [order.pk]

    # The order page's button: the same question, then the work.
    do = reverse("admin:orders_order_do", args=[order.pk, "provision"])
    page = client.post(do)
    assert page.status_code == 200 and "mint 3 billable Geotab serials" in page.content.decode() and calls == [order.pk]
    assert client.post(do, {"portal_confirm": "yes"}).status_code == 302
    assert calls == [order.pk, order.pk]
