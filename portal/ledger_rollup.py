"""Hourly counts of the vendor-call ledger, so 24-hour and 30-day error rates stay cheap at
millions of calls.

`vendor_call_rollup()` (beat, every few minutes) counts each *settled* hour once: an hour is
settled SETTLE after it ended, since a call is recorded when it finishes (up to the read
timeout after its `started_at`). `vendor_call_counts(since=, until=)` answers exact counts for
any window: whole rolled-up hours from the rollup, the edges and anything not rolled up yet
from the ledger itself (index range scans on `started_at`), so it is right even when beat has
not run.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Count, Max, Min, Sum
from django.db.models.functions import TruncHour
from django.utils import timezone

from portal.models import VendorCall, VendorCallHourly

SETTLE = timedelta(minutes=5)
HOUR = timedelta(hours=1)
# Per run, roll up at most this far back (a first run on a big ledger catches up in steps).
MAX_HOURS_PER_RUN = 24 * 35


def _floor_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def vendor_call_rollup(*, now: datetime | None = None) -> int:
    """Count the settled hours not rolled up yet; returns how many hours were added."""
    now = now or timezone.now()
    end = _floor_hour(now - SETTLE)
    last = VendorCallHourly.objects.aggregate(h=Max("hour"))["h"]
    if last is None:
        first_call = VendorCall.objects.aggregate(t=Min("started_at"))["t"]
        if first_call is None:
            return 0
        start = _floor_hour(first_call)
    else:
        start = last + HOUR
    start = max(start, end - MAX_HOURS_PER_RUN * HOUR)
    if start >= end:
        return 0
    counts = (
        VendorCall.objects.filter(started_at__gte=start, started_at__lt=end)
        .annotate(h=TruncHour("started_at")).order_by()
        .values_list("h", "system", "outcome").annotate(n=Count("pk"))
    )
    rows = [VendorCallHourly(hour=h, system=system, outcome=outcome, calls=n) for h, system, outcome, n in counts]
    hours, h = [], start
    while h < end:
        hours.append(VendorCallHourly(hour=h, system="", outcome="", calls=0))
        h += HOUR
    with transaction.atomic():
        # Idempotent: a concurrent or repeated run replaces the same hours.
        VendorCallHourly.objects.filter(hour__gte=start, hour__lt=end).delete()
        VendorCallHourly.objects.bulk_create(rows + hours, batch_size=2000)
    return len(hours)


def _ledger_counts(since: datetime, until: datetime, into: dict) -> None:
    if since >= until:
        return
    for system, outcome, n in (
        VendorCall.objects.filter(started_at__gte=since, started_at__lt=until).order_by()
        .values_list("system", "outcome").annotate(n=Count("pk"))
    ):
        into[(system, outcome)] += n


def vendor_call_counts(*, since: datetime, until: datetime | None = None) -> dict[tuple[str, str], int]:
    """{(system, outcome): calls} for started_at in [since, until)."""
    until = until or timezone.now() + timedelta(seconds=1)
    counts: dict[tuple[str, str], int] = defaultdict(int)
    first_whole = _floor_hour(since) + (HOUR if since != _floor_hour(since) else timedelta(0))
    markers = VendorCallHourly.objects.filter(hour__gte=first_whole, hour__lt=_floor_hour(until), system="", outcome="")
    covered = markers.aggregate(lo=Min("hour"), hi=Max("hour"), n=Count("pk"))
    lo, hi = covered["lo"], covered["hi"]
    if lo is None or covered["n"] != int((hi - lo) / HOUR) + 1:
        # Nothing rolled up in the window, or a gap in the rollup: the ledger answers it all.
        _ledger_counts(since, until, counts)
        return dict(counts)
    rolled_end = hi + HOUR
    # [since, lo) and [rolled_end, until) from the ledger (short index ranges once beat runs),
    # the whole hours in between from the rollup.
    _ledger_counts(since, lo, counts)
    for system, outcome, n in (
        VendorCallHourly.objects.filter(hour__gte=lo, hour__lt=rolled_end).exclude(system="", outcome="")
        .order_by().values_list("system", "outcome").annotate(n=Sum("calls"))
    ):
        counts[(system, outcome)] += n
    _ledger_counts(rolled_end, until, counts)
    return dict(counts)
