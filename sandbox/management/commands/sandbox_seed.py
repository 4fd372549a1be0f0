"""Load the sandbox's demo data (users, accounts, orders, catalogues) for `make run`.

Each simulator seeds itself lazily on its first request too; this only makes the demo data
visible before anything has called the sandbox. Idempotent."""

import importlib

from django.core.management.base import BaseCommand

SIMULATORS = ("myadmin", "shipping", "mygeotab", "dig", "navixy")


class Command(BaseCommand):
    help = "Seed every sandbox simulator with its demo data."

    def handle(self, *args, **options):
        for name in SIMULATORS:
            module_name = f"sandbox.{name}.seed"
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                if exc.name != module_name:
                    raise
                continue
            module.ensure_seeded()
            self.stdout.write(f"sandbox {name}: demo data ready")
