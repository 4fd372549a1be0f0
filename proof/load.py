"""Bounded loopback load against the portal's API: N concurrent clients with keep-alive
connections for a fixed duration: reads, then reads and record intake together, then intake.

    .venv/bin/python proof/load.py [--quick] [--clients 50] [--duration 30]

Reads are driven by wrk (C, an event loop, and exact latency histograms) when it is installed
(`scripts/install-load-tools.sh`), else by Python threads. The Python client shares one GIL
between its 50 threads: on 2 cores it takes CPU from the server and adds its own queueing to
the latencies it measures (both seen here: the same stack read 132 req/s at p95 926 ms from
Python threads, 184 req/s at p95 643 ms from wrk). Intake is always posted by Python threads,
which spend their time waiting on the portal: the bodies are built before the clock starts.

Starts its own production-like stack (proof/stack.py: PostgreSQL + Redis + gunicorn + workers
+ beat on free loopback ports), seeds it, runs the load, prints per-operation throughput and
p50/p95/p99, and writes `load.*` figures through bench/common.py. Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import http.client
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
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
# The read mix: (operation, weight). Lists and filtered lists are what partner systems poll.
READ_MIX = (("device_list", 3), ("device_filter", 3), ("device_detail", 2), ("order_detail", 2))
DEVICE_STATUSES = ("provisioned", "active", "terminated")


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


def percentile(values: list[float], pct: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def _reader(base_url, token, seed: Seed, deadline: float, results: Results, rng: random.Random):
    conn = _connection(base_url)
    ops = [(op, w) for op, w in READ_MIX if op != "order_detail" or seed.order_ids]
    names = [o for o, _ in ops]
    weights = [w for _, w in ops]
    while time.monotonic() < deadline:
        op = rng.choices(names, weights)[0]
        if op == "device_list":
            path = "/api/v1/devices/?page_size=50"
        elif op == "device_filter":
            path = (f"/api/v1/devices/?erp_no={rng.choice(seed.erp_nos)}&status={rng.choice(DEVICE_STATUSES)}"
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


def wrk_script(seed: Seed, token: str) -> str:
    """The read mix of `_reader` as a wrk Lua script: the same operations, weights and ids.
    done() prints one RESULT line with wrk's own latency percentiles."""
    def lua_list(values) -> str:
        return "{" + ",".join(json.dumps(v) for v in values) + "}"

    mix = [(op, w) for op, w in READ_MIX if op != "order_detail" or seed.order_ids]
    weights = lua_list([w for _, w in mix])
    ops = lua_list([op for op, _ in mix])
    return f"""
local token, device_ids, order_ids = {json.dumps(token)}, {lua_list(seed.device_ids)}, {lua_list(seed.order_ids)}
local erp_nos, statuses = {lua_list(seed.erp_nos)}, {lua_list(DEVICE_STATUSES)}
local ops, weights, total = {ops}, {weights}, 0
for _, w in ipairs(weights) do total = total + w end
local headers = {{["Authorization"] = "Token " .. token, ["Accept"] = "application/json"}}
local threads, counter = {{}}, 0
function setup(thread) counter = counter + 1; thread:set("thread_no", counter); table.insert(threads, thread) end
function init(args) math.randomseed(1000 + thread_no) end
local function pick(list) return list[math.random(#list)] end
local function op()
  local r = math.random() * total
  for i, w in ipairs(weights) do r = r - w; if r <= 0 then return ops[i] end end
  return ops[#ops]
end
request = function()
  local name, path = op()
  if name == "device_list" then path = "/api/v1/devices/?page_size=50"
  elseif name == "device_filter" then
    path = "/api/v1/devices/?erp_no=" .. pick(erp_nos) .. "&status=" .. pick(statuses) .. "&page_size=50"
  elseif name == "device_detail" then path = "/api/v1/devices/" .. pick(device_ids) .. "/"
  else path = "/api/v1/orders/" .. pick(order_ids) .. "/" end
  return wrk.format("GET", path, headers)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT requests=%d duration_us=%d non2xx=%d transport=%d p50=%.3f p95=%.3f p99=%.3f max=%.3f\\n",
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
"""


def run_wrk_reads(base_url: str, seed: Seed, token: str, *, connections: int, duration: float) -> dict:
    """Closed-loop reads from wrk: `connections` keep-alive clients, each sending its next
    request when the last one is answered. Returns the figures `summarise` gives for reads."""
    parts = urlsplit(base_url)
    assert parts.hostname in ("127.0.0.1", "localhost", "::1"), "load goes to loopback only"
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(wrk_script(seed, token))
    try:
        done = subprocess.run(
            ["wrk", "-t", "2", "-c", str(connections), "-d", f"{duration:.0f}s", "--timeout", "30s",
             "-s", script.name, base_url],
            capture_output=True, text=True, timeout=duration + 60, check=False)
    finally:
        os.unlink(script.name)
    match = re.search(r"RESULT (.*)", done.stdout)
    if done.returncode != 0 or not match:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout[-500:]} {done.stderr[-500:]}")
    values = dict(item.split("=") for item in match.group(1).split())
    elapsed = int(values["duration_us"]) / 1e6
    return {
        "generator": "wrk",
        "elapsed_s": round(elapsed, 1),
        "read_requests_per_s": round(int(values["requests"]) / elapsed, 1),
        "read_p50_ms": round(float(values["p50"]), 1),
        "read_p95_ms": round(float(values["p95"]), 1),
        "read_p99_ms": round(float(values["p99"]), 1),
        "read_max_ms": round(float(values["max"]), 1),
        "read_non_2xx": int(values["non2xx"]),
        "transport_errors": int(values["transport"]),
    }


def run_phase(base_url: str, seed: Seed, *, readers: int, writers: int, duration: float,
              bodies: list[bytes], use_wrk: bool, token_role: str = "admin") -> dict:
    """`readers` clients reading (wrk, or Python threads) and `writers` Python threads posting
    record batches, at the same time, for `duration` seconds; the phase's summary."""
    token = seed.tokens[token_role]
    results = Results()
    queue = collections.deque(bodies)
    deadline = time.monotonic() + duration
    threads = [threading.Thread(target=_writer, args=(base_url, token, queue, deadline, results), daemon=True)
               for _ in range(writers)]
    wrk_reads: dict = {}
    if readers and use_wrk:
        threads.append(threading.Thread(target=lambda: wrk_reads.update(run_wrk_reads(
            base_url, seed, token, connections=readers, duration=duration)), daemon=True))
    elif readers:
        threads += [threading.Thread(target=_reader, args=(base_url, token, seed, deadline, results,
                                                           random.Random(i)), daemon=True)
                    for i in range(readers)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=duration + 120)
    summary = summarise(results, time.monotonic() - started)
    if readers and use_wrk:
        if not wrk_reads:
            raise RuntimeError("wrk gave no result (see the error above)")
        summary["transport_errors"] += wrk_reads.pop("transport_errors")
        summary.update(wrk_reads)  # with read_non_2xx: wrk counts every status outside 2xx/3xx
    else:
        summary["generator"] = "python threads" if readers else None
    # The machine is shared: the load average says how much of it the run really had.
    summary["load_average_1m"] = round(os.getloadavg()[0], 2)
    return summary


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def summarise(results: Results, elapsed: float) -> dict:
    reads = [v for op, vals in results.latencies.items() if op != "record_intake" for v in vals]
    intake = results.latencies.get("record_intake", [])
    table = {}
    for op, vals in sorted(results.latencies.items()):
        table[op] = {
            "requests": len(vals), "per_s": round(len(vals) / elapsed, 1),
            "p50_ms": _ms(percentile(vals, 50)), "p95_ms": _ms(percentile(vals, 95)),
            "p99_ms": _ms(percentile(vals, 99)), "statuses": dict(results.statuses[op]),
        }
    return {
        "elapsed_s": round(elapsed, 1),
        "read_requests_per_s": round(len(reads) / elapsed, 1),
        "read_p50_ms": _ms(percentile(reads, 50)),
        "read_p95_ms": _ms(percentile(reads, 95)),
        "read_p99_ms": _ms(percentile(reads, 99)),
        "intake_records_per_s": round(results.accepted_records / elapsed),
        "intake_p95_ms": _ms(percentile(intake, 95)),
        "accepted_records": results.accepted_records,
        "server_errors": sum(c for s in results.statuses.values() for code, c in s.items() if code >= 500),
        "transport_errors": len(results.errors),
        "operations": table,
    }


def print_summary(summary: dict) -> None:
    if summary["operations"]:
        print(f"\n{'operation':<15} {'requests':>9} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}  statuses")
    for op, row in summary["operations"].items():
        print(f"{op:<15} {row['requests']:>9} {row['per_s']:>8} {row['p50_ms']:>8} {row['p95_ms']:>8} "
              f"{row['p99_ms']:>8}  {row['statuses']}")
    reads = (f"reads ({summary['generator']}): {summary['read_requests_per_s']} req/s, p50 {summary['read_p50_ms']} ms, "
             f"p95 {summary['read_p95_ms']} ms, p99 {summary['read_p99_ms']} ms; ") if summary["generator"] else ""
    print(f"\n{reads}intake: "
          f"{summary['intake_records_per_s']} records/s ({summary['accepted_records']} accepted"
          f"{', ' + str(summary['forwarded_records_per_s']) + ' records/s forwarded' if 'forwarded_records_per_s' in summary else ''}); "
          f"5xx: {summary['server_errors']}, reads answered outside 2xx/3xx (wrk): {summary.get('read_non_2xx', '-')}, "
          f"transport errors: {summary['transport_errors']}; "
          f"machine load average {summary.get('load_average_1m')}")


@contextlib.contextmanager
def forwarding(*, paused: bool):
    """Forwarding paused (or not) for the block, through the pause a DIG outage sets; yields a
    dict that holds, after the block, how many records were sent to DIG during it."""
    from django.utils import timezone

    from ingestion.models import DeviceRecord, ForwarderState

    counted: dict = {}
    sent_before = DeviceRecord.objects.filter(status=DeviceRecord.Status.SENT).count()
    if paused:
        ForwarderState.objects.filter(pk=ForwarderState.current().pk).update(
            paused_until=timezone.now() + timedelta(hours=1), pause_reason="load proof: intake measured alone")
    try:
        yield counted
    finally:
        if paused:
            ForwarderState.objects.filter(pk=ForwarderState.current().pk).update(paused_until=None, pause_reason="")
        counted["sent"] = DeviceRecord.objects.filter(status=DeviceRecord.Status.SENT).count() - sent_before


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run (not the record)")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--intake-clients", type=int, default=10, help="of --clients, posting in phase 2")
    parser.add_argument("--duration", type=float, default=None, help="seconds per phase (default 45; quick 8)")
    parser.add_argument("--batch", type=int, default=1000, help="records per intake POST")
    parser.add_argument("--devices", type=int, default=5000)
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--web-workers", type=int, default=4, help="gunicorn processes (2 per core measured best)")
    parser.add_argument("--web-threads", type=int, default=1,
                        help="threads per gunicorn process (1: sync workers, requests queue fairly at accept; "
                             "more: gthread)")
    parser.add_argument("--vendor-workers", type=int, default=2,
                        help="gunicorn processes serving the simulated vendors (0: the portal's own)")
    parser.add_argument("--python-readers", action="store_true", help="read with Python threads even if wrk is there")
    args = parser.parse_args()
    duration = args.duration or (8 if args.quick else 45)
    devices = 500 if args.quick else args.devices
    orders = 20 if args.quick else args.orders
    use_wrk = not args.python_readers and shutil.which("wrk") is not None
    if not use_wrk and not args.python_readers:
        print("load: wrk is not installed (scripts/install-load-tools.sh); reading with Python threads, "
              "whose own CPU and GIL queueing inflate the read latencies")

    # No database proxy here: the figures are for the real path, gunicorn → PostgreSQL.
    with Stack(workers=2, web_workers=args.web_workers, web_threads=args.web_threads, use_proxy=False,
               vendor_workers=args.vendor_workers) as stack:
        print(f"load: stack up at {stack.url} (PostgreSQL db {stack.db_name}, redis :{stack.redis_port})")
        data = seed(stack, devices=devices, orders=orders)
        print(f"load: {len(data.device_ids)} devices, {len(data.order_ids)} orders", flush=True)
        # Enough bodies for a posting phase never to run dry at twice the target rate.
        per_phase = int(duration * INTAKE_TARGET_PER_S * 2 / args.batch) + args.clients
        phases = {}
        # 1: every client reads. 2: some of them post record batches instead: how much intake the
        # portal takes while it keeps serving reads, and what that does to reads. 3: every client
        # posts while forwarding is paused (as in a DIG outage: the outbox absorbs), so the
        # figure is the web tier's intake under concurrency, which is what the DIG intake target
        # is about; deployed, the forwarders run on worker machines. 4: the same with the two
        # forwarders and the DIG simulator at work on these same 2 cores: the whole pipeline.
        plan = [
            ("reads", args.clients, 0, f"{args.clients} clients reading"),
            ("mixed", args.clients - args.intake_clients, args.intake_clients,
             f"{args.clients - args.intake_clients} clients reading, {args.intake_clients} posting "
             f"{args.batch}-record batches"),
            ("intake", 0, args.clients, f"{args.clients} clients posting {args.batch}-record batches, "
                                        "forwarding paused"),
            ("pipeline", 0, args.clients, f"{args.clients} clients posting {args.batch}-record batches, "
                                          "forwarding to the DIG simulator at the same time"),
        ]
        # Fresh processes serve their first requests slowly (lazy imports, cold caches, the
        # planner's first plans): a short unmeasured warm-up, as load tests do.
        warm_up = 3 if args.quick else 10
        print(f"\nload: warm-up, {args.clients} clients reading for {warm_up}s (not measured)", flush=True)
        run_phase(stack.url, data, readers=args.clients, writers=0, duration=warm_up, bodies=[], use_wrk=use_wrk)
        for number, (name, readers, writers, what) in enumerate(plan, start=1):
            print(f"\nload: phase {number}, {what}, for {duration:.0f}s", flush=True)
            # Each phase's records are an hour older than the last one's: all unique, all new.
            bodies = record_bodies(data.serials, bodies=per_phase, batch=args.batch,
                                   start=datetime.now(UTC) - timedelta(hours=number)) if writers else []
            with forwarding(paused=name == "intake") as forwarded:
                phases[name] = run_phase(stack.url, data, readers=readers, writers=writers, duration=duration,
                                         bodies=bodies, use_wrk=use_wrk)
            if name == "pipeline":
                phases[name]["forwarded_records_per_s"] = round(forwarded["sent"] / phases[name]["elapsed_s"])
            print_summary(phases[name])
        (stack.log_dir.parent / "load.json").write_text(json.dumps(phases, indent=2))

    from bench.common import figure, write_results

    reads, mixed, intake, pipeline = phases["reads"], phases["mixed"], phases["intake"], phases["pipeline"]
    write_results({
        "load.read_p95_ms": figure(reads["read_p95_ms"], "ms", target=READ_P95_TARGET_MS),
        "load.read_p99_ms": figure(reads["read_p99_ms"], "ms", target=READ_P99_TARGET_MS),
        "load.read_requests_per_s": figure(reads["read_requests_per_s"], "req/s"),
        "load.intake_records_per_s": figure(intake["intake_records_per_s"], "records/s",
                                            target=INTAKE_TARGET_PER_S),
        "load.mixed_intake_records_per_s": figure(mixed["intake_records_per_s"], "records/s"),
        "load.mixed_read_p95_ms": figure(mixed["read_p95_ms"], "ms"),
        "load.pipeline_intake_records_per_s": figure(pipeline["intake_records_per_s"], "records/s"),
        "load.pipeline_forwarded_records_per_s": figure(pipeline["forwarded_records_per_s"], "records/s"),
    }, quick=args.quick)
    failures = sum(p["server_errors"] + p.get("read_non_2xx", 0) + p["transport_errors"] for p in phases.values())
    ok = (failures == 0 and reads["read_p95_ms"] < READ_P95_TARGET_MS and reads["read_p99_ms"] < READ_P99_TARGET_MS
          and intake["intake_records_per_s"] >= INTAKE_TARGET_PER_S)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
