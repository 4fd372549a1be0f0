"""The admin home dashboard: one selector per panel, each cheap on big tables and each able to
say "not available" when the app or field it reads does not exist (yet).

Every query is bounded by an index: counts GROUP BY an indexed status, time windows on indexed
timestamps, and the heavy ones (vendor-call error rates over 30 days) are cached for
``DASHBOARD_CACHE_SECONDS`` so a page view costs a few cache reads.
Each panel's numbers link to the admin list that shows the rows behind them.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from urllib.parse import urlencode

from django.apps import apps
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import FieldError
from django.db import DatabaseError, connection, transaction
from django.db.models import Count, Min, Q
from django.db.models.functions import TruncDate
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import mark_safe

logger = logging.getLogger(__name__)

CACHE_PREFIX = "portal:dashboard:v1:"


class Unavailable(Exception):
    """The panel's data source is missing (app not installed yet, field renamed)."""


def _model(label: str):
    try:
        return apps.get_model(label)
    except (LookupError, ValueError) as exc:
        raise Unavailable(f"{label} is not installed") from exc


def changelist_url(label: str, **params) -> str:
    """Admin list URL for ``app_label.Model`` with filters, or "" when it has no admin page."""
    app_label, model = label.split(".")
    try:
        url = reverse(f"admin:{app_label}_{model.lower()}_changelist")
    except NoReverseMatch:
        return ""
    return f"{url}?{urlencode(params)}" if params else url


def svg_bars(items, *, width: int = 320, bar_height: int = 16, label_width: int = 120) -> str:
    """A horizontal bar chart as inline SVG: items = [(label, value, url, bad)]. Drawn on the
    server so the page needs no chart library and no network."""
    items = list(items)
    if not items:
        return ""
    top = max((float(v) for _, v, _, _ in items), default=0) or 1.0
    chart_w = width - label_width - 50
    rows = []
    for i, (label, value, url, bad) in enumerate(items):
        y = i * (bar_height + 4)
        w = max(1, int(chart_w * float(value) / top)) if value else 0
        shown = f"{value:.1f}%" if isinstance(value, float) else str(value)
        bar = (
            f'<text x="0" y="{y + bar_height - 4}">{escape(str(label)[:22])}</text>'
            f'<rect class="bar{" bad" if bad else ""}" x="{label_width}" y="{y}" width="{w}" height="{bar_height}"></rect>'
            f'<text x="{label_width + w + 4}" y="{y + bar_height - 4}">{escape(shown)}</text>'
        )
        if url:
            bar = f'<a href="{escape(url)}">{bar}</a>'
        rows.append(bar)
    height = len(items) * (bar_height + 4)
    return mark_safe(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">{"".join(rows)}</svg>'
    )


# --- panels -----------------------------------------------------------------------------------

def panel_orders(now):
    Order = _model("orders.Order")
    waiting = ["new", "in_review", "approved", "provisioning", "ready_to_ship", "on_hold"]
    # Only the open statuses: an index range on status, however many orders were fulfilled.
    by_status = dict(
        Order.objects.filter(status__in=waiting).order_by().values_list("status").annotate(n=Count("*"))
    )
    ages = Order.objects.filter(status__in=waiting).aggregate(
        oldest=Min("order_date"),
        over_1d=Count("order_date", filter=Q(order_date__lt=now - timedelta(days=1))),
        over_3d=Count("order_date", filter=Q(order_date__lt=now - timedelta(days=3))),
        over_7d=Count("order_date", filter=Q(order_date__lt=now - timedelta(days=7))),
    )
    labels = dict(Order._meta.get_field("status").choices)
    rows = [
        (labels.get(s, s), by_status.get(s, 0), changelist_url("orders.Order", status__exact=s), s == "on_hold")
        for s in waiting
    ]
    oldest = ages["oldest"]
    return {
        "rows": rows,
        "chart": svg_bars(rows),
        "waiting": sum(by_status.get(s, 0) for s in waiting),
        "over_1d": ages["over_1d"], "over_3d": ages["over_3d"], "over_7d": ages["over_7d"],
        "oldest_days": round((now - oldest).total_seconds() / 86400, 1) if oldest else None,
        "waiting_url": changelist_url("orders.Order", status__in=",".join(waiting)),
    }


def panel_provisioning(now):
    Req = _model("devices.ProvisioningRequest")
    by_status = dict(Req.objects.order_by().values_list("status").annotate(n=Count("*")))
    # Short labels for the chart: "Unknown outcome (reconciling)" → "Unknown outcome".
    labels = {k: str(v).split(" (")[0] for k, v in Req._meta.get_field("status").choices}
    rows = [
        (labels.get(s, s), by_status.get(s, 0), changelist_url("devices.ProvisioningRequest", status__exact=s),
         s in ("unknown", "failed", "needs_staff"))
        for s in labels
    ]
    return {
        "rows": rows,
        "chart": svg_bars(rows),
        "unknown": by_status.get("unknown", 0),
        "needs_staff": by_status.get("needs_staff", 0),
        "needs_staff_url": changelist_url("devices.ProvisioningRequest", status__exact="needs_staff"),
        "unknown_url": changelist_url("devices.ProvisioningRequest", status__exact="unknown"),
    }


def panel_ingestion(now):
    Record = _model("ingestion.DeviceRecord")
    counts = dict(
        Record.objects.filter(status__in=["queued", "held"]).order_by().values_list("status").annotate(n=Count("*"))
    )
    hour_ago = now - timedelta(hours=1)
    sent_last_hour = Record.objects.filter(status="sent", sent_at__gte=hour_ago).count()
    oldest_queued = Record.objects.filter(status="queued").aggregate(t=Min("received_at"))["t"]
    week_ago = now - timedelta(days=7)
    causes = list(
        Record.objects.filter(status="rejected", received_at__gte=week_ago)
        .order_by().values_list("cause").annotate(n=Count("*")).order_by("-n")[:6]
    )
    cause_rows = [
        ((cause or "(no cause given)")[:40], n, changelist_url("ingestion.DeviceRecord", status__exact="rejected", cause=cause), True)
        for cause, n in causes
    ]
    return {
        "queued": counts.get("queued", 0),
        "held": counts.get("held", 0),
        "sent_last_hour": sent_last_hour,
        "per_minute": round(sent_last_hour / 60, 1),
        "lag_seconds": int((now - oldest_queued).total_seconds()) if oldest_queued else 0,
        "queued_url": changelist_url("ingestion.DeviceRecord", status__exact="queued"),
        "held_url": changelist_url("ingestion.DeviceRecord", status__exact="held"),
        "cause_rows": cause_rows,
        "chart": svg_bars(cause_rows),
    }


def panel_terminations(now):
    Termination = _model("devices.Termination")
    start = (now - timedelta(days=13)).replace(hour=0, minute=0, second=0, microsecond=0)
    per_day = dict(
        Termination.objects.filter(created_at__gte=start)
        .annotate(day=TruncDate("created_at")).order_by().values_list("day").annotate(n=Count("*"))
    )
    rows = []
    for i in range(14):
        day = (start + timedelta(days=i)).date()
        url = changelist_url("devices.Termination", created_at__gte=day.isoformat(),
                             created_at__lt=(day + timedelta(days=1)).isoformat())
        rows.append((day.strftime("%a %d %b"), per_day.get(day, 0), url, False))
    return {"rows": rows, "chart": svg_bars(rows), "total": sum(r[1] for r in rows)}


def _error_rates(since):
    from portal.ledger_rollup import vendor_call_counts

    per_system: dict[str, dict] = {}
    for (system, outcome), n in sorted(vendor_call_counts(since=since).items()):
        s = per_system.setdefault(system, {"total": 0, "errors": 0, "unknown": 0})
        s["total"] += n
        if outcome != "ok":
            s["errors"] += n
        if outcome == "unknown":
            s["unknown"] += n
    return per_system


def panel_vendor_calls(now):
    windows = {"24 h": now - timedelta(hours=24), "30 days": now - timedelta(days=30)}
    out = {"windows": []}
    for name, since in windows.items():
        rates = _error_rates(since)
        rows = []
        for system in sorted(rates):
            s = rates[system]
            pct = 100.0 * s["errors"] / s["total"] if s["total"] else 0.0
            url = changelist_url("portal.VendorCall", system=system, started_at__gte=since.isoformat(timespec="seconds"))
            rows.append((system, pct, url, pct >= 5.0))
        out["windows"].append({
            "name": name,
            "rows": rows,
            "chart": svg_bars(rows),
            "detail": [(system, rates[system]) for system in sorted(rates)],
        })
    return out


def panel_liveness(now):
    Heartbeat = _model("portal.Heartbeat")
    period = settings.HEARTBEAT_PERIOD_SECONDS
    beats = list(Heartbeat.objects.order_by("name").values_list("name", "beat_at", "worker")[:20])
    rows = []
    for name, beat_at, worker in beats:
        age = (now - beat_at).total_seconds()
        rows.append({"name": name, "age": int(age), "worker": worker, "ok": age < period * 4})
    return {"rows": rows, "ok": bool(rows) and all(r["ok"] for r in rows), "period": period,
            "url": changelist_url("portal.Heartbeat")}


def panel_jobs(now):
    Job = _model("portal.Job")
    running = list(Job.objects.filter(status__in=["pending", "running"]).order_by("-id")[:8])
    since = now - timedelta(hours=24)
    finished = dict(
        Job.objects.filter(finished_at__gte=since).order_by().values_list("status").annotate(n=Count("*"))
    )
    return {
        "running": [{"job": j, "url": reverse("admin:portal_job_change", args=[j.pk])} for j in running],
        "finished": finished,
        "url": changelist_url("portal.Job"),
    }


# name → (title, selector, cacheable). Live panels (liveness, jobs) are never cached.
PANELS = {
    "orders": ("Orders waiting on us", panel_orders, True),
    "provisioning": ("Provisioning outcomes", panel_provisioning, True),
    "ingestion": ("Device data to DIG", panel_ingestion, True),
    "terminations": ("Terminations per day (14 days)", panel_terminations, True),
    "vendor_calls": ("Vendor-call error rates", panel_vendor_calls, True),
    "liveness": ("Beat and worker liveness", panel_liveness, False),
    "jobs": ("Jobs", panel_jobs, False),
}


def _compute(name, selector, now):
    try:
        if connection.in_atomic_block:
            # Inside a transaction a failed query would poison it on PostgreSQL: use a savepoint.
            with transaction.atomic():
                return {"ok": True, "data": selector(now)}
        return {"ok": True, "data": selector(now)}
    except Unavailable as exc:
        return {"ok": False, "reason": str(exc)}
    except (FieldError, DatabaseError) as exc:
        logger.warning("dashboard panel %s unavailable: %s", name, exc)
        return {"ok": False, "reason": "not available yet"}


def dashboard_panels(*, now=None, use_cache: bool = True) -> list[dict]:
    """Every panel as {"name", "title", "ok", "data" | "reason"}."""
    now = now or timezone.now()
    ttl = getattr(settings, "DASHBOARD_CACHE_SECONDS", 30)
    panels = []
    for name, (title, selector, cacheable) in PANELS.items():
        result = None
        if cacheable and use_cache and ttl > 0:
            result = cache.get(CACHE_PREFIX + name)
        if result is None:
            result = _compute(name, selector, now)
            if cacheable and use_cache and ttl > 0 and result["ok"]:
                cache.set(CACHE_PREFIX + name, result, ttl)
        panels.append({"name": name, "title": title, **result})
    return panels


def dashboard_refresh() -> None:
    """Recompute the cached panels (a beat task can call this so no page view pays for it)."""
    now = timezone.now()
    ttl = getattr(settings, "DASHBOARD_CACHE_SECONDS", 30)
    for name, (_title, selector, cacheable) in PANELS.items():
        if cacheable and ttl > 0:
            result = _compute(name, selector, now)
            if result["ok"]:
                cache.set(CACHE_PREFIX + name, result, ttl)
