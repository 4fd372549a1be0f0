import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django_celery_beat.models import PeriodicTask

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_setup_periodic_tasks_is_idempotent_and_keeps_staff_toggles():
    call_command("setup_periodic_tasks")
    count = PeriodicTask.objects.count()
    assert PeriodicTask.objects.filter(task="portal.heartbeat", enabled=True).exists()
    PeriodicTask.objects.filter(task="portal.heartbeat").update(enabled=False)
    call_command("setup_periodic_tasks")
    assert PeriodicTask.objects.count() == count
    assert not PeriodicTask.objects.get(task="portal.heartbeat").enabled


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"DATABASE_URL": "postgres://nobody@127.0.0.1:1/nowhere"}, "DATABASE_URL: cannot connect"),
        ({"DATABASE_URL": "nonsense"}, "DATABASE_URL scheme is not supported"),
        ({"CELERY_BROKER_URL": "redis://127.0.0.1:1/0"}, "CELERY_BROKER_URL: cannot connect"),
        ({"CELERY_BROKER_URL": "ftp://x"}, "CELERY_BROKER_URL scheme is not supported"),
    ],
)
def test_preflight_names_the_bad_variable_in_one_line(env, expected):
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "preflight.py")],
        env={**os.environ, "DATABASE_URL": "sqlite:////tmp/preflight.sqlite3", "CELERY_BROKER_URL": "filesystem://", **env},
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.stderr
