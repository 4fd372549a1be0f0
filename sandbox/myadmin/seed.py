"""Demo data, created lazily and idempotently: tests flush tables, so every view calls
``ensure_seeded()`` and a fresh database still has the demo user, accounts and reasons."""

from django.conf import settings
from django.db import IntegrityError, transaction

from sandbox.myadmin.models import SandboxAccount, SandboxTerminationReason, SandboxUser

DEMO_USERNAME = "integrator@example.com"
DEMO_PASSWORD = "sandbox-password"
DEMO_ACCOUNTS = ("INTEG01", "ACME01", "FLEETCO")
# A second user with one account, to exercise "an account you cannot provision to".
OTHER_USERNAME = "other@example.com"
OTHER_ACCOUNTS = ("OTHER01",)
TERMINATION_REASONS = (
    (1, "Customer cancelled"),
    (2, "Device lost or stolen"),
    (3, "Device replaced (RMA)"),
    (4, "Non-payment"),
    (5, "Vehicle sold"),
    (6, "Other"),
)


def ensure_seeded() -> None:
    if SandboxUser.objects.filter(username=_demo_username()).exists() and SandboxTerminationReason.objects.exists():
        return
    try:
        with transaction.atomic():
            _seed()
    except IntegrityError:
        pass  # a concurrent request seeded first


def _demo_username() -> str:
    return getattr(settings, "MYADMIN_USERNAME", "") or DEMO_USERNAME


def _seed() -> None:
    accounts = {a: SandboxAccount.objects.get_or_create(account_id=a)[0] for a in DEMO_ACCOUNTS + OTHER_ACCOUNTS}
    for username, password, account_ids in (
        (_demo_username(), getattr(settings, "MYADMIN_PASSWORD", "") or DEMO_PASSWORD, DEMO_ACCOUNTS),
        (OTHER_USERNAME, DEMO_PASSWORD, OTHER_ACCOUNTS),
    ):
        user, _ = SandboxUser.objects.get_or_create(username=username, defaults={"password": password})
        user.accounts.add(*(accounts[a] for a in account_ids))
    for sort_id, (reason_id, name) in enumerate(TERMINATION_REASONS):
        SandboxTerminationReason.objects.get_or_create(reason_id=reason_id, defaults={"name": name, "sort_id": sort_id})
