"""Beat entries of the devices app (written by `manage.py setup_periodic_tasks`)."""

PERIODIC_TASKS = [
    {"name": "Navixy: refresh models, plugins and groups", "task": "devices.navixy_catalogue_refresh",
     "every": 3600},
    {"name": "Navixy: resume tracker registrations whose task was lost", "task": "devices.trackers_sweep",
     "every": 300},
    {"name": "MyAdmin: reconcile provisioning calls with an unknown outcome", "task": "devices.provisioning_reconcile_due",
     "every": 60},
    {"name": "MyAdmin: re-enqueue provisioning requests whose task was lost", "task": "devices.provisioning_sweep",
     "every": 60},
]
