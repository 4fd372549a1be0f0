"""From an approved order to a fulfilled one: provision serials on the order's partner account,
assign units (IMEI/SIM), ship, and push the fulfilment back to the partner shipping API.

Orders never write the devices table: minting goes through devices' provisioning intent ledger,
IMEI/SIM through `devices.services.device_assign`, status through `device_transition`.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from dataclasses import dataclass, field
from datetime import date, timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from integrations.base import RejectedError, VendorError, vendor_call_context
from orders.models import Order, OrderItem, Shipment
from orders.services.lifecycle import order_record_event, order_transition

logger = logging.getLogger(__name__)

PROVISIONABLE = (Order.Status.APPROVED, Order.Status.PROVISIONING)
ASSIGNABLE = (Order.Status.PROVISIONING, Order.Status.READY_TO_SHIP)


def provisioning_key(item: OrderItem) -> str:
    """The idempotency key of the intent minting this item's serial: one item, one serial."""
    return f"order-item-{item.pk}"


# --------------------------------------------------------------------------- provisioning


def order_provision(*, order: Order, actor=None) -> list:
    """Mint one serial per device item on the order's partner account (ProvisionDeviceToAccount
    through the devices intent ledger). Re-running never mints more than the order needs: each
    item's intent has a deterministic idempotency key, and items already holding a serial are
    skipped. Returns the provisioning requests of the order's items."""
    from devices.services import IdempotencyConflict, provisioning_request_create

    order = Order.objects.select_related("account").get(pk=order.pk)
    if order.status not in PROVISIONABLE:
        raise ValidationError({"status": [
            f"{order} is {order.get_status_display().lower()}; only an approved order can be provisioned."
        ]})
    if order.flagged:
        raise ValidationError({"flagged": [f"{order} is flagged ({order.flag_reason}); clear the flag first."]})
    items = [i for i in order.items.select_related("product") if i.requires_serial and i.device_id is None]
    for item in items:
        if item.product is None or item.product.myadmin_product_id is None:
            raise ValidationError({"items": [f"Item {item.pk} ({item.product_code}) is not a device product in the catalogue."]})
    # The order moves to "provisioning" (committed) before any intent is written.
    order_transition(order=order, to_status=Order.Status.PROVISIONING, actor=actor,
                     message=f"minting {len(items)} serial(s) on account {order.account.account_id}")
    requests = []
    for item in items:
        with vendor_call_context(target=f"orders.OrderItem:{item.pk}"):
            try:
                request = provisioning_request_create(
                    product_id=item.product.myadmin_product_id, erp_no=order.account.account_id, quantity=1,
                    requested_by=actor if getattr(actor, "pk", None) else None,
                    idempotency_key=provisioning_key(item), note=f"{order} item {item.pk} ({item.product_code})",
                )
            except IdempotencyConflict as exc:
                # The key is this item's: an intent exists already (the catalogue or note changed
                # since). It stays the item's one intent; never a second serial.
                request = exc.existing
        requests.append(request)
        if item.provisioning_request_id != request.pk:
            OrderItem.objects.filter(pk=item.pk).update(provisioning_request_id=request.pk)
    order_provision_collect(order=order, actor=actor)
    return requests


def order_provision_collect(*, order: Order, actor=None) -> int:
    """Attach the serials minted for the order's items; flag items whose minting failed or needs
    staff. Returns how many items got their serial now. Safe to run any number of times."""
    from devices.models import ProvisioningRequest

    pending = list(order.items.filter(device__isnull=True, provisioning_request_id__isnull=False))
    if not pending:
        _update_readiness(order=order, actor=actor)
        return 0
    requests_by_id = {
        r.pk: r for r in ProvisioningRequest.objects.filter(pk__in=[i.provisioning_request_id for i in pending])
        .prefetch_related("devices")
    }
    attached = 0
    with transaction.atomic():
        for item in pending:
            request = requests_by_id.get(item.provisioning_request_id)
            if request is None:
                continue
            devices = list(request.devices.all())
            if request.status == "succeeded" and devices:
                device = devices[0]
                item.device = device
                item.serial = device.serial
                item.imei = device.imei or ""
                item.sim = device.sim or ""
                item.flag_reason, item.flagged_at = "", None
                item.save(update_fields=["device", "serial", "imei", "sim", "flag_reason", "flagged_at"])
                order_record_event(order=order, kind="provisioned", actor=actor,
                                   message=f"item {item.pk} ({item.product_code}) → serial {device.serial}")
                attached += 1
            elif request.status in ("failed", "needs_staff", "unknown") and not item.flag_reason:
                item.flag_reason = f"Provisioning {request.status.replace('_', ' ')} (request {request.pk})."
                item.flagged_at = timezone.now()
                item.save(update_fields=["flag_reason", "flagged_at"])
    _update_readiness(order=order, actor=actor)
    return attached


def order_missing_assignments(*, order: Order) -> dict[str, list[str]]:
    """item label → missing fields, for every item that could not ship yet."""
    return {
        _item_label(item): missing
        for item in order.items.all()
        if (missing := item.missing_assignments())
    }


def _item_label(item: OrderItem) -> str:
    return f"item {item.pk} ({item.product_code}{', serial ' + item.serial if item.serial else ''})"


def _update_readiness(*, order: Order, actor=None) -> Order:
    """Provisioning ⇄ ready to ship, by whether every item has what it needs."""
    order.refresh_from_db(fields=["status"])
    complete = not order_missing_assignments(order=order)
    if order.status == Order.Status.PROVISIONING and complete:
        return order_transition(order=order, to_status=Order.Status.READY_TO_SHIP, actor=actor,
                                message="every item has its serial and required IMEI/SIM")
    if order.status == Order.Status.READY_TO_SHIP and not complete:
        return order_transition(order=order, to_status=Order.Status.PROVISIONING, actor=actor,
                                message="an item lost a required assignment")
    return order


# --------------------------------------------------------------------------- assignment


def _check_assignable(item: OrderItem) -> None:
    if item.order.status not in ASSIGNABLE:
        raise ValidationError({"status": [
            (f"{item.order} is {item.order.get_status_display().lower()}; units are assigned while provisioning "
             "or ready to ship.")
        ]})
    if item.device_id is None:
        raise ValidationError({"serial": [f"Item {item.pk} ({item.product_code}) has no serial yet."]})


def order_item_assign(*, item: OrderItem, imei: str | None, sim: str | None, actor=None) -> OrderItem:
    """Assign IMEI and/or SIM to one item's serial (None leaves a field as it is). All or nothing."""
    from devices.services import device_assign

    item = OrderItem.objects.select_related("order", "device").get(pk=item.pk)
    _check_assignable(item)
    with transaction.atomic():
        try:
            device = device_assign(device=item.device, imei=imei, sim=sim, actor=actor)
        except ValidationError as exc:
            raise ValidationError({k: [f"Item {item.pk}: {m}" for m in v] for k, v in exc.message_dict.items()}) from exc
        item.imei, item.sim = device.imei or "", device.sim or ""
        item.save(update_fields=["imei", "sim"])
        order_record_event(order=item.order, kind="assigned", actor=actor,
                           message=f"{_item_label(item)}: IMEI {item.imei or '—'}, SIM {item.sim or '—'}")
    _update_readiness(order=item.order, actor=actor)
    return item


@dataclass
class AssignmentRow:
    line: int
    serial: str
    imei: str
    sim: str
    item: OrderItem | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


_HEADER_WORDS = {"serial", "serialnumber", "serial_number", "imei", "sim", "iccid", "simnumber"}


def order_assignments_parse(*, order: Order, text: str) -> list[AssignmentRow]:
    """Preview a pasted/uploaded list of ``serial, IMEI, SIM`` lines against the order (no writes).

    Separators: comma, semicolon or tab; a header line is skipped; blank lines are ignored. Each
    row carries its own errors (unknown serial, bad check digit, duplicate in the list or across
    all devices, terminated serial, a required value missing).
    """
    from devices.services import device_assignment_validate

    order = Order.objects.get(pk=order.pk)
    if order.status not in ASSIGNABLE:
        raise ValidationError({"status": [
            f"{order} is {order.get_status_display().lower()}; units are assigned while provisioning or ready to ship."
        ]})
    sample = text[:2000]
    delimiter = "\t" if "\t" in sample else (";" if sample.count(";") > sample.count(",") else ",")
    items = {i.serial.upper(): i for i in order.items.select_related("device").exclude(serial="")}
    rows: list[AssignmentRow] = []
    seen_serial: dict[str, int] = {}
    seen_imei: dict[str, int] = {}
    seen_sim: dict[str, int] = {}
    for n, cells in enumerate(csv.reader(io.StringIO(text), delimiter=delimiter), start=1):
        cells = [c.strip() for c in cells]
        if not any(cells):
            continue
        if not rows and cells[0].replace(" ", "").lower() in _HEADER_WORDS:
            continue
        cells += [""] * (3 - len(cells))
        row = AssignmentRow(line=n, serial=cells[0].upper(), imei=cells[1], sim=cells[2])
        rows.append(row)
        if len(cells) > 3 and any(cells[3:]):
            row.errors.append("Expected three columns: serial, IMEI, SIM.")
        row.item = items.get(row.serial)
        if row.item is None:
            row.errors.append(f"Serial {row.serial or '(blank)'} is not an item of {order}.")
            continue
        if row.serial in seen_serial:
            row.errors.append(f"Serial {row.serial} is also on line {seen_serial[row.serial]}.")
        seen_serial.setdefault(row.serial, n)
        try:
            row.imei, row.sim = (v or "" for v in device_assignment_validate(
                device=row.item.device, imei=row.imei or None, sim=row.sim or None))
        except ValidationError as exc:
            row.errors += [m for msgs in exc.message_dict.values() for m in msgs]
        for value, seen, name in ((row.imei, seen_imei, "IMEI"), (row.sim, seen_sim, "SIM")):
            if value and value in seen:
                row.errors.append(f"{name} {value} is also on line {seen[value]}.")
            elif value:
                seen[value] = n
        if row.item.requires_imei and not (row.imei or row.item.imei):
            row.errors.append(f"Serial {row.serial} requires an IMEI.")
        if row.item.requires_sim and not (row.sim or row.item.sim):
            row.errors.append(f"Serial {row.serial} requires a SIM/ICCID.")
    if not rows:
        raise ValidationError({"text": ["No lines to assign (expected: serial, IMEI, SIM)."]})
    return rows


def order_assignments_apply(*, order: Order, text: str, actor=None) -> list[AssignmentRow]:
    """Apply a pasted/uploaded list: all lines or none. Errors name the line and serial."""
    rows = order_assignments_parse(order=order, text=text)
    bad = [r for r in rows if not r.ok]
    if bad:
        raise ValidationError({f"line {r.line}": r.errors for r in bad})
    with transaction.atomic():
        for row in rows:
            order_item_assign(item=row.item, imei=row.imei or None, sim=row.sim or None, actor=actor)
    return rows


# --------------------------------------------------------------------------- shipment

CARRIER_TRACKING_URLS = {
    "ups": "https://www.ups.com/track?tracknum={n}",
    "fedex": "https://www.fedex.com/fedextrack/?trknbr={n}",
    "usps": "https://tools.usps.com/go/TrackConfirmAction?tLabels={n}",
    "dhl": "https://www.dhl.com/global-en/home/tracking/tracking-express.html?submit=1&tracking-id={n}",
    "canada_post": "https://www.canadapost-postescanada.ca/track-reperage/en#/search?searchFor={n}",
    "purolator": "https://www.purolator.com/en/shipping/tracker?pin={n}",
    "other": "",
}
CARRIER_NAMES = {
    "ups": "UPS", "fedex": "FedEx", "usps": "USPS", "dhl": "DHL Express", "canada_post": "Canada Post",
    "purolator": "Purolator", "other": "Other",
}
_TRACKING_RE = re.compile(r"^[A-Za-z0-9]{6,40}$")


def tracking_url(carrier: str, tracking_number: str) -> str:
    template = CARRIER_TRACKING_URLS.get(carrier, "")
    return template.format(n=tracking_number) if template else ""


def shipment_create(*, order: Order, carrier: str, tracking_number: str, ship_date: date | None = None,
                    actor=None) -> Shipment:
    """Record the shipment of a ready order (every item with its serial and required IMEI/SIM),
    mark it shipped and queue the fulfilment push. All or nothing."""
    from devices.models import Device
    from devices.services import device_transition

    errors: dict[str, list[str]] = {}
    carrier = (carrier or "").strip().lower()
    tracking_number = re.sub(r"\s", "", tracking_number or "")
    ship_date = ship_date or timezone.localdate()
    if carrier not in CARRIER_TRACKING_URLS:
        errors["carrier"] = [f"Unknown carrier {carrier!r}; one of: {', '.join(CARRIER_TRACKING_URLS)}."]
    if not _TRACKING_RE.match(tracking_number):
        errors["tracking_number"] = ["A tracking number is 6–40 letters or digits."]
    if not isinstance(ship_date, date) or ship_date > timezone.localdate() + timedelta(days=1):
        errors["ship_date"] = ["The ship date cannot be in the future."]
    with transaction.atomic():
        order = Order.objects.select_for_update().get(pk=order.pk)
        if order.status in (Order.Status.NEW, Order.Status.IN_REVIEW, Order.Status.APPROVED, Order.Status.ON_HOLD):
            errors["order"] = [
                (f"{order} is not provisioned yet ({order.get_status_display().lower()}); a tracking number can "
                 "be recorded once its serials are minted and assigned.")
            ]
        elif order.status in (Order.Status.SHIPPED, Order.Status.FULFILLED):
            errors["order"] = [f"{order} has already shipped."]
        elif order.status == Order.Status.CANCELLED:
            errors["order"] = [f"{order} is cancelled."]
        else:
            missing = order_missing_assignments(order=order)
            if missing:
                errors["items"] = [f"{label} lacks {', '.join(fields)}." for label, fields in missing.items()]
            terminated = list(order.items.filter(device__status=Device.Status.TERMINATED).values_list("serial", flat=True))
            if terminated:
                errors.setdefault("items", []).append(f"Serial(s) {', '.join(terminated)} are terminated.")
        if errors:
            raise ValidationError(errors)
        shipment = Shipment.objects.create(
            order=order, carrier=carrier, tracking_number=tracking_number,
            tracking_url=tracking_url(carrier, tracking_number), ship_date=ship_date,
            created_by=actor if getattr(actor, "pk", None) else None,
        )
        items = list(order.items.select_related("device"))
        shipment.items.set(items)
        for item in items:
            if item.device is not None and item.device.status in (Device.Status.PROVISIONED, Device.Status.ASSIGNED):
                device_transition(device=item.device, to_status=Device.Status.SHIPPED, actor=actor,
                                  message=f"shipped with {order}")
        order_transition(order=order, to_status=Order.Status.SHIPPED, actor=actor,
                         message=f"{CARRIER_NAMES[carrier]} {tracking_number}")
        Order.objects.filter(pk=order.pk).update(push_status=Order.PushStatus.PENDING, push_error="")
        _enqueue_push(order.pk)
    return shipment


def _enqueue_push(order_id: int) -> None:
    from orders.tasks import push_fulfilment

    push_fulfilment.delay_on_commit(order_id)


def order_push_retry(*, order: Order, actor=None) -> Order:
    """Queue the fulfilment push again (after a rejection was fixed, or to hurry a retry)."""
    order = Order.objects.get(pk=order.pk)
    if order.status != Order.Status.SHIPPED:
        raise ValidationError({"status": [f"{order} is {order.get_status_display().lower()}; only a shipped order is pushed."]})
    with transaction.atomic():
        Order.objects.filter(pk=order.pk).update(push_status=Order.PushStatus.PENDING)
        order_record_event(order=order, kind="push_queued", actor=actor, message="fulfilment push queued")
        _enqueue_push(order.pk)
    order.refresh_from_db()
    return order


class PushRetryable(Exception):
    """The push did not succeed but may be sent again (the write is idempotent by order)."""

    def __init__(self, error: VendorError):
        super().__init__(str(error))
        self.error = error


def order_push_fulfilment(*, order_id: int, client=None) -> Order:
    """Send the shipment and per-item assignments to the partner shipping API.

    Idempotent by order: the write replaces state on the partner side (see
    integrations.shipping.submit_fulfilment), so a retry after an unknown outcome is safe.
    Success → fulfilled. Not executed / unknown → raises PushRetryable (the task retries).
    Rejected → recorded on the order for staff; no retry.
    """
    from integrations.shipping import FulfilmentItem

    order = Order.objects.select_related("shipment").get(pk=order_id)
    if order.status == Order.Status.FULFILLED:
        return order
    if order.status != Order.Status.SHIPPED:
        raise ValidationError({"status": [f"{order} is {order.get_status_display().lower()}; nothing to push."]})
    if order.order_header_id is None:
        Order.objects.filter(pk=order.pk).update(push_status=Order.PushStatus.NONE, push_error="")
        return order_transition(order=order, to_status=Order.Status.FULFILLED,
                                message="entered by hand: no partner order to update")
    shipment = order.shipment
    items = [
        FulfilmentItem(item_id=i.vendor_item_id, serial_number=i.serial, sim_number=i.sim, imei=i.imei)
        for i in order.items.all() if i.vendor_item_id is not None
    ]
    if client is None:
        from portal.clients import shipping_client

        client = shipping_client()
    Order.objects.filter(pk=order.pk).update(push_attempts=F("push_attempts") + 1)
    try:
        with vendor_call_context(target=f"orders.Order:{order.pk}"):
            client.submit_fulfilment(order.order_header_id, carrier=CARRIER_NAMES.get(shipment.carrier, shipment.carrier),
                                     tracking_number=shipment.tracking_number, ship_date=shipment.ship_date, items=items)
    except RejectedError as exc:
        _push_failed(order, Order.PushStatus.REJECTED, exc)
        return Order.objects.get(pk=order.pk)
    except VendorError as exc:
        status = Order.PushStatus.UNKNOWN if exc.may_have_executed else Order.PushStatus.FAILED
        _push_failed(order, status, exc)
        raise PushRetryable(exc) from exc
    with transaction.atomic():
        Order.objects.filter(pk=order.pk).update(
            push_status=Order.PushStatus.SUCCEEDED, push_error="", pushed_at=timezone.now()
        )
        order_record_event(order=order, kind="pushed", message="fulfilment accepted by the partner API")
        return order_transition(order=order, to_status=Order.Status.FULFILLED, message="fulfilment pushed")


def _push_failed(order: Order, status: str, exc: VendorError) -> None:
    message = f"{type(exc).__name__}: {exc}"
    if exc.details:
        message += f" {exc.details}"
    with transaction.atomic():
        Order.objects.filter(pk=order.pk).update(push_status=status, push_error=message[:500])
        order_record_event(order=order, kind="push_failed", message=message, data={"outcome": status})


def orders_push_sweep(*, older_than: timedelta = timedelta(minutes=5), limit: int = 200) -> int:
    """Queue the push for shipped orders whose push was lost, ran out of retries, or is pending
    too long (enqueue-after-commit can be lost with a crash between commit and publish)."""
    cutoff = timezone.now() - older_than
    ids = list(
        Order.objects.filter(
            status=Order.Status.SHIPPED, updated_at__lt=cutoff,
            push_status__in=[Order.PushStatus.PENDING, Order.PushStatus.FAILED, Order.PushStatus.UNKNOWN],
        ).values_list("pk", flat=True)[:limit]
    )
    for order_id in ids:
        _enqueue_push(order_id)
    return len(ids)


# --------------------------------------------------------------------------- flags from devices


def order_items_flag_for_devices(*, device_ids, reason: str, actor=None) -> int:
    """Flag the open order items holding these devices (e.g. the serial was terminated) and
    their orders, for staff. Called by the devices termination service; idempotent (an item
    already flagged for the same reason is left alone) and bulk. Returns items newly flagged.
    The audit trail gets one entry for the items and one for the orders (who: ``actor``, or
    "system" when a service of the portal flagged them)."""
    from orders.models import OrderEvent
    from portal.audit import Action, audit_bulk
    from portal.bulk import where_in

    device_ids = list(device_ids)
    if not device_ids:
        return 0
    now = timezone.now()
    reason = (reason or "device flagged")[:300]
    with transaction.atomic():
        items = list(where_in(
            OrderItem.objects.select_related("order")
            .filter(order__status__in=[*Order.OPEN_STATUSES, Order.Status.SHIPPED]).exclude(flag_reason=reason),
            "device_id", device_ids,
        ))
        if not items:
            return 0
        OrderItem.objects.filter(pk__in=[i.pk for i in items]).update(flag_reason=reason, flagged_at=now)
        order_ids = {i.order_id for i in items}
        Order.objects.filter(pk__in=order_ids).update(flagged=True, flag_reason=reason, updated_at=now)
        OrderEvent.objects.bulk_create(
            OrderEvent(order_id=i.order_id, kind="flagged", message=f"{_item_label(i)}: {reason}"[:500]) for i in items
        )
        who = actor if getattr(actor, "pk", None) else "system"
        audit_bulk(model=OrderItem, ids=[i.pk for i in items], action=Action.BULK_UPDATE, actor=who,
                   changes={"flag_reason": reason, "flagged_at": now}, message="flagged for staff")
        audit_bulk(model=Order, ids=sorted(order_ids), action=Action.BULK_UPDATE, actor=who,
                   changes={"flagged": True, "flag_reason": reason}, message="flagged for staff")
    return len(items)


def order_devices_add_to_database(*, order: Order, actor=None) -> str:
    """Add every device of the order to the customer's MyGeotab database (the one linked to the
    order's partner account), through the idempotent devices service. Returns a summary."""
    from devices.models import CustomerDatabase, Device
    from devices.services import devices_add_to_database

    devices = list(Device.objects.filter(order_items__order=order).distinct())
    if not devices:
        raise ValidationError("The order has no provisioned devices yet.")
    erp_no = order.account.account_id
    databases = list(CustomerDatabase.objects.filter(accounts__erp_no=erp_no, active=True).distinct()[:2])
    if not databases:
        raise ValidationError(
            f"No customer database is linked to account {erp_no}: add one under Customer databases "
            "(with its service account) or let the customer add the devices in MyGeotab."
        )
    if len(databases) > 1:
        raise ValidationError(
            f"Account {erp_no} has several customer databases: choose one with the devices' "
            "\"Add to a customer's MyGeotab database\" action."
        )
    results = devices_add_to_database(devices=devices, database=databases[0], actor=actor)
    ok = sum(1 for r in results if r.ok)
    problems = "; ".join(f"{r.device.serial}: {r.message}" for r in results if not r.ok)
    order_record_event(order=order, kind="database", actor=actor,
                       message=f"{ok} of {len(results)} device(s) in {databases[0].database}")
    summary = f"{ok} of {len(results)} device(s) are in {databases[0].database}."
    return f"{summary} {problems}" if problems else summary
