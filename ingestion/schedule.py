"""Beat entries of the devices and ingestion apps (see portal/schedule.py for the format).
Times are defaults: staff change them in the admin (Periodic tasks), and
`setup_periodic_tasks` leaves an entry's enabled flag as staff set it."""

PERIODIC_TASKS = [
    # Geotab publishes the termination summary once a day; 06:30 UTC picks up the morning sheet.
    {"name": "Import the daily termination sheet", "task": "ingestion.termination_sheet_import_scheduled",
     "crontab": {"minute": "30", "hour": "6"}},
    {"name": "Reconcile manual terminations of unknown outcome", "task": "devices.termination_reconcile_pending",
     "every": 300},
    # Safety net for a missed or late sheet: ask MyAdmin which of our devices it has terminated.
    {"name": "Reconcile terminations with MyAdmin", "task": "devices.terminations_reconcile_from_myadmin",
     "crontab": {"minute": "0", "hour": "8"}},
    # Device records → DIG: the forwarder chains itself while there is backlog; beat restarts it
    # (and covers a lost enqueue). Invalid-record feedback, release of held records, retention.
    {"name": "Forward device records to DIG", "task": "ingestion.records_forward", "every": 10},
    {"name": "Read DIG invalid records", "task": "ingestion.records_poll_invalid", "every": 300},
    {"name": "Release held records of devices now ready", "task": "ingestion.records_release_sweep", "every": 120},
    {"name": "Prune forwarded device records", "task": "ingestion.records_prune", "every": 3600},
    # Readiness for data: ask MyAdmin which MyGeotab database owns each provisioned serial that
    # has none yet (GetDeviceDatabaseNamesAsync, batched); ready devices release held records.
    {"name": "Devices: learn readiness for data from MyAdmin", "task": "devices.devices_refresh_readiness",
     "every": 120},
]
