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
