"""Device data → DIG benchmark (run on PostgreSQL for the recorded figures).

    .venv/bin/python bench/dig.py [--quick]

Measured in one run, over real HTTP against the portal served on a loopback port (with its DIG
simulator):

- ``dig.intake_records_per_s``: 100,000 GPS records POSTed to /api/v1/records as 20 requests of
  5,000 (parse, validate, dedup, durable insert, 202);
- ``dig.intake_vs_copy_ratio``: intake time ÷ a PostgreSQL ``COPY`` of the same rows into a
  table shaped like the outbox (same indexes, unique constraint and storage parameters),
  measured in the same run;
- ``dig.forward_records_per_s``: two forwarders (one per core, as deployed) draining 50,000 of
  those records to the simulator in batches of 5,000 (one vendor call per 5,000 records);
  ``dig.forward_one_worker_records_per_s``: one forwarder draining the other 50,000;
- ``dig.lag_p95_s``: p95 of intake-to-delivery lag (``sent_at - received_at``) while records
  arrive at a steady 1,000/s and one forwarder worker runs;
- ``dig.validation_us_per_record``: the plain-Python validator alone (the baseline is a DRF
  serializer per record, the approach it replaced), to show validation is not the bottleneck.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    figure,
    is_postgres,
    parse_args,
    setup_django,
    timer,
    write_results,
)

BATCH = 5000
FORWARD_WORKERS = 2  # one per core on the 2-core reference machine


def _serve():
    """The portal (with its DIG simulator) under gunicorn on a free loopback port, as in
    production: a separate process, so the simulator and the portal's forwarder do not share
    one interpreter lock."""
    import socket
    import subprocess

    import requests

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, SANDBOX="1", PORT=str(port), PORTAL_BASE_URL=f"http://127.0.0.1:{port}")
    proc = subprocess.Popen(
        [str(root / ".venv" / "bin" / "gunicorn"), "portal.wsgi", "--bind", f"127.0.0.1:{port}",
         "--workers", "2", "--threads", "2", "--timeout", "120", "--log-level", "warning"],
        cwd=root, env=env,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            requests.get(f"{base}/sandbox/dig/_state", timeout=5)
            return proc, base
        except requests.RequestException:
            time.sleep(0.3)
    proc.terminate()
    raise RuntimeError("gunicorn did not start")


def _gps(serial: str, when: datetime, i: int) -> dict:
    return {"Type": "GpsRecord", "DateTime": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "SerialNo": serial,
            "Latitude": 43.6 + (i % 1000) * 1e-4, "Longitude": -79.4 - (i % 700) * 1e-4, "Speed": float(i % 120),
            "IsGpsValid": True, "IsIgnitionOn": True}


def _reset(*, keep_feeds: bool = False):
    from django.db import connection

    from ingestion.models import (
        DeviceFeed,
        DeviceQueueClock,
        DeviceRecord,
        ForwarderState,
        RecordIntakeKey,
    )
    from sandbox.dig.models import DigBatch, DigInvalidRecord, DigRecord

    if is_postgres():
        with connection.cursor() as cur:
            for model in (DeviceRecord, RecordIntakeKey, DigBatch, DigRecord, DigInvalidRecord,
                          *(() if keep_feeds else (DeviceFeed, DeviceQueueClock))):
                cur.execute(f'TRUNCATE "{model._meta.db_table}" CASCADE')
            cur.execute("VACUUM ANALYZE ingestion_devicerecord")
    else:
        for model in (DeviceRecord, RecordIntakeKey, DigRecord, DigInvalidRecord, DigBatch,
                      *(() if keep_feeds else (DeviceFeed, DeviceQueueClock))):
            model.objects.all().delete()
    ForwarderState.objects.all().delete()


def _devices(n: int):
    from devices.models import Device

    serials = [f"CB{i:010d}" for i in range(n)]
    existing = set(Device.objects.filter(serial__in=serials).values_list("serial", flat=True))
    Device.objects.bulk_create([
        Device(serial=s, product_id=10032, product_type="CustomDevice", erp_no="BENCH", status="active",
               database_name="bench_db", ready_for_data_at=datetime.now(UTC))
        for s in serials if s not in existing
    ])
    return serials


def _forward_in_parallel(client, *, workers: int) -> list:
    """Drain the queue with several forwarders at once, as a deployment with one worker per
    core does (each its own database connection; SKIP LOCKED keeps their batches apart)."""
    from django.db import connection

    from ingestion.services.outbox import records_forward

    summaries, errors = [], []

    def run():
        try:
            summaries.append(records_forward(client=client, batch_size=BATCH, max_batches=10_000, time_budget_s=600))
        except Exception as exc:  # surfaced below: a failed worker must fail the benchmark
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(660)
    if errors:
        raise errors[0]
    return summaries


def _bench_validation(records: list[dict]) -> tuple[float, float]:
    """µs per record: our validator vs a DRF serializer per record (the alternative)."""
    from rest_framework import serializers

    from ingestion.services.records import record_validate

    now = datetime.now(UTC)
    earliest, latest = now - timedelta(days=365), now + timedelta(minutes=5)
    sample = records[:BATCH]
    with timer() as t:
        for i, r in enumerate(sample):
            record_validate(i, r, earliest=earliest, latest=latest)
    ours = t.seconds / len(sample) * 1e6

    class GpsSerializer(serializers.Serializer):
        Type = serializers.ChoiceField(choices=["GpsRecord"])
        DateTime = serializers.DateTimeField()
        SerialNo = serializers.CharField(max_length=12)
        Latitude = serializers.FloatField(min_value=-90, max_value=90)
        Longitude = serializers.FloatField(min_value=-180, max_value=180)
        Speed = serializers.FloatField(min_value=0, max_value=1000, required=False)
        IsGpsValid = serializers.BooleanField(required=False)
        IsIgnitionOn = serializers.BooleanField(required=False)

    few = sample[:1000]
    with timer() as t:
        for r in few:
            GpsSerializer(data=r).is_valid()
    drf = t.seconds / len(few) * 1e6
    return ours, drf


def _copy_baseline(rows: list[tuple]) -> float:
    """Seconds to COPY the same rows into a table shaped like the outbox."""
    from django.db import connection, transaction

    from ingestion.services.records import _COLUMNS

    cols = ", ".join(_COLUMNS)
    with connection.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS bench_copy_records")
        # Same columns, indexes, constraints and storage parameters (fillfactor, …) as the outbox.
        cur.execute("SELECT coalesce(array_to_string(reloptions, ', '), '') FROM pg_class "
                    "WHERE oid = 'ingestion_devicerecord'::regclass")
        options = cur.fetchone()[0]
        cur.execute("CREATE TABLE bench_copy_records (LIKE ingestion_devicerecord INCLUDING ALL)"
                    + (f" WITH ({options})" if options else ""))
    try:
        with timer() as t:
            for start in range(0, len(rows), BATCH):
                with transaction.atomic(), connection.cursor() as cur, \
                        cur.cursor.copy(f"COPY bench_copy_records ({cols}) FROM STDIN") as copy:
                    for row in rows[start:start + BATCH]:
                        copy.write_row(row)
        return t.seconds
    finally:
        with connection.cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS bench_copy_records")


def main() -> None:
    args = parse_args(__doc__)
    total = 20_000 if args.quick else 100_000
    steady_seconds = 8 if args.quick else 30
    setup_django()
    import requests
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.db import connection
    from rest_framework.authtoken.models import Token

    from ingestion.models import DeviceRecord
    from ingestion.services.outbox import records_forward
    from integrations.base import MemoryRateLimiter, MemoryTokenStore
    from integrations.dig import DigClient
    from sandbox.dig.models import DigSettings

    server, base = _serve()
    settings.DIG_API_URL = f"{base}/sandbox/dig"
    DigSettings.current()
    _reset()
    serials = _devices(100)
    user, _ = get_user_model().objects.get_or_create(username="bench-intake", defaults={"is_staff": True})
    user.groups.add(Group.objects.get_or_create(name="billing")[0])
    token, _ = Token.objects.get_or_create(user=user)
    http = requests.Session()
    http.headers.update({"Authorization": f"Token {token.key}", "Content-Type": "application/json"})

    start = datetime.now(UTC) - timedelta(hours=6)
    records = [_gps(serials[i % len(serials)], start + timedelta(milliseconds=i * 10), i) for i in range(total)]
    bodies = [json.dumps(records[i:i + BATCH]).encode() for i in range(0, total, BATCH)]

    # --- validation approach (chosen by measuring)
    ours_us, drf_us = _bench_validation(records)

    # --- intake over HTTP
    http.post(f"{base}/api/v1/records/", data=json.dumps(records[:1]))  # warm up (connection, caches)
    DeviceRecord.objects.all().delete()
    with timer() as t_intake:
        for body in bodies:
            response = http.post(f"{base}/api/v1/records/", data=body, timeout=120)
            assert response.status_code == 202, response.text[:300]
            assert response.json()["accepted"] == BATCH, response.json()
    assert DeviceRecord.objects.count() == total
    intake_rate = total / t_intake.seconds

    # --- COPY of the same rows, same run
    copy_seconds = None
    if is_postgres():
        rows = list(DeviceRecord.objects.order_by("id").values_list(
            "device_id", "serial", "record_type", "recorded_at", "payload", "status", "hold_reason", "fair_key",
            "cause", "received_at", "available_at", "attempts"))
        copy_seconds = _copy_baseline(rows)

    # --- forwarding to the simulator, batches of 5000
    client = DigClient(settings.DIG_API_URL, settings.DIG_USERNAME, settings.DIG_PASSWORD,
                       token_store=MemoryTokenStore(), rate_limiter=MemoryRateLimiter(), read_timeout=60)
    client.tokens()
    # Warm-up: each device's first delivery (billing start: a device event and status change)
    # happens once in a device's life; the figure is the steady forwarding rate.
    warm = [_gps(s, start - timedelta(minutes=1), 0) for s in serials]
    http.post(f"{base}/api/v1/records/", data=json.dumps(warm), timeout=120).raise_for_status()
    DeviceRecord.objects.filter(recorded_at__lt=start).update(fair_key=0)
    records_forward(client=client, batch_size=len(serials), max_batches=1)
    half = total // 2
    DeviceRecord.objects.filter(id__in=DeviceRecord.objects.filter(status="queued").order_by("fair_key", "id")
                                .values("id")[half:]).update(status="held")
    with timer() as t_one:
        summary = records_forward(client=client, batch_size=BATCH, max_batches=10_000, time_budget_s=600)
    assert summary.sent == half and summary.vendor_calls == half // BATCH, summary
    one_worker_rate = half / t_one.seconds
    DeviceRecord.objects.filter(status="held").update(status="queued")
    with timer() as t_forward:
        summaries = _forward_in_parallel(client, workers=FORWARD_WORKERS)
    assert sum(s.sent for s in summaries) == total - half, summaries
    assert sum(s.vendor_calls for s in summaries) == (total - half) // BATCH, summaries
    forward_rate = (total - half) / t_forward.seconds

    # --- steady 1,000 records/s: intake-to-delivery lag
    _reset(keep_feeds=True)
    DigSettings.objects.update()
    stop = threading.Event()
    lag_start = datetime.now(UTC)

    def worker():
        try:
            while not stop.is_set():
                if not records_forward(client=client, batch_size=BATCH, time_budget_s=5).sent:
                    time.sleep(0.05)
            records_forward(client=client, batch_size=BATCH)
        finally:
            connection.close()

    forwarder = threading.Thread(target=worker, daemon=True)
    forwarder.start()
    base_time = datetime.now(UTC) - timedelta(hours=1)
    tick, per_tick = 0.5, 500
    n = 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < steady_seconds:
        body = [_gps(serials[(n + i) % len(serials)], base_time + timedelta(milliseconds=(n + i) * 3), n + i)
                for i in range(per_tick)]
        http.post(f"{base}/api/v1/records/", data=json.dumps(body), timeout=30).raise_for_status()
        n += per_tick
        sleep = t0 + (n / per_tick) * tick - time.monotonic()
        if sleep > 0:
            time.sleep(sleep)
    achieved_rate = n / (time.monotonic() - t0)
    deadline = time.monotonic() + 30
    while DeviceRecord.objects.exclude(status="sent").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    stop.set()
    forwarder.join(30)
    lags = sorted(
        (sent - received).total_seconds()
        for received, sent in DeviceRecord.objects.filter(received_at__gte=lag_start).values_list("received_at", "sent_at")
        if sent is not None
    )
    assert len(lags) == n, (len(lags), n)
    p95 = lags[int(len(lags) * 0.95) - 1]
    server.terminate()
    server.wait(30)

    print(f"intake {total} records in {t_intake.seconds:.2f}s; COPY {copy_seconds and round(copy_seconds, 2)}s; "
          f"forward one worker {t_one.seconds:.2f}s, {FORWARD_WORKERS} workers {t_forward.seconds:.2f}s; steady {achieved_rate:.0f} rec/s for {steady_seconds}s, "
          f"lag p50 {statistics.median(lags):.3f}s p95 {p95:.3f}s; validation {ours_us:.1f}µs vs DRF {drf_us:.1f}µs")
    figures = {
        "dig.intake_records_per_s": figure(round(intake_rate), "records/s", target=20_000),
        "dig.forward_records_per_s": figure(round(forward_rate), "records/s", target=50_000),
        "dig.forward_one_worker_records_per_s": figure(round(one_worker_rate), "records/s"),
        "dig.lag_p95_s": figure(round(p95, 3), "s", target=5.0),
        "dig.validation_us_per_record": figure(round(ours_us, 2), "µs/record", baseline=round(drf_us, 2)),
    }
    if copy_seconds:
        figures["dig.intake_vs_copy_ratio"] = figure(round(t_intake.seconds / copy_seconds, 2), "×", target=3.0)
    write_results(figures, quick=args.quick)


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    main()
