import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from portal.admin_kit import COUNT_CAP, CappedCountPaginator
from portal.models import VendorCall


def _calls(n, **kw):
    now = timezone.now()
    VendorCall.objects.bulk_create(
        VendorCall(system=kw.get("system", "myadmin"), method="M", outcome=kw.get("outcome", "ok"), started_at=now)
        for _ in range(n)
    )


@pytest.mark.django_db
def test_filtered_count_is_capped(monkeypatch):
    monkeypatch.setattr("portal.admin_kit.COUNT_CAP", 5)
    _calls(12, outcome="unknown")
    paginator = CappedCountPaginator(VendorCall.objects.filter(outcome="unknown"), 2)
    assert paginator.count == 6
    assert CappedCountPaginator(VendorCall.objects.filter(outcome="ok"), 2).count == 0
    assert COUNT_CAP == 10_000


@pytest.mark.django_db
@pytest.mark.parametrize("url_name,params", [
    ("admin:portal_vendorcall_changelist", {}),
    ("admin:portal_vendorcall_changelist", {"system": "myadmin", "outcome__exact": "ok"}),
    ("admin:portal_job_changelist", {}),
    ("admin:portal_auditentry_changelist", {}),
])
def test_changelist_queries_do_not_grow_and_never_scan_distinct(superuser, client_for, url_name, params):
    client = client_for(superuser)
    url = reverse(url_name)
    _calls(3)
    client.get(url, params)
    with CaptureQueriesContext(connection) as small:
        assert client.get(url, params).status_code == 200
    _calls(150)
    from portal.jobs import job_start

    for _ in range(20):
        job_start(kind="replay", total=1, actor=superuser)
    with CaptureQueriesContext(connection) as big:
        assert client.get(url, params).status_code == 200
    assert len(big) == len(small)
    assert not [q for q in big.captured_queries if "DISTINCT" in q["sql"].upper()]


# --- every list of the portal's apps: no scan of the listed table to draw the page ------------

PORTAL_APPS = ("portal", "devices", "orders", "ingestion")
# Tables that grow without bound (devices, orders, the ledger, device data, the audit trail...):
# their lists must never count every row either.
GROWING = {
    "devices.Device", "devices.ProvisioningRequest", "devices.Termination", "devices.Tracker",
    "orders.Order", "orders.Shipment", "orders.OrderSyncRun", "ingestion.DeviceRecord", "ingestion.DeviceFeed",
    "ingestion.TerminationImportRun", "ingestion.TerminationImportRow", "portal.VendorCall", "portal.AuditEntry",
    "portal.Job",
}
# Catalogues copied from a vendor (a few hundred rows): a DISTINCT over one costs nothing.
CATALOGUES = {"devices.NavixyModel"}


def _portal_lists():
    from django.contrib import admin

    return sorted(m._meta.label for m in admin.site._registry if m._meta.app_label in PORTAL_APPS)


def _scans(captured, table: str) -> list[str]:
    """Queries that read the whole listed table to draw the page: SELECT DISTINCT (a plain
    free-text list_filter, RelatedOnlyFieldListFilter, date_hierarchy's dates), GROUP BY, or
    MIN/MAX (date_hierarchy's range)."""
    found = []
    for query in captured:
        sql = query["sql"]
        upper = sql.upper()
        if f'"{table}"' in sql and any(k in upper for k in ("DISTINCT", "GROUP BY", "MIN(", "MAX(")):
            found.append(sql)
    return found


def test_growing_lists_are_all_registered():
    assert GROWING <= set(_portal_lists())


@pytest.mark.django_db
@pytest.mark.parametrize("label", _portal_lists())
def test_no_list_scans_its_table_to_draw_filters_or_count(superuser, client_for, label):
    from django.apps import apps

    model = apps.get_model(label)
    client = client_for(superuser)
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    client.get(url)  # warm per-process caches
    # Django runs these scans whether the table is empty or not, so an empty table shows them.
    for params in ({}, {"_facets": "1"}):
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(url, params).status_code == 200
        if label not in CATALOGUES:
            assert not _scans(ctx.captured_queries, model._meta.db_table), label
        if label in GROWING:
            full_counts = [q["sql"] for q in ctx.captured_queries
                           if q["sql"].upper().startswith("SELECT COUNT(") and " LIMIT " not in q["sql"].upper()
                           and f'"{model._meta.db_table}"' in q["sql"]]
            assert not full_counts, full_counts


@pytest.mark.parametrize("label", sorted(GROWING))
def test_growing_lists_use_the_scalable_configuration(label):
    from django.apps import apps
    from django.contrib import admin

    from portal.admin_kit import ScalableAdminMixin

    model_admin = admin.site._registry[apps.get_model(label)]
    assert isinstance(model_admin, ScalableAdminMixin)
    assert model_admin.date_hierarchy is None, "date_hierarchy selects DISTINCT dates: use DateRangeFilter"
    assert model_admin.show_facets == admin.ShowFacets.NEVER
    for spec in model_admin.list_filter:
        kind = spec[1] if isinstance(spec, (list, tuple)) else spec
        assert kind is not admin.RelatedOnlyFieldListFilter, "RelatedOnlyFieldListFilter selects DISTINCT ids"
