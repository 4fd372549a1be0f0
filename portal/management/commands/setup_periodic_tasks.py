"""Write the beat schedule defined in code into django-celery-beat's tables (idempotent).

Entries are matched by name. An entry's schedule, task and arguments follow the code; whether
it is enabled is left as staff set it in the admin, except on first creation.
"""

import importlib
import json

from django.core.management.base import BaseCommand
from django.db import transaction
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

SCHEDULE_MODULES = ("portal.schedule", "devices.schedule", "orders.schedule", "ingestion.schedule")


def collect_periodic_tasks() -> list[dict]:
    entries: list[dict] = []
    for module_name in SCHEDULE_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        entries.extend(getattr(module, "PERIODIC_TASKS", []))
    return entries


class Command(BaseCommand):
    help = "Create or update the periodic tasks defined in code."

    @transaction.atomic
    def handle(self, *args, **options):
        created = updated = 0
        for entry in collect_periodic_tasks():
            defaults = {
                "task": entry["task"],
                "kwargs": json.dumps(entry.get("kwargs", {})),
                "description": entry.get("description", ""),
                "interval": None,
                "crontab": None,
            }
            if "every" in entry:
                defaults["interval"], _ = IntervalSchedule.objects.get_or_create(
                    every=int(entry["every"]), period=IntervalSchedule.SECONDS
                )
            else:
                defaults["crontab"], _ = CrontabSchedule.objects.get_or_create(
                    **{"minute": "0", "hour": "*", "day_of_week": "*", "day_of_month": "*",
                       "month_of_year": "*", **entry["crontab"]}
                )
            task, was_created = PeriodicTask.objects.get_or_create(
                name=entry["name"], defaults={**defaults, "enabled": entry.get("enabled", True)}
            )
            if was_created:
                created += 1
                continue
            changed = [k for k, v in defaults.items() if getattr(task, k) != v]
            if changed:
                for key in changed:
                    setattr(task, key, defaults[key])
                task.save()
                updated += 1
        self.stdout.write(f"periodic tasks: {created} created, {updated} updated")
