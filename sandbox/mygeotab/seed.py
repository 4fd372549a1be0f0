"""Demo databases and service users of the simulated MyGeotab server.

Seeded lazily on the first request (tests flush tables) and by `manage.py sandbox_seed`.
Idempotent: get_or_create, safe under concurrent first requests thanks to the unique keys.
"""

from django.db import IntegrityError, transaction

from sandbox.mygeotab.models import SandboxDatabase, SandboxUser

DEMO_DATABASES = (
    # (database, service user, password) — sandbox-only demo credentials, documented in the README (MyGeotab section).
    ("demo_fleet", "svc-portal@demo-fleet.example", "demo-fleet-password"),
    ("other_fleet", "svc-portal@other-fleet.example", "other-fleet-password"),
)


def ensure_seeded() -> None:
    if SandboxDatabase.objects.filter(name=DEMO_DATABASES[0][0]).exists():
        return
    for name, username, password in DEMO_DATABASES:
        try:
            with transaction.atomic():
                database, _ = SandboxDatabase.objects.get_or_create(name=name)
                SandboxUser.objects.get_or_create(database=database, username=username,
                                                  defaults={"password": password})
        except IntegrityError:  # a concurrent first request seeded it
            continue
