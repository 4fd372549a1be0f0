"""Devices services, one module per entity; the public names are re-exported here."""

from devices.services.device import (  # noqa: F401
    DeviceTransitionError,
    device_record_event,
    device_transition,
)
from devices.services.terminations import TerminationConflict, TerminationError, device_terminate, termination_apply_bulk, termination_cancel, termination_effects_apply, termination_match_unmatched, termination_reasons, termination_reconcile, termination_reconcile_pending  # noqa: F401,E501
