"""MyGeotab benchmark: adding devices to a customer database, and the readiness round.

Runs the sandbox in-process on a threaded HTTP server (real HTTP, real `mygeotab` SDK) and
measures:

- ``mygeotab.add_device_ms``: median time of ``device_add_to_database`` per device (look-up by
  serial + Add + recording the id and history), baseline: a bare SDK ``API.add`` on the same
  server (the cost of the portal's wrapper, idempotency look-up and ledger);
- ``mygeotab.readiness_devices_per_s``: devices checked per second by ``devices_refresh_readiness``
  with batched ``GetDeviceDatabaseNamesAsync`` (500 serials a call), baseline: one serial per call.

Targets: 500 ms per add keeps the admin's synchronous limit (50 devices) under half a minute;
100 devices/s lets one beat round check Geotab's adapter-sized 5000 serials within its soft time
limit (120 s).

    .venv/bin/python bench/mygeotab_assets.py [--quick] [--devices N]

(Not bench/mygeotab.py: a script of that name would shadow the `mygeotab` SDK package.)
"""

from __future__ import annotations

import os
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import figure, parse_args, setup_django, timer, write_results


def _serve():
    """The portal (with its sandbox) on a free loopback port, in a daemon thread."""
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadedWSGIServer(("127.0.0.1", 0), QuietHandler, allow_reuse_address=False)
    server.set_app(WSGIHandler())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def main() -> None:
    args = parse_args(__doc__, devices={"type": int, "default": None, "help": "devices in the readiness round"})
    # The bench database's own key (it holds only the sandbox's demo password).
    os.environ.setdefault("FIELD_ENCRYPTION_KEYS", "YmVuY2gta2V5LWJlbmNoLWtleS1iZW5jaC1rZXktMDE=")
    setup_django()
    from django.conf import settings
    from mygeotab import API

    from devices.models import CustomerDatabase, Device
    from devices.services.databases import (
        device_add_to_database,
        devices_refresh_readiness,
    )
    from devices.tasks.databases import devices_refresh_readiness_task
    from integrations.base import MemoryRateLimiter, MemoryTokenStore
    from integrations.myadmin import MyAdminClient
    from sandbox.myadmin.models import SandboxAccount, SandboxDevice
    from sandbox.myadmin.seed import ensure_seeded as myadmin_seed
    from sandbox.mygeotab.models import SandboxDatabase
    from sandbox.mygeotab.seed import DEMO_DATABASES
    from sandbox.mygeotab.seed import ensure_seeded as mygeotab_seed

    # No worker reads the bench database: keep the follow-up readiness tasks out of the broker.
    devices_refresh_readiness_task.delay_on_commit = lambda **kwargs: None
    settings.ALLOWED_HOSTS = ["*"]
    server, base = _serve()
    myg_url = f"{base}/sandbox/mygeotab/apiv1"
    mygeotab_seed()
    myadmin_seed()
    name, user, password = DEMO_DATABASES[0]
    # Lift the sandbox's per-minute write limit: this measures the portal, not the quota.
    SandboxDatabase.objects.filter(name=name).update(write_per_minute=1_000_000, read_per_minute=1_000_000)
    run = uuid.uuid4().hex[:6].upper()
    erp = f"BENCH{run}"
    database, _ = CustomerDatabase.objects.get_or_create(
        server=myg_url, database=name, defaults={"username": user, "password": password})
    database.accounts.get_or_create(erp_no=erp)

    adds = 20 if args.quick else 100
    # Serial space per run: "CX" + 4 run chars + 6 digits, never reused across runs.
    prefix = f"CX{run[:4]}"
    devices = [Device.objects.create(serial=f"{prefix}{i:06d}", product_id=10032, product_type="CustomDevice",
                                     erp_no=erp) for i in range(adds)]
    timings = []
    for device in devices:
        with timer() as t:
            result = device_add_to_database(device=device, database=database)
            if result.retryable:  # e.g. SQLite busy under a concurrent bench: the add is idempotent
                result = device_add_to_database(device=device, database=database)
        assert result.ok, result.message
        timings.append(t.seconds * 1000)
    portal_ms = statistics.median(timings)

    api = API(user, password=password, database=name, server=myg_url, timeout=10)
    api.authenticate()
    raw = []
    for i in range(adds):
        t0 = time.perf_counter()
        api.add("Device", {"serialNumber": f"CX{run[:3]}S{i:06d}", "name": "bench",
                           "groups": [{"id": "GroupCompanyId"}]})
        raw.append((time.perf_counter() - t0) * 1000)
    sdk_ms = statistics.median(raw)

    # Readiness: N provisioned devices already in a database (MyAdmin side), none known as ready.
    n = args.devices or (200 if args.quick else 2000)
    # On a demo account of the MyAdmin user: MyAdmin answers only for devices the user can see.
    account = SandboxAccount.objects.get(account_id="ACME01")
    serials = [f"CX{run[:3]}R{i:06d}" for i in range(n)]
    SandboxDevice.objects.bulk_create(
        [SandboxDevice(serial=s, product_id=10032, account=account, database_name=name) for s in serials])
    Device.objects.bulk_create([Device(serial=s, product_id=10032, product_type="CustomDevice", erp_no=erp)
                                for s in serials])
    myadmin = MyAdminClient(f"{base}/sandbox/myadmin/v2/MyAdminApi.ashx", settings.MYADMIN_USERNAME,
                            settings.MYADMIN_PASSWORD, token_store=MemoryTokenStore(),
                            rate_limiter=MemoryRateLimiter(), read_timeout=60, requests_per_minute=100_000)
    ids = list(Device.objects.filter(serial__in=serials).values_list("pk", flat=True))
    with timer() as t:
        result = devices_refresh_readiness(device_ids=ids, myadmin=myadmin)
    assert len(result.became_ready) == n, (len(result.became_ready), n)
    batched_rate = n / t.seconds

    sample = serials[:50] if not args.quick else serials[:20]
    Device.objects.filter(serial__in=sample).update(ready_for_data_at=None, database_name="")
    sample_ids = list(Device.objects.filter(serial__in=sample).values_list("pk", flat=True))
    with timer() as t1:
        one = devices_refresh_readiness(device_ids=sample_ids, myadmin=myadmin, batch_size=1)
    assert len(one.became_ready) == len(sample)
    single_rate = len(sample) / t1.seconds
    server.shutdown()

    write_results({
        "mygeotab.add_device_ms": figure(round(portal_ms, 1), "ms", target=500, baseline=round(sdk_ms, 1)),
        "mygeotab.readiness_devices_per_s": figure(round(batched_rate), "devices/s", target=100,
                                                   baseline=round(single_rate)),
    }, quick=args.quick)


if __name__ == "__main__":
    main()
