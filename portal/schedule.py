"""The beat schedule, defined in code (reviewable in git) and written to django-celery-beat by
`manage.py setup_periodic_tasks`; staff can still switch entries on/off in the admin.

Each app may add its own entries in `<app>/schedule.py` as ``PERIODIC_TASKS``; an entry is
``{"name": str, "task": str, "every": seconds}`` or ``{..., "crontab": {"minute": "0", "hour": "6"}}``,
with optional ``kwargs`` (dict) and ``enabled`` (bool, default True).
"""

from django.conf import settings

PERIODIC_TASKS = [
    {"name": "Heartbeat (worker and beat liveness)", "task": "portal.heartbeat",
     "every": settings.HEARTBEAT_PERIOD_SECONDS},
    # Hourly vendor-call counts behind the dashboard's 24 h / 30 day error rates.
    {"name": "Vendor-call ledger hourly rollup", "task": "portal.vendor_call_rollup", "every": 300},
    # Keeps the dashboard's panel cache warm (shorter than DASHBOARD_CACHE_SECONDS).
    {"name": "Dashboard panels refresh", "task": "portal.dashboard_refresh",
     "every": max(10, settings.DASHBOARD_CACHE_SECONDS * 2 // 3)},
    # Jobs whose work was lost (task never delivered, worker gone) stop showing "running".
    {"name": "Finish stale jobs", "task": "portal.jobs_fail_stale", "every": 600},
]
