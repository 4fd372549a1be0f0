"""The order lifecycle (Order.TRANSITIONS) and its history."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from orders.models import Order, OrderEvent


class OrderTransitionError(ValidationError):
    """A status change the lifecycle does not allow (a ValidationError: API 400, admin message)."""


def order_record_event(
    *, order: Order, kind: str, message: str = "", actor=None, data: dict | None = None,
    from_status: str = "", to_status: str = "",
) -> OrderEvent:
    return OrderEvent.objects.create(
        order=order, kind=kind, message=message[:500], data=data or {}, from_status=from_status,
        to_status=to_status, actor=actor if getattr(actor, "pk", None) else None,
    )


@transaction.atomic
def order_transition(*, order: Order, to_status: str, actor=None, message: str = "") -> Order:
    """Move an order along its lifecycle, recording who and when. Idempotent for the same target."""
    locked = Order.objects.select_for_update().get(pk=order.pk)
    if locked.status == to_status:
        return locked
    allowed = Order.TRANSITIONS[Order.Status(locked.status)]
    if to_status not in allowed:
        raise OrderTransitionError(
            f"{locked} cannot go from {locked.get_status_display()} to {Order.Status(to_status).label}."
        )
    from_status = locked.status
    locked.status = to_status
    locked.save(update_fields=["status", "updated_at"])
    order_record_event(order=locked, kind="status", from_status=from_status, to_status=to_status,
                       actor=actor, message=message)
    order.status = locked.status
    return locked


def order_review_start(*, order: Order, actor=None) -> Order:
    return order_transition(order=order, to_status=Order.Status.IN_REVIEW, actor=actor, message="review started")


def order_approve(*, order: Order, actor=None) -> Order:
    """Approve after review: every item that needs a serial must be a product the catalogue can
    mint, and an order the partner cancelled or stopped listing cannot be approved."""
    order = Order.objects.select_related("account").get(pk=order.pk)
    problems = []
    if order.flagged:
        problems.append(f"{order} is flagged ({order.flag_reason}); clear the flag first.")
    items = list(order.items.select_related("product"))
    if not items:
        problems.append(f"{order} has no items.")
    for item in items:
        if item.requires_serial and (item.product is None or item.product.myadmin_product_id is None):
            problems.append(
                f"Item {item.pk} ({item.product_code}): product code is not a device in the catalogue; "
                "add it under Orders › Products."
            )
    if problems:
        raise ValidationError({"items": problems})
    return order_transition(order=order, to_status=Order.Status.APPROVED, actor=actor, message="approved")


def order_hold(*, order: Order, actor=None, reason: str = "") -> Order:
    return order_transition(order=order, to_status=Order.Status.ON_HOLD, actor=actor, message=reason or "put on hold")


def order_resume(*, order: Order, actor=None) -> Order:
    return order_transition(order=order, to_status=Order.Status.IN_REVIEW, actor=actor, message="resumed from hold")


def order_cancel(*, order: Order, actor=None, reason: str = "") -> Order:
    """Cancel. Serials already minted for the order stay billable until billing terminates them,
    so the history names them."""
    serials = list(order.items.exclude(serial="").values_list("serial", flat=True))
    message = reason or "cancelled"
    if serials:
        message += f"; minted serials stay billable until terminated: {', '.join(serials)}"
    return order_transition(order=order, to_status=Order.Status.CANCELLED, actor=actor, message=message)


@transaction.atomic
def order_clear_flag(*, order: Order, actor=None) -> Order:
    locked = Order.objects.select_for_update().get(pk=order.pk)
    if locked.flagged:
        reason = locked.flag_reason
        locked.flagged = False
        locked.flag_reason = ""
        locked.save(update_fields=["flagged", "flag_reason", "updated_at"])
        order_record_event(order=locked, kind="unflagged", actor=actor, message=f"flag cleared: {reason}")
    return locked
