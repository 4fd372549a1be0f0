"""Provisioning 1,000 devices for one account: MyAdmin calls and wall time, one call per device
vs one `ProvisionDevicesBulk`, against the simulated MyAdmin with 50 ms of latency per call.

    .venv/bin/python bench/provisioning.py [--quick]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/provisioning.py

The whole portal path is measured: intent committed, call claimed under row locks, MyAdmin
called over real HTTP, serials stored with their Device rows, and the marker written into the
contracts (`UpdateDeviceContracts`, one call per run). The session is established first
(Authenticate happens once a week, not once per batch).

Rate limits are lifted for the single-call run so the figure shows the portal's own cost: with
MyAdmin's documented 550 requests/minute, 1,000 single calls cannot take less than ~109 s.
--quick runs 100 single calls and scales to 1,000.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import figure, parse_args, setup_django, timer, write_results

N = 1000
LATENCY_MS = 50
ACCOUNT = "ACME01"
NOTE = "bench:provisioning"


def _serve():
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadedWSGIServer(("127.0.0.1", 0), QuietHandler, allow_reuse_address=False)
    server.set_app(WSGIHandler())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def _run(client, *, quantity: int, use_bulk: bool) -> tuple[int, float]:
    from devices.services import (
        provisioning_request_create,
        provisioning_request_process,
    )
    from portal.models import VendorCall

    req = provisioning_request_create(product_id=10032, erp_no=ACCOUNT, quantity=quantity, use_bulk=use_bulk,
                                      note=NOTE)
    with timer() as t:
        req = provisioning_request_process(request_id=req.pk, client=client)
    assert req.status == "succeeded" and req.devices.count() == quantity, (req.status, req.last_error)
    calls = VendorCall.objects.filter(target=f"devices.ProvisioningRequest:{req.pk}").count()
    return calls, t.seconds


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    os.environ["SANDBOX_MYADMIN_RATE_PER_MINUTE"] = "10000000"
    setup_django()
    import logging

    from django.conf import settings

    logging.getLogger("sandbox.faults").setLevel(logging.WARNING)  # one line per call otherwise

    from devices.models import Device, ProvisioningRequest
    from portal.clients import myadmin_client
    from sandbox.models import Fault

    server, base = _serve()
    settings.MYADMIN_API_URL = f"{base}/sandbox/myadmin/v2/MyAdminApi.ashx"
    settings.MYADMIN_USERNAME, settings.MYADMIN_PASSWORD = "integrator@example.com", "sandbox-password"
    # The tasks are not needed: the bench drives the service itself.
    from devices.tasks import provisioning as tasks

    tasks.provisioning_request_process_task.delay = lambda *a, **k: None
    tasks.provisioning_request_process_task.apply_async = lambda *a, **k: None

    old = ProvisioningRequest.objects.filter(note=NOTE)
    Device.objects.filter(provisioning_request__in=old).delete()
    old.delete()
    Fault.objects.filter(system="myadmin").delete()
    latency = Fault.objects.create(system="myadmin", mode="latency", delay_ms=LATENCY_MS)
    try:
        client = myadmin_client()
        client.requests_per_minute = 10_000_000
        client.credential.get()  # the weekly session, outside the measurement

        bulk_calls, bulk_seconds = _run(client, quantity=N, use_bulk=True)
        single_n = 100 if args.quick else N
        single_calls, single_seconds = _run(client, quantity=single_n, use_bulk=False)
        scale = N / single_n
    finally:
        latency.delete()
        server.shutdown()

    write_results({
        "provisioning.calls_per_1000_bulk": figure(bulk_calls, "calls", target=2, baseline=round(single_calls * scale)),
        "provisioning.calls_per_1000_single": figure(round(single_calls * scale), "calls"),
        "provisioning.seconds_per_1000_bulk": figure(round(bulk_seconds, 2), "s",
                                                      baseline=round(single_seconds * scale, 1)),
        "provisioning.seconds_per_1000_single": figure(round(single_seconds * scale, 1), "s"),
    }, quick=args.quick)


if __name__ == "__main__":
    main()
