"""Fault campaign: while load runs and staff-like operations (provisioning, terminations) go on,
break the infrastructure and the vendors one way after another, then check the invariants.

    .venv/bin/python proof/faults.py [--quick]

Faults, in order (each on processes this script started: see proof/stack.py):
  1. every Celery worker SIGKILLed mid-work, restarted a few seconds later;
  2. Redis (the broker) killed and restarted empty;
  3. PostgreSQL refuses connections for a few seconds (proxy in front of it);
  4. sandbox outage (503) of MyAdmin and DIG;
  5. sandbox 429 storm (MyAdmin, DIG);
  6. sandbox commit-then-drop: the vendor executes, the answer never arrives.

Invariants checked afterwards (after a bounded drain in which the compressed beat schedule
lets reconcilers and sweepers run):
  - no serial minted twice: MyAdmin (sandbox) minted no more serials than were requested, every
    minted serial is attached to exactly one portal device, or its request is escalated;
  - no accepted record lost: every record the API accepted is stored and reaches DIG;
  - no termination applied twice: at most one executed-or-unknown TerminateDeviceBilling per
    device, at most one applied termination per device;
  - every unknown outcome resolved or escalated: no provisioning request or termination left
    pending / in flight / unknown;
  - the portal serves again within 30 s of each fault ending.
Writes `faults.*` figures (bench/common.py) and var/proof/faults.json; exits 1 on a violation.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from proof.load import _connection, _request, record_bodies, seed
from proof.stack import Stack

RECOVERY_TARGET_S = 30
PROBE_INTERVAL_S = 0.25
# Partner accounts the MyAdmin sandbox seeds for the portal's user. Requests are spread over
# them: the portal works one unresolved call per account at a time (its "lane").
PROVISION_ACCOUNTS = ("INTEG01", "ACME01", "FLEETCO")


@dataclass
class Fault:
    name: str
    started: float = 0.0
    ended: float = 0.0
    recovery_s: float | None = None
    note: str = ""


@dataclass
class Campaign:
    stack: Stack
    data: object
    stop: threading.Event = field(default_factory=threading.Event)
    probes: list = field(default_factory=list)  # (monotonic time, ok)
    accepted: int = 0
    duplicates: int = 0
    intake_statuses: collections.Counter = field(default_factory=collections.Counter)
    ops: collections.Counter = field(default_factory=collections.Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)
    faults: list[Fault] = field(default_factory=list)
    to_terminate: list[int] = field(default_factory=list)
    reason_id: int | None = None

    # ------------------------------------------------------------------ background work
    def probe(self) -> None:
        """The availability signal: an authenticated API read, 4 times a second."""
        token = self.data.tokens["viewer"]
        conn = _connection(self.stack.url)
        conn.timeout = 5
        while not self.stop.is_set():
            ok = False
            try:
                status, _, _ = _request(conn, "GET", "/api/v1/devices/?page_size=1", token)
                ok = status == 200
            except Exception:  # noqa: BLE001 — any failure is "not serving"
                conn.close()
                conn = _connection(self.stack.url)
                conn.timeout = 5
            self.probes.append((time.monotonic(), ok))
            time.sleep(PROBE_INTERVAL_S)

    def intake(self, bodies: collections.deque) -> None:
        token = self.data.tokens["admin"]
        conn = _connection(self.stack.url)
        body = None
        while not self.stop.is_set():
            if body is None:
                try:
                    body = bodies.popleft()
                except IndexError:
                    return
            try:
                status, payload, _ = _request(conn, "POST", "/api/v1/records/", token, body)
            except Exception:  # noqa: BLE001 — the same body is sent again: repeats are stored once
                conn.close()
                conn = _connection(self.stack.url)
                with self.lock:
                    self.intake_statuses["transport_error"] += 1
                time.sleep(0.5)
                continue
            with self.lock:
                self.intake_statuses[status] += 1
            if status == 202:
                answer = json.loads(payload)
                with self.lock:
                    self.accepted += answer["accepted"] - answer["duplicates"]
                    self.duplicates += answer["duplicates"]
                body = None
            elif status >= 500 or status == 429:
                time.sleep(0.5)  # the client's retry: same body, same records
            else:
                body = None
            time.sleep(0.05)

    def provision(self, conn, n: int) -> int:
        body = {"product_id": 10032, "quantity": 1, "note": f"fault campaign #{n}",
                "erp_no": PROVISION_ACCOUNTS[n % len(PROVISION_ACCOUNTS)]}
        status, _, _ = _request(conn, "POST", "/api/v1/provisioning-requests/", self.data.tokens["billing"],
                                json.dumps(body).encode())
        with self.lock:
            self.ops[f"provision {status}"] += 1
        return status

    def operations(self, *, provisions: int) -> None:
        """Staff-like billable work through the API while the faults happen: new provisioning
        requests every few seconds (terminations are sent inside the vendor faults)."""
        conn = _connection(self.stack.url)
        made = 0
        while not self.stop.is_set() and made < provisions:
            try:
                if self.provision(conn, 1000 + made) in (200, 201, 202):
                    made += 1
            except Exception as exc:  # noqa: BLE001 — an outage: count it and go on
                with self.lock:
                    self.ops[f"error {type(exc).__name__}"] += 1
                conn.close()
                conn = _connection(self.stack.url)
            time.sleep(3.0)

    def terminate_one(self) -> None:
        """A billing user terminates one of the devices minted before the faults, while the
        current vendor fault is on (the call meets the outage, the 429 or the dropped reply)."""
        if not self.to_terminate or self.reason_id is None:
            return
        device = self.to_terminate.pop(0)
        body = {"device": device, "reason_id": self.reason_id, "comments": "fault campaign"}
        conn = _connection(self.stack.url)
        try:
            status, _, _ = _request(conn, "POST", "/api/v1/terminations/", self.data.tokens["billing"],
                                    json.dumps(body).encode())
            key = f"terminate {status}"
        except Exception as exc:  # noqa: BLE001
            key = f"terminate error {type(exc).__name__}"
        conn.close()
        with self.lock:
            self.ops[key] += 1

    def warm_up_devices(self, count: int, *, timeout: float) -> list[int]:
        """Mint `count` devices before the faults (one per partner account, so they run in
        parallel lanes): the terminations sent during the faults need real MyAdmin serials."""
        from devices.models import Device

        conn = _connection(self.stack.url)
        for n in range(count):
            self.provision(conn, n)
        conn.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ids = list(Device.objects.filter(provisioning_request__isnull=False).values_list("pk", flat=True))
            if len(ids) >= count:
                return ids
            time.sleep(2)
        return list(Device.objects.filter(provisioning_request__isnull=False).values_list("pk", flat=True))

    # ------------------------------------------------------------------ faults
    def sandbox_fault(self, **fault) -> None:
        conn = _connection(self.stack.url)
        status, payload, _ = _request(conn, "POST", "/sandbox/faults/", self.data.tokens["admin"],
                                      json.dumps(fault).encode())
        conn.close()
        if status != 201:
            raise RuntimeError(f"sandbox refused fault {fault}: {status} {payload[:200]!r}")

    def clear_sandbox_faults(self) -> None:
        conn = _connection(self.stack.url)
        _request(conn, "DELETE", "/sandbox/faults/", self.data.tokens["admin"])
        conn.close()

    def run_fault(self, name: str, action) -> Fault:
        fault = Fault(name)
        fault.started = time.monotonic()
        print(f"faults: {name} ...", flush=True)
        fault.note = action() or ""
        fault.ended = time.monotonic()
        deadline = fault.ended + RECOVERY_TARGET_S * 3
        while time.monotonic() < deadline:
            ok_after = [t for t, ok in list(self.probes) if ok and t >= fault.ended]
            if ok_after:
                fault.recovery_s = round(max(0.0, ok_after[0] - fault.ended), 2)
                break
            time.sleep(PROBE_INTERVAL_S)
        print(f"faults: {name} over; serving again after {fault.recovery_s} s", flush=True)
        self.faults.append(fault)
        return fault


def compress_beat_schedule(seconds: int) -> None:
    """The proof runs the production beat schedule faster: every interval entry longer than
    `seconds` runs every `seconds`, so reconcilers and sweepers act within the drain window."""
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    fast, _ = IntervalSchedule.objects.get_or_create(every=seconds, period=IntervalSchedule.SECONDS)
    for task in PeriodicTask.objects.filter(interval__isnull=False).select_related("interval"):
        if task.interval.period != IntervalSchedule.SECONDS or task.interval.every > seconds:
            task.interval = fast
            task.save()
    PeriodicTask.objects.update(last_run_at=None)


# ---------------------------------------------------------------------------- invariants
def check_invariants(campaign: Campaign, *, started_at) -> dict[str, dict]:
    from django.db.models import Count, Q

    from devices.models import Device, ProvisioningRequest
    from ingestion.models import DeviceRecord
    from portal.models import VendorCall

    results: dict[str, dict] = {}

    # 1. No serial minted twice.
    from sandbox.myadmin.models import SandboxDevice

    minted = set(SandboxDevice.objects.filter(created_at__gte=started_at).values_list("serial", flat=True))
    requests = ProvisioningRequest.objects.filter(created_at__gte=started_at)
    requested = sum(requests.values_list("quantity", flat=True))
    attached = set(Device.objects.filter(serial__in=minted).values_list("serial", flat=True))
    orphans = minted - attached
    escalated_qty = sum(requests.filter(status=ProvisioningRequest.Status.NEEDS_STAFF)
                        .values_list("quantity", flat=True))
    results["no_serial_minted_twice"] = {
        "ok": len(minted) <= requested and len(orphans) <= escalated_qty,
        "requests": requests.count(), "requested": requested, "minted": len(minted),
        "attached": len(attached), "unattached": len(orphans), "escalated_quantity": escalated_qty,
    }

    # 2. No accepted record lost (stored, then delivered to DIG: the simulator keeps one row per
    #    serial, type and DateTime, as DIG does).
    from proof.load import SERIAL_PREFIX
    from sandbox.dig.models import DigRecord

    stored = DeviceRecord.objects.filter(serial__startswith=SERIAL_PREFIX)
    by_status = dict(stored.values_list("status").annotate(n=Count("id")))
    delivered = DigRecord.objects.filter(serial__startswith=SERIAL_PREFIX).count()
    total = sum(by_status.values())
    results["no_accepted_record_lost"] = {
        "ok": total >= campaign.accepted and by_status.get("sent", 0) == total and delivered >= total,
        "accepted_by_api": campaign.accepted, "stored": total, "by_status": by_status,
        "delivered_to_dig": delivered,
        # Records the client saw refused (5xx) but that were stored anyway: its retry found them
        # as duplicates. Not a loss, but the client was told the wrong thing.
        "stored_although_answered_5xx": campaign.duplicates,
    }

    # 3. No termination applied twice.
    executed = Q(outcome__in=[VendorCall.Outcome.OK, VendorCall.Outcome.UNKNOWN])
    per_target = (VendorCall.objects.filter(executed, method="TerminateDeviceBilling", started_at__gte=started_at)
                  .values("target").annotate(n=Count("id")).filter(n__gt=1))
    twice = list(per_target.values_list("target", "n"))
    applied_twice = []
    try:
        from devices.models import Termination

        applied_twice = list(Termination.objects.filter(status=Termination.Status.APPLIED)
                             .values("device").annotate(n=Count("id")).filter(n__gt=1)
                             .values_list("device", "n"))
    except ImportError:
        pass
    terminate_calls = VendorCall.objects.filter(method="TerminateDeviceBilling", started_at__gte=started_at).count()
    results["no_termination_applied_twice"] = {
        "ok": not twice and not applied_twice, "terminate_calls": terminate_calls,
        "targets_called_twice": twice, "devices_applied_twice": applied_twice,
    }

    # 4. Every unknown outcome resolved or escalated.
    open_requests = dict(requests.filter(status__in=ProvisioningRequest.OPEN_STATUSES)
                         .values_list("status").annotate(n=Count("id")))
    open_terminations = {}
    try:
        from devices.models import Termination

        open_terminations = dict(
            Termination.objects.filter(created_at__gte=started_at, status__in=[
                Termination.Status.PENDING, Termination.Status.UNKNOWN_OUTCOME])
            .values_list("status").annotate(n=Count("id")))
    except ImportError:
        pass
    unknown_calls = VendorCall.objects.filter(outcome=VendorCall.Outcome.UNKNOWN, started_at__gte=started_at)
    results["unknown_outcomes_resolved_or_escalated"] = {
        "ok": not open_requests and not open_terminations,
        "unknown_calls": dict(unknown_calls.values_list("method").annotate(n=Count("id"))),
        "open_provisioning_requests": open_requests, "open_terminations": open_terminations,
        "escalated_requests": requests.filter(status=ProvisioningRequest.Status.NEEDS_STAFF).count(),
    }

    # 5. Serving again within 30 s of each fault.
    slow = [f.name for f in campaign.faults if f.recovery_s is None or f.recovery_s > RECOVERY_TARGET_S]
    results["serving_within_30s"] = {
        "ok": not slow, "recovery_s": {f.name: f.recovery_s for f in campaign.faults}, "too_slow": slow,
    }
    return results


def drained(campaign: Campaign, started_at) -> bool:
    checks = check_invariants(campaign, started_at=started_at)
    return all(c["ok"] for name, c in checks.items())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter faults and drain (smoke run)")
    parser.add_argument("--drain", type=float, default=None, help="max seconds to wait for invariants")
    args = parser.parse_args()
    hold = 4 if args.quick else 10  # seconds each vendor fault stays on
    gap = 4 if args.quick else 8
    drain_limit = args.drain or (120 if args.quick else 300)

    with Stack(workers=3, web_workers=2, web_threads=4) as stack:
        print(f"faults: stack up at {stack.url}; logs in {stack.log_dir}", flush=True)
        data = seed(stack, devices=200, orders=0)
        from django.utils import timezone

        compress_beat_schedule(10)
        started_at = timezone.now()
        from sandbox.myadmin.models import SandboxTerminationReason

        reason = SandboxTerminationReason.objects.order_by("sort_id", "reason_id").first()
        if reason is None:
            # The MyAdmin simulator seeds its catalogue lazily; ask it once through the portal.
            conn = _connection(stack.url)
            _request(conn, "GET", "/api/v1/terminations/reasons/", data.tokens["billing"])
            conn.close()
            reason = SandboxTerminationReason.objects.order_by("sort_id", "reason_id").first()
        campaign = Campaign(stack, data)
        minted = campaign.warm_up_devices(len(PROVISION_ACCOUNTS), timeout=90)
        print(f"faults: {len(minted)} devices minted before the faults (termination targets)", flush=True)
        campaign.to_terminate = list(minted)
        campaign.reason_id = reason.reason_id if reason else None
        bodies = collections.deque(record_bodies(data.serials, bodies=400, batch=250))
        threads = [threading.Thread(target=campaign.probe, daemon=True),
                   threading.Thread(target=campaign.intake, args=(bodies,), daemon=True),
                   threading.Thread(target=campaign.intake, args=(bodies,), daemon=True),
                   threading.Thread(target=campaign.operations, daemon=True, kwargs={
                       "provisions": 6 if args.quick else 12})]
        for t in threads:
            t.start()
        time.sleep(gap)

        def kill_workers():
            for i in range(stack.worker_count):
                stack.kill_worker(i)
            time.sleep(3)
            for i in range(stack.worker_count):
                stack.start_worker(i)

        def vendor(mode, systems, **extra):
            def action():
                for system in systems:
                    campaign.sandbox_fault(system=system, mode=mode, **extra)
                campaign.terminate_one()
                time.sleep(hold)
                campaign.clear_sandbox_faults()
            return action

        campaign.run_fault("workers SIGKILL", kill_workers)
        time.sleep(gap)
        campaign.run_fault("redis restart", lambda: stack.restart_redis(down_seconds=3))
        time.sleep(gap)
        campaign.run_fault("postgresql refuses connections", lambda: stack.refuse_database(5))
        time.sleep(gap)
        campaign.run_fault("vendor outage (503)", vendor("outage", ["myadmin", "dig"], retry_after_seconds=2))
        time.sleep(gap)
        campaign.run_fault("vendor 429 storm", vendor("rate_limit", ["myadmin", "dig"], retry_after_seconds=2))
        time.sleep(gap)
        campaign.run_fault("vendor commit-then-drop", vendor(
            "commit_then_drop", ["myadmin", "dig"], remaining=3,
            methods="ProvisionDeviceToAccount,TerminateDeviceBilling,records"))
        time.sleep(gap)

        print("faults: stopping load; draining (bounded) until the invariants hold ...", flush=True)
        campaign.stop.set()
        for t in threads:
            t.join(timeout=60)
        deadline = time.monotonic() + drain_limit
        drain_started = time.monotonic()
        while time.monotonic() < deadline and not drained(campaign, started_at):
            time.sleep(5)
        drain_s = round(time.monotonic() - drain_started, 1)
        results = check_invariants(campaign, started_at=started_at)
        summary = {
            "invariants": results, "drain_s": drain_s, "intake_statuses": dict(campaign.intake_statuses),
            "operations": dict(campaign.ops), "load_average_1m": round(os.getloadavg()[0], 2),
            "faults": [{"name": f.name, "duration_s": round(f.ended - f.started, 1),
                        "recovery_s": f.recovery_s} for f in campaign.faults],
        }
        (stack.log_dir.parent / "faults.json").write_text(json.dumps(summary, indent=2, default=str))

    print(json.dumps(summary, indent=2, default=str))
    failed = [name for name, c in results.items() if not c["ok"]]
    recoveries = [f.recovery_s for f in campaign.faults if f.recovery_s is not None]
    from bench.common import figure, write_results

    write_results({
        "faults.max_recovery_s": figure(max(recoveries) if recoveries else None, "s", target=RECOVERY_TARGET_S),
        "faults.invariants_violated": figure(len(failed), "count", target=0),
        "faults.drain_s": figure(drain_s, "s", target=drain_limit),
    }, quick=args.quick)
    print("faults: invariants " + ("all hold" if not failed else f"VIOLATED: {', '.join(failed)}"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
