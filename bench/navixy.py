"""Navixy tracker registration benchmark (run on PostgreSQL for the recorded figures).

    .venv/bin/python bench/navixy.py [--quick]

- ``navixy.validate_rows_per_s``: a bulk upload's dry run (validation of every row against the
  cached catalogues, duplicate checks inside the file); the baseline loads the catalogues for
  each row, as a per-row form would.
- ``navixy.register_per_s``: trackers registered end to end through the service (lease, intent,
  `tracker/register`, attach) against the simulator served by gunicorn on a loopback port; the
  client's own limit (40/s sustained, under Navixy's 50/s) is the ceiling.
- ``navixy.duplicates_under_faults``: Navixy trackers created twice when 15 % of register calls
  answer HTTP 500 after committing and 10 % fail before executing (target 0).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import figure, parse_args, setup_django, timer, write_results

ROOT = Path(__file__).resolve().parent.parent


def luhn_imei(prefix14: str) -> str:
    total = 0
    for i, ch in enumerate(prefix14):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return prefix14 + str((10 - total % 10) % 10)


def _serve():
    import requests

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, SANDBOX="1", PORT=str(port), PORTAL_BASE_URL=f"http://127.0.0.1:{port}")
    proc = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "gunicorn"), "portal.wsgi", "--bind", f"127.0.0.1:{port}",
         "--workers", "2", "--threads", "2", "--timeout", "120", "--log-level", "warning"],
        cwd=ROOT, env=env,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            requests.post(f"{base}/sandbox/navixy/api-v2/plugin/list", json={}, timeout=5)
            return proc, base
        except requests.RequestException:
            time.sleep(0.3)
    proc.terminate()
    raise RuntimeError("gunicorn did not start")


def _reset():
    from devices.models import NavixyGroup, NavixyModel, NavixyPlugin, Tracker
    from sandbox.models import Fault
    from sandbox.navixy.models import (
        SimActivationCode,
        SimGroup,
        SimModel,
        SimPlugin,
        SimSession,
        SimTracker,
        SimUser,
    )

    for model in (Tracker, NavixyGroup, NavixyModel, NavixyPlugin, SimTracker, SimGroup, SimSession, SimUser,
                  SimModel, SimPlugin, SimActivationCode):
        model.objects.all().delete()
    Fault.objects.filter(system="navixy").delete()


def _rows(n: int, start: int = 0) -> list[tuple[int, dict]]:
    return [(i + 2, {"label": f"Bench {start + i:06d}", "plugin_id": 44, "model_code": "telfmb140",
                     "device_id": luhn_imei(f"35693804{start + i:06d}"), "phone": f"4915113{start + i:06d}",
                     "apn_name": "internet"}) for i in range(n)]


def main() -> int:
    args = parse_args("Navixy tracker registration benchmark")
    setup_django()
    from django.conf import settings

    from devices.models import Tracker
    from devices.services import trackers as svc
    from sandbox.models import Fault
    from sandbox.navixy.models import SimTracker

    n_rows = 500 if args.quick else 5000
    n_register = 40 if args.quick else 300
    n_faults = 40 if args.quick else 200

    _reset()
    server, base = _serve()
    try:
        settings.NAVIXY_API_URL = f"{base}/sandbox/navixy/api-v2"
        settings.NAVIXY_API_KEY = ""
        settings.NAVIXY_LOGIN, settings.NAVIXY_PASSWORD = "integrator@example.com", "sandbox-password"
        svc.navixy_catalogue_refresh()

        rows = _rows(n_rows)
        with timer() as t:
            results = svc.tracker_bulk_import(rows=rows, dry_run=True)
        assert all(r.ok for r in results), [r for r in results if not r.ok][:3]
        validate_rate = n_rows / t.seconds
        sample = rows[:200]
        with timer() as t:
            for _, values in sample:
                svc.tracker_validate(data=values, catalogue=svc.Catalogue.load())
        baseline_rate = len(sample) / t.seconds

        # Registration throughput; the task body runs inline (no broker), as one worker would.
        import devices.tasks.trackers as tasks

        tasks.tracker_register_task.delay = lambda pk: None
        created = [svc.tracker_create(data=values) for _, values in _rows(n_register, start=100000)]
        with timer() as t:
            for tracker in created:
                assert svc.tracker_register(tracker_id=tracker.pk) == svc.Outcome.REGISTERED
        register_rate = n_register / t.seconds

        # Under faults: every tracker ends registered exactly once.
        Fault.objects.create(system="navixy", mode="server_error_after_commit", methods="tracker/register",
                             probability=0.15)
        Fault.objects.create(system="navixy", mode="server_error", methods="tracker/register", probability=0.10)
        faulty = [svc.tracker_create(data=values) for _, values in _rows(n_faults, start=200000)]
        for _round in range(12):
            pending = list(Tracker.objects.filter(pk__in=[t.pk for t in faulty], state="registering")
                           .values_list("pk", flat=True))
            if not pending:
                break
            for pk in pending:
                svc.tracker_register(tracker_id=pk)
        Fault.objects.filter(system="navixy").update(active=False)
        remote = SimTracker.objects.filter(label__startswith="Bench 2").count()
        registered = Tracker.objects.filter(pk__in=[t.pk for t in faulty], state="registered").count()
        duplicates = remote - registered
    finally:
        server.terminate()
        server.wait(30)

    write_results({
        "navixy.validate_rows_per_s": figure(round(validate_rate), "rows/s", target=2000,
                                             baseline=round(baseline_rate)),
        "navixy.register_per_s": figure(round(register_rate, 1), "trackers/s", target=10, baseline=40),
        "navixy.duplicates_under_faults": figure(duplicates, "trackers", target=0, baseline=None),
        "navixy.registered_under_faults": figure(registered, f"of {n_faults}", target=n_faults, baseline=None),
    }, quick=args.quick)
    return 0 if duplicates == 0 and registered == n_faults else 1


if __name__ == "__main__":
    raise SystemExit(main())
