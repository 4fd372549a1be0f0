"""Bounded loopback load against the portal's API: N concurrent clients (threads with
keep-alive connections) for a fixed duration, reads and record intake at the same time.

    .venv/bin/python proof/load.py [--quick] [--clients 50] [--duration 30]

Starts its own production-like stack (proof/stack.py: PostgreSQL + Redis + gunicorn + workers
+ beat on free loopback ports), seeds it, runs the load, prints per-operation throughput and
p50/p95/p99, and writes `load.*` figures through bench/common.py. Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import collections
import http.client
import json
import os
import random
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from proof.stack import Stack

READ_P95_TARGET_MS = 300
READ_P99_TARGET_MS = 800
INTAKE_TARGET_PER_S = 20_000  # the DIG intake target (records/s), held under concurrency
SERIAL_PREFIX = "CXLD"


# ------------------------------------------------------------------------------ seeding
@dataclass
class Seed:
    tokens: dict[str, str]
    device_ids: list[int]
    serials: list[str]
    order_ids: list[int]
    erp_nos: list[str]


def seed(stack: Stack, *, devices: int, orders: int) -> Seed:
    """Users with tokens per role, ready devices, orders (through the API, as a client would)."""
    stack.setup_django()
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from rest_framework.authtoken.models import Token

    from devices.models import Device
    from portal import roles

    User = get_user_model()
    tokens = {}
    for name in ("admin", *roles.ROLES):
        user, _ = User.objects.get_or_create(username=f"proof-{name}", defaults={"is_staff": True})
        if name == "admin":
            user.is_superuser = True
            user.save()
        else:
            user.groups.add(Group.objects.get_or_create(name=name)[0])
        tokens[name] = Token.objects.get_or_create(user=user)[0].key

    erp_nos = [f"PRF{n:03d}" for n in range(10)]
    now = datetime.now(UTC)
    product_type = Device.ProductType.choices[0][0]
    Device.objects.bulk_create(
        [Device(serial=f"{SERIAL_PREFIX}{i:08d}", product_id=10032, product_type=product_type,
                erp_no=erp_nos[i % len(erp_nos)], database_name="proof_db", ready_for_data_at=now)
         for i in range(devices)],
        batch_size=2000, ignore_conflicts=True,
    )
    rows = list(Device.objects.filter(serial__startswith=SERIAL_PREFIX).values_list("pk", "serial"))
    order_ids = []
    conn = _connection(stack.url)
    for n in range(orders):
        body = {
            "account_id": erp_nos[n % len(erp_nos)], "order_header_id": 900000 + n,
            "order_date": (now - timedelta(days=1)).isoformat(), "purchase_order_number": f"PO-{n}",
            "shipment_reference": "", "comment": "load", "reseller_name": "Proof Reseller",
            "reseller_email": "reseller@example.com",
            "shipping_contact": {"name": "Proof", "street1": "1 Main St", "city": "Toronto",
                                 "state": "ON", "zipCode": "M5V 1A1"},
            "items": [{"product_code": "CX-DEVICE", "quantity": 2, "requires_serial": True,
                       "requires_sim": False, "requires_imei": False}],
        }
        status, payload, _ = _request(conn, "POST", "/api/v1/orders/", tokens["admin"], json.dumps(body).encode())
        if status in (200, 201):
            order_ids.append(json.loads(payload)["id"])
        elif n == 0:
            print(f"load: orders cannot be created through the API ({status}: {payload[:200]!r}); "
                  "order detail is left out of the read mix")
            break
    conn.close()
    return Seed(tokens, [pk for pk, _ in rows], [s for _, s in rows], order_ids, erp_nos)


# ------------------------------------------------------------------------------ HTTP
def _connection(base_url: str) -> http.client.HTTPConnection:
    parts = urlsplit(base_url)
    assert parts.hostname in ("127.0.0.1", "localhost", "::1"), "load goes to loopback only"
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)


def _request(conn, method: str, path: str, token: str, body: bytes | None = None):
    headers = {"Authorization": f"Token {token}", "Accept": "application/json"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    return response.status, response.read(), response


def record_bodies(serials: list[str], *, bodies: int, batch: int, start: datetime | None = None) -> list[bytes]:
    """Unique GPS records (serial, DateTime) as JSON bodies, pre-built so the clients spend
    their time waiting on the portal, not formatting JSON."""
    start = start or datetime.now(UTC) - timedelta(minutes=1)
    template = ('{"Type":"GpsRecord","DateTime":"%s","SerialNo":"%s","Latitude":43.6%d,'
                '"Longitude":-79.3%d,"Speed":%d.0,"IsGpsValid":true}')
    count = len(serials)
    out = []
    for b in range(bodies):
        items = []
        for r in range(batch):
            n = b * batch + r
            when = (start - timedelta(seconds=n // count)).strftime("%Y-%m-%dT%H:%M:%SZ")
            items.append(template % (when, serials[n % count], n % 10, n % 7, n % 120))
        out.append(("[" + ",".join(items) + "]").encode())
    return out


# ------------------------------------------------------------------------------ the run
@dataclass
class Results:
    latencies: dict[str, list[float]] = field(default_factory=lambda: collections.defaultdict(list))
    statuses: dict[str, collections.Counter] = field(default_factory=lambda: collections.defaultdict(collections.Counter))
    accepted_records: int = 0
    duplicate_records: int = 0
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, op: str, seconds: float, status: int) -> None:
        with self.lock:
            self.latencies[op].append(seconds * 1000)
            self.statuses[op][status] += 1


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def _reader(base_url, token, seed: Seed, deadline: float, results: Results, rng: random.Random):
    conn = _connection(base_url)
    statuses = ("provisioned", "active", "terminated")
    ops = [("device_list", 3), ("device_filter", 3), ("device_detail", 2)]
    if seed.order_ids:
        ops.append(("order_detail", 2))
    names = [o for o, _ in ops]
    weights = [w for _, w in ops]
    while time.monotonic() < deadline:
        op = rng.choices(names, weights)[0]
        if op == "device_list":
            path = "/api/v1/devices/?page_size=50"
        elif op == "device_filter":
            path = (f"/api/v1/devices/?erp_no={rng.choice(seed.erp_nos)}&status={rng.choice(statuses)}"
                    f"&page_size=50")
        elif op == "device_detail":
            path = f"/api/v1/devices/{rng.choice(seed.device_ids)}/"
        else:
            path = f"/api/v1/orders/{rng.choice(seed.order_ids)}/"
        started = time.perf_counter()
        try:
            status, _, _ = _request(conn, "GET", path, token)
        except (OSError, http.client.HTTPException) as exc:
            status = 599
            results.errors.append(f"{op}: {type(exc).__name__}")
            conn.close()
            conn = _connection(base_url)
        results.add(op, time.perf_counter() - started, status)
    conn.close()


def _writer(base_url, token, bodies: collections.deque, deadline: float, results: Results):
    conn = _connection(base_url)
    while time.monotonic() < deadline:
        try:
            body = bodies.popleft()
        except IndexError:
            break
        started = time.perf_counter()
        try:
            status, payload, _ = _request(conn, "POST", "/api/v1/records/", token, body)
        except (OSError, http.client.HTTPException) as exc:
            status, payload = 599, b""
            results.errors.append(f"intake: {type(exc).__name__}")
            conn.close()
            conn = _connection(base_url)
        results.add("record_intake", time.perf_counter() - started, status)
        if status in (200, 201, 202):
            answer = json.loads(payload)
            with results.lock:
                results.accepted_records += answer.get("accepted", 0)
                results.duplicate_records += answer.get("duplicates", 0)
    conn.close()


def run_load(base_url: str, seed: Seed, *, clients: int, intake_clients: int, duration: float,
             bodies: list[bytes], token_role: str = "admin") -> tuple[Results, float]:
    token = seed.tokens[token_role]
    results = Results()
    queue = collections.deque(bodies)
    deadline = time.monotonic() + duration
    threads = [threading.Thread(target=_writer, args=(base_url, token, queue, deadline, results), daemon=True)
               for _ in range(intake_clients)]
    threads += [threading.Thread(target=_reader, args=(base_url, token, seed, deadline, results,
                                                       random.Random(i)), daemon=True)
                for i in range(clients - intake_clients)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=duration + 120)
    return results, time.monotonic() - started


def summarise(results: Results, elapsed: float) -> dict:
    reads = [v for op, vals in results.latencies.items() if op != "record_intake" for v in vals]
    table = {}
    for op, vals in sorted(results.latencies.items()):
        table[op] = {
            "requests": len(vals), "per_s": round(len(vals) / elapsed, 1),
            "p50_ms": round(percentile(vals, 50), 1), "p95_ms": round(percentile(vals, 95), 1),
            "p99_ms": round(percentile(vals, 99), 1), "statuses": dict(results.statuses[op]),
        }
    return {
        "elapsed_s": round(elapsed, 1),
        "read_requests_per_s": round(len(reads) / elapsed, 1),
        "read_p50_ms": round(percentile(reads, 50), 1),
        "read_p95_ms": round(percentile(reads, 95), 1),
        "read_p99_ms": round(percentile(reads, 99), 1),
        "intake_records_per_s": round(results.accepted_records / elapsed),
        "accepted_records": results.accepted_records,
        "server_errors": sum(c for s in results.statuses.values() for code, c in s.items() if code >= 500),
        "transport_errors": len(results.errors),
        "operations": table,
    }


def print_summary(summary: dict) -> None:
    print(f"\n{'operation':<15} {'requests':>9} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}  statuses")
    for op, row in summary["operations"].items():
        print(f"{op:<15} {row['requests']:>9} {row['per_s']:>8} {row['p50_ms']:>8} {row['p95_ms']:>8} "
              f"{row['p99_ms']:>8}  {row['statuses']}")
    print(f"\nreads: {summary['read_requests_per_s']} req/s, p50 {summary['read_p50_ms']} ms, "
          f"p95 {summary['read_p95_ms']} ms, p99 {summary['read_p99_ms']} ms; intake: "
          f"{summary['intake_records_per_s']} records/s ({summary['accepted_records']} accepted); "
          f"5xx: {summary['server_errors']}, transport errors: {summary['transport_errors']}; "
          f"machine load average {summary.get('load_average_1m')}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run (not the record)")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--intake-clients", type=int, default=10)
    parser.add_argument("--duration", type=float, default=None, help="seconds per phase (default 45; quick 8)")
    parser.add_argument("--batch", type=int, default=1000, help="records per intake POST")
    parser.add_argument("--devices", type=int, default=5000)
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--web-workers", type=int, default=4, help="gunicorn processes (2 per core measured best)")
    parser.add_argument("--web-threads", type=int, default=1,
                        help="threads per gunicorn process (1: requests queue fairly at accept)")
    args = parser.parse_args()
    duration = args.duration or (8 if args.quick else 45)
    devices = 500 if args.quick else args.devices
    orders = 20 if args.quick else args.orders

    # No database proxy here: the figures are for the real path, gunicorn → PostgreSQL.
    with Stack(workers=2, web_workers=args.web_workers, web_threads=args.web_threads, use_proxy=False) as stack:
        print(f"load: stack up at {stack.url} (PostgreSQL db {stack.db_name}, redis :{stack.redis_port})")
        data = seed(stack, devices=devices, orders=orders)
        # Enough bodies for the intake clients never to run dry at the target rate.
        n_bodies = int(duration * INTAKE_TARGET_PER_S * 1.5 / args.batch) + args.intake_clients
        bodies = record_bodies(data.serials, bodies=n_bodies, batch=args.batch)
        print(f"load: {len(data.device_ids)} devices, {len(data.order_ids)} orders", flush=True)
        # Phase 1: every client reads. Phase 2: the same clients, some of them posting record
        # batches: how much intake the portal takes while it keeps serving reads.
        print(f"load: phase 1, {args.clients} clients reading for {duration:.0f}s", flush=True)
        results, elapsed = run_load(stack.url, data, clients=args.clients, intake_clients=0,
                                    duration=duration, bodies=[])
        reads = summarise(results, elapsed)
        reads["load_average_1m"] = round(os.getloadavg()[0], 2)
        print_summary(reads)
        print(f"\nload: phase 2, {args.clients} clients ({args.intake_clients} posting {args.batch}-record "
              f"batches) for {duration:.0f}s", flush=True)
        results, elapsed = run_load(stack.url, data, clients=args.clients,
                                    intake_clients=args.intake_clients, duration=duration, bodies=bodies)
        mixed = summarise(results, elapsed)
        # The machine is shared: the load average says how much of it the run really had.
        mixed["load_average_1m"] = round(os.getloadavg()[0], 2)
        print_summary(mixed)
        (stack.log_dir.parent / "load.json").write_text(json.dumps({"reads": reads, "mixed": mixed}, indent=2))

    from bench.common import figure, write_results

    write_results({
        "load.read_p95_ms": figure(reads["read_p95_ms"], "ms", target=READ_P95_TARGET_MS),
        "load.read_p99_ms": figure(reads["read_p99_ms"], "ms", target=READ_P99_TARGET_MS),
        "load.read_requests_per_s": figure(reads["read_requests_per_s"], "req/s"),
        "load.intake_records_per_s": figure(mixed["intake_records_per_s"], "records/s",
                                            target=INTAKE_TARGET_PER_S),
        "load.mixed_read_p95_ms": figure(mixed["read_p95_ms"], "ms", target=READ_P95_TARGET_MS),
    }, quick=args.quick)
    ok = (reads["server_errors"] == 0 and mixed["server_errors"] == 0
          and reads["read_p95_ms"] < READ_P95_TARGET_MS and reads["read_p99_ms"] < READ_P99_TARGET_MS)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
