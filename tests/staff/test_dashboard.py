import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from portal import dashboard
from portal.jobs import job_start
from portal.models import Heartbeat


def _figure(html: str, name: str) -> str:
    match = re.search(rf'data-figure="{name}"[^>]*>([^<]*)<', html)
    assert match, f"figure {name} not on the page"
    return match.group(1).strip()


def _make_order(status="new", days_old=0):
    from orders.models import Account, Order

    account, _ = Account.objects.get_or_create(account_id="ERP-1")
    return Order.objects.create(account=account, order_date=timezone.now() - timedelta(days=days_old), status=status)


@pytest.mark.django_db
@override_settings(DASHBOARD_CACHE_SECONDS=0)
def test_dashboard_numbers_move(viewer, client_for, make_call):
    client = client_for(viewer)
    html = client.get("/admin/").content.decode()
    assert 'id="portal-dashboard"' in html
    assert _figure(html, "orders-waiting") == "0"
    assert "No heartbeat yet" in html

    _make_order("new", days_old=8)
    _make_order("approved")
    _make_order("fulfilled")
    from devices.models import ProvisioningRequest

    ProvisioningRequest.objects.create(product_id=10032, erp_no="ERP-1", status="unknown")
    make_call(system="myadmin", outcome="unknown")
    make_call(system="myadmin", outcome="ok")
    Heartbeat.objects.create(name="beat", beat_at=timezone.now(), worker="w1")
    job = job_start(kind="provisioning", total=5)

    html = client.get("/admin/").content.decode()
    assert _figure(html, "orders-waiting") == "2"
    assert _figure(html, "provisioning-unknown") == "1"
    assert _figure(html, "liveness") == "Beat and workers alive"
    assert "1 errors / 2 calls" in html
    assert f"provisioning #{job.pk}" in html
    # Each number links to the filtered list behind it.
    assert "/admin/portal/vendorcall/?system=myadmin" in html
    assert "<svg" in html and "cdn" not in html.lower()


@pytest.mark.django_db
def test_panels_are_cached_between_views(viewer, client_for):
    client = client_for(viewer)
    first = _figure(client.get("/admin/").content.decode(), "orders-waiting")
    _make_order("new")
    assert _figure(client.get("/admin/").content.decode(), "orders-waiting") == first


@pytest.mark.django_db
@override_settings(DASHBOARD_CACHE_SECONDS=0)
def test_a_missing_source_degrades_to_not_available(viewer, client_for, monkeypatch):
    def missing(now):
        return dashboard._model("nosuch.Model")

    monkeypatch.setitem(dashboard.PANELS, "orders", ("Orders waiting on us", missing, True))
    html = client_for(viewer).get("/admin/").content.decode()
    assert "Not available: nosuch.Model is not installed." in html
    assert 'id="panel-vendor-calls"' in html  # the other panels still render


@pytest.mark.django_db
@override_settings(DASHBOARD_CACHE_SECONDS=0)
def test_dashboard_query_count_does_not_grow_with_data(superuser, client_for, make_call):
    client = client_for(superuser)
    client.get("/admin/")
    with CaptureQueriesContext(connection) as small:
        client.get("/admin/")
    for i in range(30):
        make_call(system=["myadmin", "dig", "navixy"][i % 3], outcome=["ok", "unknown"][i % 2])
        _make_order("new", days_old=i)
    for _ in range(5):
        job_start(kind="replay", total=3)
    with CaptureQueriesContext(connection) as big:
        client.get("/admin/")
    assert len(big) == len(small)
    assert not [q for q in big.captured_queries if "DISTINCT" in q["sql"].upper()]


@pytest.mark.django_db
def test_user_without_a_role_sees_no_dashboard(make_user, client_for):
    html = client_for(make_user(None)).get("/admin/").content.decode()
    assert 'id="portal-dashboard"' not in html


@pytest.mark.django_db
@override_settings(DASHBOARD_CACHE_SECONDS=60)
def test_refresh_task_fills_the_panel_cache(viewer, client_for):
    from django.core.cache import cache

    from portal.tasks import dashboard_refresh

    _make_order("new")
    dashboard_refresh()
    cached = cache.get(dashboard.CACHE_PREFIX + "orders")
    assert cached["ok"] and cached["data"]["waiting"] == 1
    _make_order("new")
    # Page views read the refreshed cache until the next refresh.
    assert _figure(client_for(viewer).get("/admin/").content.decode(), "orders-waiting") == "1"
    dashboard_refresh()
    assert _figure(client_for(viewer).get("/admin/").content.decode(), "orders-waiting") == "2"


def test_chart_labels_are_cut_before_escaping():
    """A long label is shortened first and escaped after, so an entity is never cut in half."""
    label = "ABCDEFGHIJKLMNOPQRST&x and more"  # escaping first would cut "&amp;" to "&a"
    svg = str(dashboard.svg_bars([(label, 3, "", False)]))
    text = re.search(r'<text x="0"[^>]*>([^<]*)</text>', svg).group(1)
    assert text == "ABCDEFGHIJKLMNOPQRST&amp;x"
