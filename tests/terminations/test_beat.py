"""A real `celery worker -B` (worker + beat, database scheduler) runs the scheduled import.

The subprocess sees the test's data: on PostgreSQL it uses the test database itself; on SQLite
(an in-memory test database a subprocess cannot open) the committed test database is copied to a
file first. Bounded to 60 seconds; skipped only when a configured Redis broker is unreachable.
"""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from ingestion.models import TerminationSource
from tests.terminations.conftest import csv_bytes, serial_for, sheet_rows

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 60


def _broker_or_skip() -> str:
    url = settings.CELERY_BROKER_URL
    if url.startswith("redis"):
        import redis

        try:
            redis.Redis.from_url(url, socket_connect_timeout=2).ping()
        except Exception as exc:  # noqa: BLE001
            pytest.skip(f"Redis broker {url} unavailable: {exc}")
    return url


def _database_url(tmp_path: Path) -> tuple[str, callable]:
    """The DATABASE_URL for the subprocess and a function that reads the run statuses from it."""
    if connection.vendor == "postgresql":
        s = connection.settings_dict
        url = f"postgres://{s['USER']}:{s['PASSWORD']}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"

        def read():
            from ingestion.models import TerminationImportRun

            return list(TerminationImportRun.objects.values_list("status", "applied_count"))

        return url, read
    db_file = tmp_path / "beat.sqlite3"
    connection.ensure_connection()
    target = sqlite3.connect(db_file)
    connection.connection.backup(target)
    target.close()

    def read():
        with sqlite3.connect(db_file, timeout=5) as db:
            return db.execute("SELECT status, applied_count FROM ingestion_terminationimportrun").fetchall()

    return f"sqlite:///{db_file}", read


@pytest.mark.django_db(transaction=True)
def test_beat_and_worker_run_the_scheduled_import(tmp_path, make_devices):
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    broker = _broker_or_skip()
    make_devices(3)
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "summary.csv").write_bytes(csv_bytes(sheet_rows([serial_for(1), serial_for(2)])))
    source = TerminationSource.objects.create(name="Drop folder", kind="folder", folder_path=str(drop))
    every_second, _ = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(name="Termination import (test)", task="ingestion.termination_sheet_import_scheduled",
                                interval=every_second, kwargs=json.dumps({"source_id": source.pk}))
    database_url, read_runs = _database_url(tmp_path)

    env = {**os.environ, "DATABASE_URL": database_url, "CELERY_BROKER_URL": broker, "SANDBOX": "1",
           "DJANGO_SETTINGS_MODULE": "portal.settings", "PORTAL_VAR_DIR": str(tmp_path / "var"),
           "HEARTBEAT_PERIOD_SECONDS": "3600"}
    log = (tmp_path / "celery.log").open("w+")
    celery = str(Path(sys.executable).with_name("celery"))
    proc = subprocess.Popen(
        [celery, "-A", "portal", "worker", "-B", "--pool=solo", "--loglevel=INFO",
         "--schedule", str(tmp_path / "beat-schedule"), "--without-gossip", "--without-mingle"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    runs = []
    try:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            runs = read_runs()
            if any(status == "succeeded" for status, _ in runs):
                break
            if proc.poll() is not None:
                break
            time.sleep(1)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        log.seek(0)
        output = log.read()
        log.close()
    assert ("succeeded", 2) in runs, f"no successful import run within {TIMEOUT}s: {runs}\n{output[-4000:]}"
    # The file was archived, so later beats find nothing new (failed "no sheet" runs, no re-apply).
    assert (drop / "imported" / "summary.csv").exists()
    assert sum(applied for _, applied in runs) == 2
