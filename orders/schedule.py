"""Beat entries for orders (written by `manage.py setup_periodic_tasks`)."""

from django.conf import settings

PERIODIC_TASKS = [
    {"name": "Orders: sync from the partner shipping API", "task": "orders.sync",
     "every": int(getattr(settings, "ORDERS_SYNC_PERIOD_SECONDS", 900))},
    {"name": "Orders: re-queue lost or failed fulfilment pushes", "task": "orders.push_sweep", "every": 300},
    {"name": "Orders: attach minted serials to order items", "task": "orders.provision_collect", "every": 120},
]
