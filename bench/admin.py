"""Admin at scale: every registered changelist and the dashboard on a big generated data set.

    .venv/bin/python bench/admin.py            # 1,000,000 devices, 200,000 orders, 2,000,000 vendor calls
    .venv/bin/python bench/admin.py --quick    # tiny sizes, for CI smoke runs

Runs on PostgreSQL when DATABASE_URL points at PostgreSQL (its own database, `portal_bench_admin`,
`portal_bench_admin_quick` for --quick,
so other benchmarks' data are not disturbed), else on a SQLite file under var/.
Rows are generated inside the database (`generate_series` on PostgreSQL, a recursive CTE on
SQLite) from each model's own field definitions, so the generator follows model changes; a
re-run tops tables up instead of starting over.

Figures (server time = Django test client round trip, no network; median of 5 after a warm-up):
- admin.changelist_max_ms: the slowest changelist (unfiltered, first page, as a superuser);
- admin.changelist_max_queries: the most SQL queries any changelist ran;
- admin.dashboard_ms: the admin home with its dashboard, panel cache empty (the worst case),
  after the vendor-call hourly rollup beat runs (portal.ledger_rollup); baseline = warm cache.
A per-admin table is printed too.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common

BIG = {"devices.Device": 1_000_000, "orders.Order": 200_000, "portal.VendorCall": 2_000_000}
QUICK_BIG = {"devices.Device": 3_000, "orders.Order": 600, "portal.VendorCall": 6_000}
# Every other model with an admin page gets this many rows (their lists must not be empty).
OTHER_ROWS, QUICK_OTHER_ROWS = 20_000, 100
# Catalogues and configuration stay small in real life (their list filters list every row).
SMALL = {
    "ingestion.TerminationSource": 20, "devices.NavixyGroup": 200, "devices.NavixyModel": 600,
    "devices.NavixyPlugin": 60, "orders.Product": 200, "portal.Heartbeat": 5, "portal.ApiToken": 500,
    "devices.CustomerDatabase": 2_000, "orders.Account": 5_000,
}
# Models whose rows only make sense in bulk through their parents, or that are tiny catalogues.
SKIP = {"auth.Permission", "contenttypes.ContentType", "sessions.Session", "admin.LogEntry", "authtoken.TokenProxy"}
# Real status columns are dominated by their settled value (most orders are fulfilled, most
# calls succeed); the rest are spread over every choice. Without this the generator would make
# two thirds of all orders "open", which no partner has.
SETTLED = {
    "orders.Order.status": "fulfilled", "devices.Device.status": "active",
    "devices.ProvisioningRequest.status": "succeeded", "ingestion.DeviceRecord.status": "sent",
    "portal.VendorCall.outcome": "ok", "portal.Job.status": "succeeded", "devices.Termination.status": "applied",
    "devices.Tracker.state": "registered",
}
SETTLED_SHARE = 95  # percent
TARGET_MS = 200
RUNS = 5


def _series_sql(n: int, start: int) -> str:
    from django.db import connection

    if connection.vendor == "postgresql":
        return f"SELECT g::bigint AS i FROM generate_series({start}::bigint, {start + n - 1}::bigint) AS g"
    return (f"WITH RECURSIVE s(i) AS (SELECT {start} UNION ALL SELECT i + 1 FROM s WHERE i < {start + n - 1}) "
            "SELECT i FROM s")


def _unique_columns(model) -> set[str]:
    names = {f.name for f in model._meta.concrete_fields if f.unique and not f.primary_key}
    for constraint in model._meta.constraints:
        names.update(getattr(constraint, "fields", ()) or ())
    for together in model._meta.unique_together:
        names.update(together)
    return names


def _expr(model, field, unique: set[str], parents: dict) -> str | None:
    """An SQL expression of ``i`` producing a valid value for ``field`` (None: leave default)."""
    from django.db import connection, models

    pg = connection.vendor == "postgresql"
    if field.primary_key and isinstance(field, models.AutoField):
        return None
    if type(field).__name__.startswith("Encrypted"):
        return "''"  # ciphertext cannot be generated in SQL; empty means "not set"
    if field.is_relation:
        if field.null:
            return "NULL"
        lo, count = parents[field.related_model._meta.label]
        return f"({lo} + (i % {count}))"
    if field.choices:
        values = [v for v, _ in field.flatchoices if v not in (None, "")] or [v for v, _ in field.flatchoices]
        cases = " ".join(f"WHEN {k} THEN {_literal(v)}" for k, v in enumerate(values))
        spread = f"(CASE ((i * 7) % {len(values)}) {cases} END)"
        settled = SETTLED.get(f"{model._meta.label}.{field.name}")
        if settled in values:
            return f"(CASE WHEN (i % 100) < {SETTLED_SHARE} THEN {_literal(settled)} ELSE {spread} END)"
        return spread
    if isinstance(field, (models.DateTimeField,)):
        if field.null and field.name not in unique and not field.name.endswith(("_at", "date")):
            return "NULL"
        if pg:
            return "(now() - ((i % 2592000) * interval '1 second'))"
        return "datetime('now', '-' || (i % 2592000) || ' seconds')"
    if isinstance(field, models.DateField):
        return "(current_date - (i % 30)::int)" if pg else "date('now', '-' || (i % 30) || ' days')"
    if isinstance(field, models.BooleanField):
        return "((i % 5) = 0)"
    if isinstance(field, (models.IntegerField, models.BigIntegerField, models.PositiveIntegerField,
                          models.PositiveSmallIntegerField, models.SmallIntegerField, models.FloatField,
                          models.DecimalField)):
        if field.null and field.unique:
            return "NULL"
        if field.name in unique:
            return "i"
        if field.null:
            return "NULL"
        return "(i % 1000)"
    if isinstance(field, models.JSONField):
        return "CAST('{}' AS jsonb)" if pg else "'{}'"
    if isinstance(field, models.UUIDField):
        return "gen_random_uuid()" if pg else "lower(hex(randomblob(16)))"
    if isinstance(field, (models.CharField, models.TextField)):
        max_len = getattr(field, "max_length", None) or 1000
        if field.name in unique:
            if field.null and field.unique:
                return "NULL"  # NULLs never collide (IMEI, SIM, idempotency keys)
            prefix = field.name[:1].upper()
            return f"'{prefix}' || i" if max_len >= 11 else "CAST(i AS TEXT)"
        if field.blank:
            return "''"
        word = f"'{field.name[:6]}' || (i % 50)"
        return word if max_len >= 8 else "'x'"
    if field.null:
        return "NULL"
    return None


def _literal(value) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return str(int(value)) if isinstance(value, bool) is False else ("TRUE" if value else "FALSE")


def fill(model, target: int, parents: dict, *, batch: int = 200_000) -> float:
    """Top ``model``'s table up to ``target`` rows; returns seconds spent."""
    from django.db import connection, transaction

    have = model._default_manager.count()
    if have >= target:
        return 0.0
    unique = _unique_columns(model)
    columns, exprs = [], []
    for field in model._meta.concrete_fields:
        expr = _expr(model, field, unique, parents)
        if expr is None:
            continue
        columns.append(connection.ops.quote_name(field.column))
        exprs.append(expr)
    table = connection.ops.quote_name(model._meta.db_table)
    started = time.perf_counter()
    # Offset i past existing rows so unique values never collide on a top-up.
    start = have + 1_000_000_000 if have else 1
    remaining = target - have
    while remaining > 0:
        n = min(batch, remaining)
        sql = f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(exprs)} FROM ({_series_sql(n, start)}) AS series"
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql)
        start += n
        remaining -= n
    return time.perf_counter() - started


def _parent_order(models_to_fill):
    """Parents (non-null foreign keys) before children."""
    ordered, seen = [], set()

    def visit(model, depth=0):
        label = model._meta.label
        if label in seen or depth > 10:
            return
        for field in model._meta.concrete_fields:
            if field.is_relation and not field.null and field.related_model is not model:
                visit(field.related_model, depth + 1)
        seen.add(label)
        ordered.append(model)

    for model in models_to_fill:
        visit(model)
    return ordered


def generate(quick: bool) -> dict:
    from django.contrib import admin
    from django.db import connection

    big = QUICK_BIG if quick else BIG
    other = QUICK_OTHER_ROWS if quick else OTHER_ROWS
    wanted = {}
    for model in admin.site._registry:
        label = model._meta.label
        if label in SKIP or label.startswith(("django_celery_beat.", "auth.", "sandbox")):
            continue
        wanted[model] = big.get(label, SMALL.get(label, other))
    from django.apps import apps

    for label, n in big.items():
        try:
            wanted[apps.get_model(label)] = n
        except LookupError:
            pass
    sizes, parents = {}, {}
    for model in _parent_order(wanted):
        label = model._meta.label
        target = wanted.get(model, 50)  # a parent with no admin page: a few rows to point at
        try:
            seconds = fill(model, target, parents)
        except Exception as exc:  # noqa: BLE001 -- a model the generator cannot fill is reported, not fatal
            print(f"  ! could not generate {label}: {type(exc).__name__}: {str(exc)[:160]}")
            continue
        ids = model._default_manager.order_by().values_list("pk", flat=True)
        lo = ids.order_by("pk").first()
        count = model._default_manager.count()
        if lo is not None and isinstance(lo, int):
            parents[label] = (lo, max(1, count))
        sizes[label] = count
        if seconds:
            print(f"  generated {label}: {count} rows in {seconds:.1f}s")
    # What beat and autovacuum keep up in production: the ledger's hourly rollup, and vacuumed,
    # analysed tables (visibility maps let PostgreSQL answer counts from indexes alone).
    from portal.ledger_rollup import vendor_call_rollup

    with common.timer() as t:
        hours = vendor_call_rollup()
    if hours:
        print(f"  vendor-call rollup: {hours} hours in {t.seconds:.1f}s")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
    return sizes


def measure(quick: bool) -> dict:
    from django.contrib import admin
    from django.contrib.auth import get_user_model
    from django.core.cache import cache
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    User = get_user_model()
    user, _ = User.objects.get_or_create(username="bench-admin", defaults={"is_staff": True, "is_superuser": True})
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)

    def timed(url, *, clear_cache=False):
        times, sql_times, queries, status = [], [], 0, None
        for n in range(RUNS + 1):
            if clear_cache:
                cache.clear()
            with CaptureQueriesContext(connection) as ctx:
                t0 = time.perf_counter()
                response = client.get(url)
                elapsed = (time.perf_counter() - t0) * 1000
            status = response.status_code
            if n:  # the first run warms caches and connections
                times.append(elapsed)
                sql_times.append(sum(float(q["time"]) for q in ctx.captured_queries) * 1000)
                queries = max(queries, len(ctx))
        timed.sql_ms = statistics.median(sql_times)
        return statistics.median(times), queries, status

    rows = []
    for model, _model_admin in sorted(admin.site._registry.items(), key=lambda kv: kv[0]._meta.label):
        label = model._meta.label
        if label.startswith("sandbox"):
            continue
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        ms, queries, status = timed(url)
        rows.append((label, ms, queries, status, timed.sql_ms))
    dash_ms, dash_queries, dash_status = timed("/admin/", clear_cache=True)
    dash_sql = timed.sql_ms
    warm_ms, _, _ = timed("/admin/")
    return {"rows": rows, "dashboard": (dash_ms, dash_queries, dash_status, dash_sql), "dashboard_warm_ms": warm_ms}


def main():
    args = common.parse_args(__doc__.splitlines()[0])
    # Our own database: the big tables here must not collide with other benchmarks' data.
    common.BENCH_DB_NAME = "portal_bench_admin_quick" if args.quick else "portal_bench_admin"
    common.setup_django(sandbox=False)
    from django.db import connection

    print(f"admin bench on {connection.vendor} ({'quick' if args.quick else 'full'} size)")
    sizes = generate(args.quick)
    for label in sorted(sizes):
        print(f"  {label:<40} {sizes[label]:>10} rows")
    result = measure(args.quick)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    print(f"\n  (load average at measurement: {load:.1f} on {os.cpu_count()} cores; 'sql ms' is the database's share)")
    print(f"  {'changelist':<40} {'ms':>8} {'sql ms':>8} {'queries':>8} status")
    for label, ms, queries, status, sql_ms in result["rows"]:
        flag = "" if ms <= TARGET_MS and status == 200 else "  <-- over target" if status == 200 else "  <-- ERROR"
        print(f"  {label:<40} {ms:>8.1f} {sql_ms:>8.1f} {queries:>8} {status}{flag}")
    dash_ms, dash_queries, dash_status, dash_sql = result["dashboard"]
    print(f"  {'admin home (dashboard, cold cache)':<40} {dash_ms:>8.1f} {dash_sql:>8.1f} {dash_queries:>8} {dash_status}")
    print(f"  {'admin home (dashboard, warm cache)':<40} {result['dashboard_warm_ms']:>8.1f}")
    ok_rows = [r for r in result["rows"] if r[3] == 200]
    errors = [r[0] for r in result["rows"] if r[3] != 200]
    if errors:
        print(f"  changelists that failed to render: {', '.join(errors)}")
    worst = max(ok_rows, key=lambda r: r[1]) if ok_rows else ("-", 0.0, 0, 0)
    figures = {
        "admin.changelist_max_ms": common.figure(round(worst[1], 1), "ms", target=TARGET_MS),
        "admin.changelist_max_queries": common.figure(max((r[2] for r in ok_rows), default=0), "queries"),
        "admin.dashboard_ms": common.figure(round(dash_ms, 1), "ms", target=TARGET_MS,
                                            baseline=round(result["dashboard_warm_ms"], 1)),
    }
    print(f"\n  slowest changelist: {worst[0]}")
    common.write_results(figures, quick=args.quick)


if __name__ == "__main__":
    main()
