"""Shared plumbing for benchmarks: Django setup, timing, and the results file.

Each benchmark is a script (`python bench/<area>.py [--quick]`) that measures its figures and
its baseline in the same run and merges them into `bench/results.json`:

    {"<area>.<figure>": {"value": v, "unit": "...", "target": t, "baseline": b}}

`bench/report.py` turns that file into the README table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results.json"


BENCH_DB_NAME = "portal_bench"


def _bench_database_url() -> str:
    """Benchmarks get a database of their own, next to the configured one: PostgreSQL when
    DATABASE_URL points at PostgreSQL (created if missing), else a SQLite file under var/."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        return f"sqlite:///{ROOT / 'var' / 'bench.sqlite3'}"
    import environ
    import psycopg

    cfg = environ.Env.db_url_config(url)
    conninfo = dict(host=cfg.get("HOST") or None, port=cfg.get("PORT") or None,
                    user=cfg.get("USER") or None, password=cfg.get("PASSWORD") or None)
    with psycopg.connect(dbname="postgres", autocommit=True, **conninfo) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [BENCH_DB_NAME]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{BENCH_DB_NAME}"')
    base = url.rsplit("/", 1)[0]
    return f"{base}/{BENCH_DB_NAME}"


def setup_django(*, sandbox: bool = True, migrate: bool = True) -> None:
    """Configure Django on the benchmark database and bring its schema up to date."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    if sandbox:
        os.environ.setdefault("SANDBOX", "1")
    os.environ["DATABASE_URL"] = _bench_database_url()
    import django

    django.setup()
    if migrate:
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)


def is_postgres() -> bool:
    from django.db import connection

    return connection.vendor == "postgresql"


def parse_args(description: str, **extra: dict) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="small size, for CI smoke runs")
    for name, kwargs in extra.items():
        parser.add_argument(f"--{name.replace('_', '-')}", **kwargs)
    return parser.parse_args()


@contextmanager
def timer():
    """with timer() as t: ...; t.seconds"""

    class _T:
        seconds = 0.0

    t = _T()
    start = time.perf_counter()
    try:
        yield t
    finally:
        t.seconds = time.perf_counter() - start


def figure(value, unit: str, *, target=None, baseline=None) -> dict:
    return {"value": value, "unit": unit, "target": target, "baseline": baseline}


def write_results(figures: dict[str, dict], *, quick: bool = False) -> None:
    """Merge figures into bench/results.json (quick runs go to a local file, not the record)."""
    path = RESULTS if not quick else ROOT / "bench" / "results.local.json"
    current = json.loads(path.read_text()) if path.exists() else {}
    current.update(figures)
    path.write_text(json.dumps(dict(sorted(current.items())), indent=2) + "\n")
    width = max((len(k) for k in figures), default=10)
    for key, fig in figures.items():
        print(f"{key:<{width}}  {fig['value']!s:>12} {fig['unit']:<10} target={fig.get('target')} baseline={fig.get('baseline')}")
