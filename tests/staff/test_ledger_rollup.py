from datetime import timedelta

import pytest
from django.utils import timezone

from portal.ledger_rollup import vendor_call_counts, vendor_call_rollup
from portal.models import VendorCall, VendorCallHourly


def _call(at, system="myadmin", outcome="ok"):
    return VendorCall.objects.create(system=system, method="M", outcome=outcome, started_at=at)


@pytest.mark.django_db
def test_rollup_counts_match_the_ledger_for_any_window():
    now = timezone.now().replace(minute=30, second=0, microsecond=0)
    for hours_ago in range(60):
        _call(now - timedelta(hours=hours_ago, minutes=7), outcome="ok")
        if hours_ago % 3 == 0:
            _call(now - timedelta(hours=hours_ago, minutes=50), system="dig", outcome="unknown")
    windows = [now - timedelta(hours=24), now - timedelta(days=30), now - timedelta(hours=2, minutes=13)]
    before = [vendor_call_counts(since=w, until=now) for w in windows]  # straight from the ledger

    added = vendor_call_rollup(now=now)
    assert added > 0 and VendorCallHourly.objects.filter(system="", outcome="").count() == added
    assert vendor_call_rollup(now=now) == 0  # nothing new to settle
    after = [vendor_call_counts(since=w, until=now) for w in windows]
    assert after == before
    assert before[0] == {("myadmin", "ok"): 24, ("dig", "unknown"): 8}

    # Calls after the rollup are still counted (the live edge comes from the ledger).
    _call(now - timedelta(minutes=1), system="navixy", outcome="rejected")
    assert vendor_call_counts(since=windows[0], until=now)[("navixy", "rejected")] == 1


@pytest.mark.django_db
def test_a_gap_in_the_rollup_falls_back_to_the_ledger():
    now = timezone.now().replace(minute=30, second=0, microsecond=0)
    for hours_ago in range(10):
        _call(now - timedelta(hours=hours_ago, minutes=5))
    vendor_call_rollup(now=now)
    expected = vendor_call_counts(since=now - timedelta(hours=9), until=now)
    VendorCallHourly.objects.filter(hour=(now - timedelta(hours=4)).replace(minute=0)).delete()
    assert vendor_call_counts(since=now - timedelta(hours=9), until=now) == expected
