"""List filters that draw themselves without reading the big table they filter, and still filter
right: choices from a small table, a text box for accounts and reasons, a date range in place
of date_hierarchy. (test_scale.py checks every list for scans; this checks what staff see.)"""

import warnings
from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from devices.models import Device, NavixyModel, Termination, Tracker
from ingestion.models import DeviceFeed, DeviceRecord
from orders.models import Account, Order

pytestmark = pytest.mark.django_db

ORDERS = reverse("admin:orders_order_changelist")


def _order(account, *, reseller="", days_ago=0, when=None, **kw):
    return Order.objects.create(account=account, reseller_name=reseller,
                                order_date=when or timezone.now() - timedelta(days=days_ago), **kw)


def _shown(response) -> set[int]:
    assert response.status_code == 200
    return {obj.pk for obj in response.context["cl"].result_list}


@pytest.fixture
def accounts():
    return (Account.objects.create(account_id="ACME01", reseller="Northwind"),
            Account.objects.create(account_id="FLEETCO", reseller="Southwind"))


def test_reseller_choices_come_from_the_accounts_not_the_orders(superuser, client_for, accounts):
    acme, fleet = accounts
    north = _order(acme, reseller="Northwind")
    _order(fleet, reseller="Southwind")
    client = client_for(superuser)
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(ORDERS)
    reseller_spec = next(s for s in response.context["cl"].filter_specs if getattr(s, "parameter_name", "") == "reseller")
    assert [label for _, label in reseller_spec.lookup_choices] == ["Northwind", "Southwind"]
    distinct = [q["sql"] for q in ctx.captured_queries if "DISTINCT" in q["sql"].upper()]
    assert distinct and all('"orders_order"' not in sql for sql in distinct)
    assert _shown(client.get(ORDERS, {"reseller": "Northwind"})) == {north.pk}


def test_account_is_a_text_box_that_keeps_the_other_filters(superuser, client_for, accounts):
    acme, fleet = accounts
    new = _order(acme, status=Order.Status.NEW)
    _order(acme, status=Order.Status.FULFILLED)
    _order(fleet, status=Order.Status.NEW)
    client = client_for(superuser)
    assert _shown(client.get(ORDERS, {"account": "ACME01", "status__exact": "new"})) == {new.pk}
    assert _shown(client.get(ORDERS, {"account": "  ACME01 "})) == set(Order.objects.filter(account=acme)
                                                                       .values_list("pk", flat=True))
    assert len(_shown(client.get(ORDERS, {"account": ""}))) == 3  # an empty box filters nothing
    html = client.get(ORDERS, {"status__exact": "new", "q": "PO"}).content.decode()
    # The box's form carries the list's other parameters along.
    assert 'name="account"' in html
    assert '<input type="hidden" name="status__exact" value="new">' in html
    assert '<input type="hidden" name="q" value="PO">' in html


def test_order_date_range_replaces_the_date_hierarchy(superuser, client_for, accounts):
    acme, _ = accounts
    tz = timezone.get_current_timezone()
    jan_first = _order(acme, when=datetime(2026, 1, 1, 0, 30, tzinfo=tz))
    jan_second = _order(acme, when=datetime(2026, 1, 2, 23, 0, tzinfo=tz))
    _order(acme, when=datetime(2025, 12, 31, 23, 59, tzinfo=tz))
    client = client_for(superuser)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a bare date must not reach the field as a naive date-time
        day = client.get(ORDERS, {"order_date__gte": "2026-01-01", "order_date__lt": "2026-01-02"})
        assert _shown(day) == {jan_first.pk}
        # An empty box is no bound (the form always sends both).
        assert _shown(client.get(ORDERS, {"order_date__gte": "2026-01-01", "order_date__lt": ""})) == {
            jan_first.pk, jan_second.pk}
    html = day.content.decode()
    assert 'value="2026-01-01"' in html and 'value="2026-01-02"' in html
    for preset in ("Today", "Yesterday", "Past 7 days", "Past 30 days", "This month", "Last month", "This year",
                   "Last year"):
        assert f">{preset}</a>" in html
    assert response_has_no_date_hierarchy(html)
    # A value no date can be shows the list's "invalid filter" notice, not an error page.
    for bad in ("2026-13-45", "0001-01-01", "not a date", "2026-01-01T00:00:00+20:11", "0207-06-21T16:07:53"):
        response = client.get(ORDERS, {"order_date__gte": bad})
        assert response.status_code == 302 and "e=1" in response["Location"], bad


def response_has_no_date_hierarchy(html: str) -> bool:
    return 'class="xfull"' not in html and "date-hierarchy" not in html


def test_facet_counts_are_never_computed(superuser, client_for, accounts):
    _order(accounts[0])
    client = client_for(superuser)
    client.get(ORDERS)
    with CaptureQueriesContext(connection) as plain:
        client.get(ORDERS)
    with CaptureQueriesContext(connection) as facets:
        client.get(ORDERS, {"_facets": "1"})
    assert len(facets) == len(plain)


def test_termination_reason_and_account_are_typed(superuser, client_for):
    def make(serial, reason, account, status=Termination.Status.APPLIED):
        return Termination.objects.create(serial=serial, source=Termination.Source.DAILY_SHEET, status=status,
                                          reason_name=reason, account=account,
                                          terminated_on=timezone.localdate())

    lost = make("CX1", "Lost", "ERP100")
    make("CX2", "Stolen", "ERP100")
    other = make("CX3", "Lost", "ERP200")
    client = client_for(superuser)
    url = reverse("admin:devices_termination_changelist")
    assert _shown(client.get(url, {"reason": "lost"})) == {lost.pk, other.pk}  # case does not matter
    assert _shown(client.get(url, {"reason": "Lost", "account": "ERP200"})) == {other.pk}
    today = timezone.localdate()
    assert len(_shown(client.get(url, {"terminated_on__gte": today.isoformat(),
                                       "terminated_on__lt": (today + timedelta(days=1)).isoformat()}))) == 3


def _device(n, **kw):
    return Device.objects.create(serial=f"CX{n:010d}", product_id=10032, product_type="CustomDevice", erp_no="E",
                                 **kw)


def _record(device, n, status, record_type="GpsRecord", hold_reason=""):
    now = timezone.now()
    return DeviceRecord.objects.create(device=device, serial=device.serial, record_type=record_type,
                                       recorded_at=now - timedelta(seconds=n), payload="{}", status=status,
                                       hold_reason=hold_reason, fair_key=n, received_at=now, available_at=now)


def test_record_filters_list_fixed_choices(superuser, client_for):
    from ingestion.services.records import RECORD_SCHEMA

    device = _device(1)
    gps = _record(device, 1, DeviceRecord.Status.SENT)
    held = _record(device, 2, DeviceRecord.Status.HELD, record_type="StatusRecord",
                   hold_reason=DeviceRecord.HoldReason.STAFF)
    client = client_for(superuser)
    url = reverse("admin:ingestion_devicerecord_changelist")
    specs = {s.parameter_name: s for s in client.get(url).context["cl"].filter_specs if hasattr(s, "parameter_name")}
    assert [v for v, _ in specs["record_type"].lookup_choices] == sorted(RECORD_SCHEMA)
    assert [v for v, _ in specs["hold_reason"].lookup_choices] == [v for v, _ in DeviceRecord.HoldReason.choices]
    assert _shown(client.get(url, {"record_type": "GpsRecord"})) == {gps.pk}
    assert _shown(client.get(url, {"hold_reason": "staff"})) == {held.pk}


def test_feed_list_counts_open_records_per_device_on_the_page(superuser, client_for):
    busy, idle = _device(1), _device(2)
    DeviceFeed.objects.create(device=busy)
    DeviceFeed.objects.create(device=idle)
    for n in range(3):
        _record(busy, n, DeviceRecord.Status.QUEUED)
    _record(busy, 10, DeviceRecord.Status.HELD, hold_reason=DeviceRecord.HoldReason.STAFF)
    _record(busy, 11, DeviceRecord.Status.SENT)
    response = client_for(superuser).get(reverse("admin:ingestion_devicefeed_changelist"))
    counts = {feed.device_id: (feed.n_queued, feed.n_held) for feed in response.context["cl"].result_list}
    assert counts == {busy.pk: (3, 1), idle.pk: (0, 0)}


def test_tracker_model_choices_are_the_catalogue_models_in_use(superuser, client_for):
    NavixyModel.objects.create(code="telfmb140", name="Teltonika FMB140", id_type="imei")
    NavixyModel.objects.create(code="unused", name="Nobody has one", id_type="imei")
    tracker = Tracker.objects.create(label="Van 1", plugin_id=Tracker.Plugin.choices[0][0], model_code="telfmb140")
    client = client_for(superuser)
    url = reverse("admin:devices_tracker_changelist")
    spec = next(s for s in client.get(url).context["cl"].filter_specs if getattr(s, "parameter_name", "") == "model_code")
    assert [v for v, _ in spec.lookup_choices] == ["telfmb140"]
    assert _shown(client.get(url, {"model_code": "telfmb140"})) == {tracker.pk}
