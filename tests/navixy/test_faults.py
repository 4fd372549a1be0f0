"""Fault campaign: registrations under dropped answers and 5xx (before and after the platform
committed) end with exactly one Navixy tracker per portal tracker and no duplicates.

Size: NAVIXY_FAULT_TRACKERS (default 100); a fifth of them are mobile-app registrations, which
have no device ID to collide on and so rely entirely on the lookup-before-resend rule."""

import os
import time
from collections import Counter

import pytest

from devices.models import Tracker
from devices.services import trackers as svc
from portal.models import VendorCall
from sandbox.models import Fault

from .conftest import luhn_imei
from .test_registration import sim_trackers

# Flush only the tables these tests touch (cheaper than a full flush after each test).
pytestmark = pytest.mark.django_db(transaction=True, available_apps=[
    "django.contrib.contenttypes", "django.contrib.auth", "portal", "devices", "sandbox", "sandbox.navixy"])

N = int(os.environ.get("NAVIXY_FAULT_TRACKERS", "100"))


def test_registration_campaign_with_drops_and_5xx(catalogue, enqueued, navixy_api_url, fault):
    trackers = []
    for i in range(N):
        if i % 5 == 4:
            data = {"label": f"App user {i:04d}", "plugin_id": 35, "model_code": "mobile_unknown_xgps"}
        else:
            data = {"label": f"Truck {i:04d}", "plugin_id": 44, "model_code": "telfmb140",
                    "device_id": luhn_imei(f"35693803{i:06d}"), "phone": f"4915112{i:06d}", "apn_name": "internet"}
        trackers.append(svc.tracker_create(data=data))
    # Each mode is drawn per request; drops cost one read timeout each, so they stay rarer.
    fault("commit_then_drop", "tracker/register", probability=0.08, delay_ms=3000)
    fault("server_error_after_commit", "tracker/register", probability=0.15)
    fault("server_error", "tracker/register,tracker/list", probability=0.1)

    started = time.monotonic()
    outcomes = Counter()
    for _round in range(12):
        pending = list(Tracker.objects.filter(state=Tracker.State.REGISTERING).values_list("pk", flat=True))
        if not pending:
            break
        for pk in pending:
            outcomes[svc.tracker_register(tracker_id=pk)] += 1
    elapsed = time.monotonic() - started
    Fault.objects.update(active=False)

    fired = dict(Fault.objects.values_list("mode", "fired"))
    assert fired["commit_then_drop"] > 0 and fired["server_error_after_commit"] > 0 and fired["server_error"] > 0
    assert outcomes[svc.Outcome.UNKNOWN] > 0

    states = Counter(Tracker.objects.values_list("state", flat=True))
    assert states == {"registered": N}, states
    remote = sim_trackers(navixy_api_url)
    assert len(remote) == N, "a Navixy tracker was created twice (or lost)"
    assert len({t.device_id for t in remote}) == N
    portal_ids = set(Tracker.objects.values_list("navixy_tracker_id", flat=True))
    assert portal_ids == {t.id for t in remote}
    # Every resend after an unknown outcome was preceded by a lookup.
    assert VendorCall.objects.filter(method="tracker/list").exists()
    print(f"\n{N} registrations under faults in {elapsed:.1f}s; outcomes {dict(outcomes)}; faults fired {fired}")
