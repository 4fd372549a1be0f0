"""Fault campaign: many provisioning intents under randomly injected faults must end with exactly
one serial per intent at the simulator, each held by exactly one Device: no orphan, no duplicate.

Size: PROVISIONING_CAMPAIGN_SIZE (default 200); seed: PROVISIONING_CAMPAIGN_SEED.
"""

import os
import random
import time
from collections import Counter

import pytest
from django.db import OperationalError
from django.utils import timezone

from devices.models import Device, ProvisioningRequest
from devices.services import provisioning as service
from devices.services import (
    provisioning_reconcile_due,
    provisioning_request_create,
    provisioning_request_process,
)
from integrations.base import MemoryRateLimiter
from portal.clients import myadmin_client
from sandbox.models import Fault
from sandbox.myadmin.models import SandboxAccount, SandboxDevice, SandboxUser

pytestmark = pytest.mark.django_db(transaction=True)
S = ProvisioningRequest.Status

SIZE = int(os.environ.get("PROVISIONING_CAMPAIGN_SIZE", "200"))
SEED = int(os.environ.get("PROVISIONING_CAMPAIGN_SEED", "20261122"))
READ_TIMEOUT = 0.3
SETTLE = 1.5
FAULTS = {
    # mode: share of intents (the rest run clean)
    "commit_then_drop": 0.07,   # executed, connection closed unanswered → unknown
    "slow": 0.07,               # executed, reply after the client's read timeout → unknown
    "server_error": 0.05,       # 500 before executing → unknown, reconciled as not executed
    "server_error_after_commit": 0.05,  # executed, then 500 → unknown
    "outage": 0.04,             # 503, nothing executed → unknown → not executed
    "rate_limit": 0.07,         # 429 → not executed, retried
    "session_expiry": 0.07,     # SessionExpiredException → re-authenticate, resend once
    "killed": 0.06,             # worker killed between MyAdmin's reply and the commit
}


class WorkerKilled(BaseException):
    """Raised by the test hook where a worker would die; not an Exception, so nothing catches it."""


def _retry_locked(fn, attempts: int = 50):
    """SQLite's shared in-memory test database locks whole tables while the simulator's thread
    writes; the campaign's own bookkeeping (not the code under test) waits for it."""
    for _ in range(attempts - 1):
        try:
            return fn()
        except OperationalError as exc:
            if "locked" not in str(exc):
                raise
            time.sleep(0.05)
    return fn()


def _pick(rng: random.Random) -> str | None:
    x = rng.random()
    for mode, share in FAULTS.items():
        if x < share:
            return mode
        x -= share
    return None


def test_fault_campaign(portal_myadmin, monkeypatch, settings):
    started = time.monotonic()
    settings.VENDOR_READ_TIMEOUT = READ_TIMEOUT
    settings.VENDOR_CONNECT_TIMEOUT = 0.2
    # A request the client gave up on may still be committing at the simulator on a busy
    # machine: the reconciler waits this long after an unknown outcome (production: 60 s).
    settings.PROVISIONING_SETTLE_SECONDS = SETTLE
    rng = random.Random(SEED)

    # Partner accounts enough that a lane closed by an unknown outcome does not stall the rest.
    accounts = [f"CAMP{i:02d}" for i in range(50)]
    user = SandboxUser.objects.get_or_create(
        username="integrator@example.com", defaults={"password": "sandbox-password"})[0]
    user.accounts.add(*(SandboxAccount.objects.get_or_create(account_id=a)[0] for a in accounts))
    # Background noise on every MyAdmin method (reads included): occasional 429s.
    Fault.objects.create(system="myadmin", mode="rate_limit", probability=0.03, retry_after_seconds=1)

    client = myadmin_client()
    client.sleep = lambda s: None  # backoff is exercised, not waited for
    client.rate_limiter = MemoryRateLimiter(sleep=lambda s: None)

    planned: dict[int, str] = {}  # intent → the fault its next MyAdmin provisioning call meets
    applied = Counter()

    def maybe_kill(req, serials):
        if planned.get(req.pk) == "killed":
            del planned[req.pk]
            applied["killed"] += 1
            raise WorkerKilled()

    monkeypatch.setattr(service, "after_vendor_reply", maybe_kill)

    def run(pk: int) -> None:
        """One worker run; the planned fault is armed for this intent's call only, and stays
        planned if the intent did not get to call (its account's lane was closed)."""
        mode = planned.get(pk)
        fault = None
        if mode is not None and mode != "killed":
            fault = _retry_locked(lambda: Fault.objects.create(
                system="myadmin", mode=mode, methods="ProvisionDeviceToAccount", remaining=1,
                delay_ms=int(READ_TIMEOUT * 1000) + 300, retry_after_seconds=1))
        try:
            provisioning_request_process(request_id=pk, client=client)
        except WorkerKilled:
            pass
        if fault is not None:
            _retry_locked(fault.refresh_from_db)
            if fault.fired:
                del planned[pk]
                applied[mode] += 1
            _retry_locked(fault.delete)

    intents = []
    for i in range(SIZE):
        req = provisioning_request_create(
            product_id=rng.choice([10032, 10032, 10184]), erp_no=accounts[i % len(accounts)],
            idempotency_key=f"campaign-{SEED}-{i}")
        intents.append(req.pk)
        mode = _pick(rng)
        if mode is not None:
            planned[req.pk] = mode
        run(req.pk)

    first_pass = time.monotonic() - started
    # Beat runs: reconcile, then workers pick up what is pending (time "passes" for backoffs),
    # until everything has settled.
    decisions = Counter()
    rounds = 0
    for rounds in range(1, 61):
        open_ids = list(ProvisioningRequest.objects.filter(status__in=ProvisioningRequest.OPEN_STATUSES)
                        .order_by("pk").values_list("pk", flat=True))
        if not open_ids:
            break
        if ProvisioningRequest.objects.filter(call_started_at__isnull=False).exists():
            time.sleep(SETTLE + READ_TIMEOUT + 0.2)  # unresolved calls become due
        decisions.update(provisioning_reconcile_due(client=client))
        ProvisioningRequest.objects.filter(status=S.PENDING).update(next_attempt_at=None)
        for pk in open_ids:
            run(pk)

    statuses = Counter(ProvisioningRequest.objects.filter(pk__in=intents).values_list("status", flat=True))
    print(f"campaign size={SIZE} seed={SEED} faults={dict(applied)} unapplied={len(planned)} reconciler={dict(decisions)} "
          f"statuses={dict(statuses)} in {time.monotonic() - started:.1f}s (first pass {first_pass:.1f}s, {rounds} rounds)")
    assert statuses == {S.SUCCEEDED: SIZE}, statuses

    sandbox_serials = list(SandboxDevice.objects.values_list("serial", flat=True))
    portal = list(Device.objects.values_list("serial", "provisioning_request_id"))
    assert len(sandbox_serials) == SIZE                       # exactly one serial minted per intent
    assert sorted(s for s, _ in portal) == sorted(sandbox_serials)  # zero orphans, zero strays
    assert sorted(r for _, r in portal) == sorted(intents)      # one Device per intent, none twice
    # The unknown paths were really exercised.
    assert decisions["attached"] >= 3 and decisions["not_executed"] >= 1
    # Nearly every planned fault met its intent's call. (On SQLite a simulator thread can wait on
    # a table lock past the client's timeout; the intent is then reconciled and retried, and its
    # re-armed fault may be consumed by that late request instead — counted as unapplied.)
    assert len(planned) <= max(2, sum(applied.values()) // 20), planned
    for mode in FAULTS:
        assert applied[mode] >= 1, mode
    executed_unknown = sum(applied[m] for m in ("commit_then_drop", "slow", "server_error_after_commit", "killed"))
    # A clean call that outlived the short read timeout on a busy machine is one more unknown.
    assert decisions["attached"] >= executed_unknown
    assert ProvisioningRequest.objects.filter(reconcile_note__startswith="Reconciled: 1 serial").exists()
    assert timezone.now()
