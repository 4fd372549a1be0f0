"""Devices services, one module per entity; the public names are re-exported here."""

from devices.services.assignment import device_assign, device_assignment_validate  # noqa: F401
from devices.services.contracts import device_contract_update  # noqa: F401
from devices.services.databases import (  # noqa: F401,E501
    customer_database_test_connection,
    device_add_to_database,
    devices_add_to_database,
    devices_refresh_readiness,
)
from devices.services.device import (  # noqa: F401
    DeviceTransitionError,
    device_record_event,
    device_transition,
    devices_first_data,
)
from devices.services.provisioning import (  # noqa: F401,E501
    IdempotencyConflict,
    provisioning_reconcile,
    provisioning_reconcile_due,
    provisioning_request_cancel,
    provisioning_request_create,
    provisioning_request_process,
    provisioning_staff_resolve,
    provisioning_sweep,
)
from devices.services.terminations import (  # noqa: F401,E501
    TerminationConflict,
    TerminationError,
    device_terminate,
    termination_apply_bulk,
    termination_cancel,
    termination_effects_apply,
    termination_match_unmatched,
    termination_reasons,
    termination_reconcile,
    termination_reconcile_pending,
)
from devices.services.trackers import (  # noqa: F401,E501
    navixy_catalogue_refresh,
    tracker_bulk_import,
    tracker_create,
    tracker_refresh,
    tracker_register,
    tracker_register_retry,
    tracker_submit,
    tracker_update,
    tracker_validate,
    trackers_flag_for_devices,
)
