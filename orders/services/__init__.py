"""Orders services; the public names are re-exported here (`orders.services.order_sync`, ...)."""

from orders.services.fulfilment import (  # noqa: F401
    CARRIER_NAMES,
    CARRIER_TRACKING_URLS,
    AssignmentRow,
    PushRetryable,
    order_assignments_apply,
    order_assignments_parse,
    order_devices_add_to_database,
    order_item_assign,
    order_items_flag_for_devices,
    order_missing_assignments,
    order_provision,
    order_provision_collect,
    order_push_fulfilment,
    order_push_retry,
    orders_push_sweep,
    provisioning_key,
    shipment_create,
    tracking_url,
)
from orders.services.intake import (  # noqa: F401
    BadOrder,
    header_parse,
    items_parse,
    order_create_manual,
    order_sync,
)
from orders.services.lifecycle import (  # noqa: F401
    OrderTransitionError,
    order_approve,
    order_cancel,
    order_clear_flag,
    order_hold,
    order_record_event,
    order_resume,
    order_review_start,
    order_transition,
)
