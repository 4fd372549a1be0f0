"""Order intake: the incremental, idempotent sync from the partner shipping API, and orders
entered by hand from a PO / packing-slip e-mail.

Sync algorithm (one `OrderSyncRun` per call):
1. list every order header dated within the look-back window (all statuses, paged);
2. validate each header field by field; a bad order is recorded on the run and skipped;
3. compare each header's digest with the stored one; fetch items only for orders that are new,
   whose header changed, or that are still before approval (items may still change then);
4. write in chunks, in bulk (one transaction per chunk): new orders + items, changed headers,
   changed items; orders the partner cancelled or stopped listing are flagged, never deleted.
A re-run with nothing changed on the partner side writes nothing but the run record.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from integrations.base import VendorError
from orders.models import Account, Order, OrderEvent, OrderItem, OrderSyncRun, Product
from portal.audit import Action as AuditAction
from portal.audit import audit_bulk

logger = logging.getLogger(__name__)

CHUNK_SIZE = 500
VANISHED_REASON = "No longer listed by the partner shipping API."
CANCELLED_REASON = "Cancelled on the partner side (shipmentStatus {status})."
ITEMS_CHANGED_REASON = "Items changed on the partner side after approval; review them."
# Local statuses in which the partner's item list is still taken as it comes.
ITEMS_FOLLOW_PARTNER = (Order.Status.NEW, Order.Status.IN_REVIEW, Order.Status.ON_HOLD)


class OrderSource(Protocol):
    """What the sync reads: the ShippingClient, or a fake page source in the benchmark."""

    def iter_orders(self, **filters: Any) -> Iterable[dict]: ...

    def list_items(self, order_header_id: int) -> list[dict]: ...


def lookback_days() -> int:
    return int(getattr(settings, "ORDERS_SYNC_LOOKBACK_DAYS", 30))


# --------------------------------------------------------------------------- validation


class BadOrder(Exception):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


_HEADER_TEXT = {  # vendor key → (model field, max length)
    "comment": ("comment", None),
    "resellerName": ("reseller_name", 200),
    "resellerEmail": ("reseller_email", 254),
    "purchaseOrderNumber": ("purchase_order_number", 100),
    "shipmentReference": ("shipment_reference", 100),
}
_CONTACT_TEXT = {
    "name": ("ship_name", 200), "email": ("ship_email", 254), "street1": ("ship_street1", 200),
    "street2": ("ship_street2", 200), "city": ("ship_city", 100), "state": ("ship_state", 100),
    "zipCode": ("ship_zip_code", 32), "telephone1": ("ship_telephone1", 40), "telephone2": ("ship_telephone2", 40),
}


def _text(value: Any, path: str, max_length: int | None) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadOrder(path, f"{path} must be a string, got {type(value).__name__}.")
    value = value.strip()
    if max_length and len(value) > max_length:
        raise BadOrder(path, f"{path} is longer than {max_length} characters.")
    return value


def _int(value: Any, path: str, *, required: bool = True) -> int | None:
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadOrder(path, f"{path} must be an integer, got {type(value).__name__ if value is not None else 'nothing'}.")
    if value <= 0:
        raise BadOrder(path, f"{path} must be positive.")
    return value


def _bool(value: Any, path: str, default: bool | None = None) -> bool:
    if value is None and default is not None:
        return default
    if not isinstance(value, bool):
        raise BadOrder(path, f"{path} must be true or false, got {type(value).__name__ if value is not None else 'nothing'}.")
    return value


def _when(value: Any, path: str) -> datetime:
    if not isinstance(value, str) or not value.strip():
        raise BadOrder(path, f"{path} is required (an ISO 8601 date-time).")
    parsed = parse_datetime(value.strip())
    if parsed is None:
        day = parse_date(value.strip())
        if day is None:
            raise BadOrder(path, f"{path} {value!r} is not an ISO 8601 date-time.")
        parsed = datetime(day.year, day.month, day.day)
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, UTC)
    return parsed


def header_parse(raw: Any) -> dict:
    """Vendor order header → model field values. Raises BadOrder naming the field."""
    if not isinstance(raw, dict):
        raise BadOrder("order", f"order must be a JSON object, got {type(raw).__name__}.")
    values: dict[str, Any] = {"order_header_id": _int(raw.get("orderHeaderId"), "orderHeaderId")}
    account = raw.get("account")
    if not isinstance(account, dict):
        raise BadOrder("account", "account is required (an object with accountId).")
    account_id = _text(account.get("accountId"), "account.accountId", 32)
    if not account_id:
        raise BadOrder("account.accountId", "account.accountId is required.")
    values["account_id"] = account_id
    values["partner_id"] = _int(account.get("id"), "account.id", required=False)
    values["order_date"] = _when(raw.get("orderDate"), "orderDate")
    status = _text(raw.get("shipmentStatus"), "shipmentStatus", 40)
    if not status:
        raise BadOrder("shipmentStatus", "shipmentStatus is required.")
    values["shipment_status"] = status
    for key, (name, max_length) in _HEADER_TEXT.items():
        values[name] = _text(raw.get(key), key, max_length)
    contact = raw.get("shippingContact")
    if contact is not None and not isinstance(contact, dict):
        raise BadOrder("shippingContact", "shippingContact must be an object.")
    for key, (name, max_length) in _CONTACT_TEXT.items():
        values[name] = _text((contact or {}).get(key), f"shippingContact.{key}", max_length)
    values["validated"] = _bool(raw.get("validated"), "validated", default=False)
    return values


def items_parse(raw: Any, *, order_header_id: int) -> list[dict]:
    if not isinstance(raw, list):
        raise BadOrder("items", f"items of order {order_header_id} must be a JSON array.")
    parsed, seen = [], set()
    for n, item in enumerate(raw):
        path = f"items[{n}]"
        if not isinstance(item, dict):
            raise BadOrder(path, f"{path} must be an object.")
        item_id = _int(item.get("id"), f"{path}.id")
        if item_id in seen:
            raise BadOrder(f"{path}.id", f"{path}.id {item_id} appears twice.")
        seen.add(item_id)
        code = _text(item.get("productCode"), f"{path}.productCode", 64)
        if not code:
            raise BadOrder(f"{path}.productCode", f"{path}.productCode is required.")
        parsed.append({
            "vendor_item_id": item_id,
            "product_code": code,
            "requires_serial": _bool(item.get("requiresSerialNumber"), f"{path}.requiresSerialNumber"),
            "requires_sim": _bool(item.get("requiresSimNumber"), f"{path}.requiresSimNumber", default=False),
            "requires_imei": _bool(item.get("requiresImei"), f"{path}.requiresImei", default=False),
            "attribute": _text(item.get("attribute"), f"{path}.attribute", 200),
        })
    return parsed


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str, separators=(",", ":")).encode()).hexdigest()


def _is_cancelled(shipment_status: str) -> bool:
    # Only "PendingFulfillment" is a known value [3P S15]; any spelling of cancel counts.
    return "cancel" in shipment_status.lower()


# --------------------------------------------------------------------------- sync


@dataclass
class _Incoming:
    header: dict
    digest: str
    items: list[dict] | None = None
    items_digest: str = ""


@dataclass
class _Counts:
    fetched: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    flagged: int = 0
    failed: int = 0
    errors: list[dict] = field(default_factory=list)

    def bad(self, order_header_id: Any, exc: BadOrder | str, field_name: str = "") -> None:
        self.failed += 1
        message = exc.message if isinstance(exc, BadOrder) else str(exc)
        self.errors.append({
            "orderHeaderId": order_header_id if isinstance(order_header_id, (int, str)) else None,
            "field": exc.field if isinstance(exc, BadOrder) else field_name,
            "message": message[:300],
        })


def order_sync(*, source: OrderSource | None = None, from_date: date | None = None, actor=None,
               chunk_size: int = CHUNK_SIZE, job_id: int | None = None) -> OrderSyncRun:
    """Pull new and changed orders from the partner shipping API (see module docstring).
    With ``job_id`` (portal.jobs) the job's total is the number of orders listed and it
    advances once per chunk; each bad order is a failure linking to the order (or the run)."""
    if source is None:
        from portal.clients import shipping_client

        source = shipping_client()
    from_date = from_date or (timezone.now() - timedelta(days=lookback_days())).date()
    run = OrderSyncRun.objects.create(from_date=from_date, triggered_by=actor if getattr(actor, "pk", None) else None)
    counts = _Counts()
    try:
        # The whole listing is read before anything is written: "vanished" is only decided
        # against a complete listing (a failure here fails the run and flags nothing).
        headers = list(source.iter_orders(from_date=from_date))
        counts.fetched = len(headers)
        incoming = _parse_headers(headers, counts)
        progress = _SyncProgress(job_id, run, counts)
        progress.start(total=len(incoming) + counts.failed)
        for start in range(0, len(incoming), chunk_size):
            _sync_chunk(incoming[start:start + chunk_size], source=source, counts=counts, actor=actor)
            progress.advance()
        seen = {i.header["order_header_id"] for i in incoming}
        seen |= {e["orderHeaderId"] for e in counts.errors if isinstance(e["orderHeaderId"], int)}
        counts.flagged += _flag_vanished(from_date=from_date, seen=seen, actor=actor)
        run.status = OrderSyncRun.Status.PARTIAL if counts.failed else OrderSyncRun.Status.SUCCEEDED
    except VendorError as exc:
        logger.warning("order sync %s stopped: %s", run.pk, exc)
        run.status = OrderSyncRun.Status.FAILED
        run.error = f"{type(exc).__name__}: {exc}"[:500]
    except Exception as exc:
        # Never leave a run "running" forever; the error still reaches the task/worker log.
        OrderSyncRun.objects.filter(pk=run.pk).update(
            status=OrderSyncRun.Status.FAILED, error=f"{type(exc).__name__}: {exc}"[:500], finished_at=timezone.now(),
            **{name: getattr(counts, name) for name in ("fetched", "created", "updated", "unchanged", "flagged", "failed")},
        )
        raise
    for name in ("fetched", "created", "updated", "unchanged", "flagged", "failed"):
        setattr(run, name, getattr(counts, name))
    run.errors = counts.errors[:1000]
    run.finished_at = timezone.now()
    run.save()
    return run


class _SyncProgress:
    """Reports a sync's progress to its job (portal.jobs): one update per chunk, not per order."""

    def __init__(self, job_id: int | None, run: OrderSyncRun, counts: _Counts):
        self.job_id, self.run, self.counts = job_id, run, counts
        self.done = self.failed = 0

    def start(self, *, total: int) -> None:
        if self.job_id is None:
            return
        from portal.jobs import job_set_total

        job_set_total(job_id=self.job_id, total=total)
        self.advance()  # orders refused while reading the listing

    def advance(self) -> None:
        if self.job_id is None:
            return
        from portal.jobs import MAX_FAILURES_SHOWN, admin_url, job_advance

        c = self.counts
        done = c.created + c.updated + c.unchanged
        # The job page lists the first failures; the run keeps every error, the job counts them.
        new_errors = c.errors[min(self.failed, MAX_FAILURES_SHOWN):min(c.failed, MAX_FAILURES_SHOWN)]
        ohids = [e["orderHeaderId"] for e in new_errors if isinstance(e["orderHeaderId"], int)]
        local = dict(Order.objects.filter(order_header_id__in=ohids).values_list("order_header_id", "pk")) if ohids else {}
        run_url = admin_url("orders.OrderSyncRun", self.run.pk)
        failures = [
            {"label": f"order {e['orderHeaderId'] if e['orderHeaderId'] is not None else '(no id)'}",
             "url": admin_url("orders.Order", local[e["orderHeaderId"]]) if e["orderHeaderId"] in local else run_url,
             "message": f"{e['field']}: {e['message']}" if e["field"] else e["message"]}
            for e in new_errors
        ]
        job_advance(job_id=self.job_id, done=done - self.done, failed=c.failed - self.failed, failures=failures)
        self.done, self.failed = done, c.failed


def _parse_headers(headers: list, counts: _Counts) -> list[_Incoming]:
    incoming: dict[int, _Incoming] = {}
    for raw in headers:
        ohid = raw.get("orderHeaderId") if isinstance(raw, dict) else None
        try:
            header = header_parse(raw)
        except BadOrder as exc:
            counts.bad(ohid, exc)
            continue
        # A page boundary shifting under us can list an order twice: the later copy wins.
        incoming[header["order_header_id"]] = _Incoming(header=header, digest=_digest(header))
    return list(incoming.values())


def _sync_chunk(chunk: list[_Incoming], *, source: OrderSource, counts: _Counts, actor=None) -> None:
    existing = {
        o.order_header_id: o
        for o in Order.objects.filter(order_header_id__in=[i.header["order_header_id"] for i in chunk]).only(
            "id", "order_header_id", "vendor_digest", "items_digest", "status", "flagged", "flag_reason",
            "shipment_status",
        )
    }
    # Fetch items where they may matter (network; outside any transaction).
    ready: list[_Incoming] = []
    for inc in chunk:
        ohid = inc.header["order_header_id"]
        order = existing.get(ohid)
        needs_items = order is None or order.vendor_digest != inc.digest or order.status in ITEMS_FOLLOW_PARTNER
        if needs_items:
            try:
                inc.items = items_parse(source.list_items(ohid), order_header_id=ohid)
            except BadOrder as exc:
                counts.bad(ohid, exc)
                continue
            except VendorError as exc:
                counts.bad(ohid, f"items could not be read: {exc}", "items")
                continue
            inc.items_digest = _digest(inc.items)
        ready.append(inc)
    try:
        with transaction.atomic():
            _write_chunk(ready, existing, counts, actor=actor)
    except (IntegrityError, ValidationError) as exc:
        # Something only the database saw (a concurrent manual entry of the same order...): fall
        # back to one order per transaction so one bad order cannot hold back the rest.
        logger.warning("order sync chunk fell back to per-order writes: %s", exc)
        for inc in ready:
            try:
                with transaction.atomic():
                    fresh = Order.objects.filter(order_header_id=inc.header["order_header_id"]).first()
                    _write_chunk([inc], {fresh.order_header_id: fresh} if fresh else {}, counts, actor=actor)
            except (IntegrityError, ValidationError) as one_exc:
                counts.bad(inc.header["order_header_id"], f"could not be stored: {one_exc}", "order")


def _accounts_for(chunk: list[_Incoming]) -> dict[str, Account]:
    wanted = {i.header["account_id"]: i.header for i in chunk}
    accounts = {a.account_id: a for a in Account.objects.filter(account_id__in=wanted)}
    missing = [
        Account(account_id=aid, partner_id=h["partner_id"], reseller=h["reseller_name"])
        for aid, h in wanted.items() if aid not in accounts
    ]
    if missing:
        Account.objects.bulk_create(missing, ignore_conflicts=True)
        accounts.update({a.account_id: a for a in Account.objects.filter(account_id__in=[m.account_id for m in missing])})
    return accounts


_HEADER_FIELDS = [
    "order_date", "shipment_status", "comment", "ship_name", "ship_email", "ship_street1", "ship_street2",
    "ship_city", "ship_state", "ship_zip_code", "ship_telephone1", "ship_telephone2", "reseller_name",
    "reseller_email", "purchase_order_number", "shipment_reference", "validated",
]


# Who the audit trail names for a sync nobody clicked (the beat's run).
SYNC_ACTOR = "order sync"


def _write_chunk(chunk: list[_Incoming], existing: dict[int, Order], counts: _Counts, actor=None) -> None:
    if not chunk:
        return
    now = timezone.now()
    accounts = _accounts_for(chunk)
    products = {p.code: p for p in Product.objects.filter(code__in={i["product_code"] for c in chunk for i in (c.items or [])})}
    new_orders, new_items_for, changed, events = [], {}, [], []
    item_updates: list[tuple[Order, list[dict]]] = []
    local_counts = _Counts()
    for inc in chunk:
        h = inc.header
        order = existing.get(h["order_header_id"])
        if order is None:
            order = Order(
                order_header_id=h["order_header_id"], account=accounts[h["account_id"]],
                **{f: h[f] for f in _HEADER_FIELDS}, source=Order.Source.API, vendor_digest=inc.digest,
                items_digest=inc.items_digest, last_synced_at=now,
            )
            if _is_cancelled(h["shipment_status"]):
                order.flagged, order.flag_reason = True, CANCELLED_REASON.format(status=h["shipment_status"])
                local_counts.flagged += 1
            new_orders.append(order)
            new_items_for[h["order_header_id"]] = inc.items or []
            local_counts.created += 1
            continue
        header_changed = order.vendor_digest != inc.digest
        items_changed = inc.items is not None and order.items_digest != inc.items_digest
        newly_cancelled = (_is_cancelled(h["shipment_status"]) and order.status in Order.OPEN_STATUSES
                           and not order.flag_reason.startswith("Cancelled on the partner side"))
        reappeared = order.flagged and order.flag_reason == VANISHED_REASON
        if not (header_changed or items_changed or newly_cancelled or reappeared):
            local_counts.unchanged += 1
            continue
        update_fields = ["updated_at", "last_synced_at"]
        order.last_synced_at = now
        order.updated_at = now
        messages = []
        if header_changed:
            for f in _HEADER_FIELDS:
                setattr(order, f, h[f])
            order.account = accounts[h["account_id"]]
            order.vendor_digest = inc.digest
            update_fields += [*_HEADER_FIELDS, "account", "vendor_digest"]
            messages.append("header updated from the partner API")
        if reappeared:
            order.flagged, order.flag_reason = False, ""
            update_fields += ["flagged", "flag_reason"]
            messages.append("listed again by the partner API")
        if items_changed:
            order.items_digest = inc.items_digest
            update_fields.append("items_digest")
            if order.status in ITEMS_FOLLOW_PARTNER:
                item_updates.append((order, inc.items))
                messages.append("items updated from the partner API")
            else:
                order.flagged, order.flag_reason = True, ITEMS_CHANGED_REASON
                update_fields += ["flagged", "flag_reason"]
                local_counts.flagged += 1
                messages.append(ITEMS_CHANGED_REASON)
        if newly_cancelled:
            order.flagged, order.flag_reason = True, CANCELLED_REASON.format(status=h["shipment_status"])
            update_fields += ["flagged", "flag_reason"]
            local_counts.flagged += 1
            messages.append(order.flag_reason)
        changed.append((order, sorted(set(update_fields))))
        events.append(OrderEvent(order=order, kind="synced", message="; ".join(messages)[:500]))
        local_counts.updated += 1

    who = actor if getattr(actor, "pk", None) else SYNC_ACTOR
    if new_orders:
        Order.objects.bulk_create(new_orders)
        by_ohid = {o.order_header_id: o for o in new_orders}
        if any(o.pk is None for o in new_orders):  # backends without RETURNING
            by_ohid = {o.order_header_id: o for o in Order.objects.filter(order_header_id__in=list(by_ohid))}
        new_items = OrderItem.objects.bulk_create([
            OrderItem(order=by_ohid[ohid], product=products.get(item["product_code"]), **item)
            for ohid, items in new_items_for.items() for item in items
        ])
        # One audit row per bulk write, with the ids (portal.audit), not one per order.
        audit_bulk(model=Order, ids=[o.pk for o in by_ohid.values()], action=AuditAction.CREATE, actor=who,
                   message="created from the partner shipping API by the order sync")
        audit_bulk(model=OrderItem, ids=[i.pk for i in new_items if i.pk is not None], action=AuditAction.CREATE,
                   actor=who, message="created from the partner shipping API by the order sync")
        events += [
            OrderEvent(order=o, kind="synced", to_status=o.status,
                       message="created from the partner API" + (f"; {o.flag_reason}" if o.flagged else ""))
            for o in by_ohid.values()
        ]
    # Group header updates by their field set so each group is one bulk_update.
    groups: dict[tuple, list[Order]] = {}
    for order, fields in changed:
        groups.setdefault(tuple(fields), []).append(order)
    for fields, orders in groups.items():
        Order.objects.bulk_update(orders, list(fields))
        audit_bulk(model=Order, ids=[o.pk for o in orders], action=AuditAction.BULK_UPDATE, actor=who,
                   changes={"fields": [f for f in fields if f not in ("updated_at", "last_synced_at")]},
                   message="updated from the partner shipping API by the order sync (values per order in its history)")
    for order, items in item_updates:
        _replace_items(order, items, products)
    OrderEvent.objects.bulk_create(events)
    # Counted only once the chunk is written: a rolled-back chunk must not be reported as done.
    for name in ("created", "updated", "unchanged", "flagged"):
        setattr(counts, name, getattr(counts, name) + getattr(local_counts, name))


def _replace_items(order: Order, items: list[dict], products: dict[str, Product]) -> None:
    """Upsert an order's items by partner item id; drop the ones the partner removed (only
    reached before approval, when no serial is attached yet)."""
    current = {i.vendor_item_id: i for i in order.items.all()}
    keep = set()
    for item in items:
        keep.add(item["vendor_item_id"])
        row = current.get(item["vendor_item_id"])
        if row is None:
            OrderItem.objects.create(order=order, product=products.get(item["product_code"]), **item)
            continue
        for k, v in item.items():
            setattr(row, k, v)
        row.product = products.get(item["product_code"])
        row.save()
    removed = [i.pk for vid, i in current.items() if vid not in keep and i.device_id is None]
    if removed:
        OrderItem.objects.filter(pk__in=removed).delete()


def _flag_vanished(*, from_date: date, seen: set[int], actor=None) -> int:
    """Open partner orders within the window that the API no longer lists: flag, never delete."""
    start = timezone.make_aware(datetime.combine(from_date, datetime.min.time()), UTC)
    candidates = list(
        Order.objects.filter(source=Order.Source.API, status__in=Order.OPEN_STATUSES, order_date__gte=start,
                             flagged=False, order_header_id__isnull=False)
        .exclude(order_header_id__in=seen).only("id", "order_header_id")
    ) if len(seen) < 50_000 else _vanished_large(start, seen)
    if not candidates:
        return 0
    Order.objects.filter(pk__in=[o.pk for o in candidates]).update(
        flagged=True, flag_reason=VANISHED_REASON, updated_at=timezone.now()
    )
    audit_bulk(model=Order, ids=[o.pk for o in candidates], action=AuditAction.BULK_UPDATE,
               actor=actor if getattr(actor, "pk", None) else SYNC_ACTOR,
               changes={"flagged": True, "flag_reason": VANISHED_REASON}, message="flagged by the order sync")
    OrderEvent.objects.bulk_create(OrderEvent(order=o, kind="flagged", message=VANISHED_REASON) for o in candidates)
    return len(candidates)


def _vanished_large(start: datetime, seen: set[int]) -> list[Order]:
    # Too many ids for one NOT IN: compare in Python over the (indexed) open orders instead.
    return [
        o for o in Order.objects.filter(source=Order.Source.API, status__in=Order.OPEN_STATUSES,
                                        order_date__gte=start, flagged=False, order_header_id__isnull=False)
        .only("id", "order_header_id").iterator(chunk_size=2000)
        if o.order_header_id not in seen
    ]


# --------------------------------------------------------------------------- manual entry


@transaction.atomic
def order_create_manual(
    *, account_id: str, order_date: datetime | date | None = None, items: list[dict], actor=None,
    order_header_id: int | None = None, purchase_order_number: str = "", shipment_reference: str = "",
    comment: str = "", reseller_name: str = "", reseller_email: str = "", shipping_contact: dict | None = None,
) -> Order:
    """Enter an order by hand (from a PO / packing-slip e-mail).

    ``items``: [{"product_code": str, "quantity": int (default 1), "requires_serial"/"requires_sim"/
    "requires_imei": bool (default: serial for catalogue devices, nothing for accessories)}].
    All or nothing; errors name the field (``items[1].quantity``).
    """
    errors: dict[str, list[str]] = {}
    account_id = (account_id or "").strip()
    if not account_id or len(account_id) > 32:
        errors["account_id"] = ["A partner account id (1–32 characters) is required."]
    if order_header_id is not None:
        if isinstance(order_header_id, bool) or not isinstance(order_header_id, int) or order_header_id <= 0:
            errors["order_header_id"] = ["orderHeaderId must be a positive integer."]
        elif Order.objects.filter(order_header_id=order_header_id).exists():
            errors["order_header_id"] = [f"Order {order_header_id} already exists."]
    if not isinstance(items, list) or not items:
        errors["items"] = ["At least one item is required."]
        items = []
    products = {p.code: p for p in Product.objects.filter(code__in=[str(i.get("product_code", "")) for i in items if isinstance(i, dict)])}
    rows = []
    for n, item in enumerate(items):
        if not isinstance(item, dict):
            errors[f"items[{n}]"] = ["Each item must be an object."]
            continue
        code = str(item.get("product_code") or "").strip()
        quantity = item.get("quantity", 1)
        if not code or len(code) > 64:
            errors[f"items[{n}].product_code"] = ["A product code (1–64 characters) is required."]
        if isinstance(quantity, bool) or not isinstance(quantity, int) or not 1 <= quantity <= 500:
            errors[f"items[{n}].quantity"] = ["Quantity must be a whole number from 1 to 500."]
            continue
        product = products.get(code)
        is_device = bool(product and product.myadmin_product_id)
        flags = {}
        for key, default in (("requires_serial", is_device), ("requires_sim", False), ("requires_imei", is_device)):
            value = item.get(key, default)
            if not isinstance(value, bool):
                errors[f"items[{n}].{key}"] = ["Must be true or false."]
            flags[key] = bool(value)
        rows += [dict(product_code=code, product=product, **flags)] * quantity
    contact = shipping_contact or {}
    if not isinstance(contact, dict):
        errors["shipping_contact"] = ["Must be an object."]
        contact = {}
    if isinstance(order_date, date) and not isinstance(order_date, datetime):
        order_date = timezone.make_aware(datetime.combine(order_date, datetime.min.time()))
    if errors:
        raise ValidationError(errors)
    account, _ = Account.objects.get_or_create(account_id=account_id, defaults={"reseller": reseller_name})
    order = Order(
        order_header_id=order_header_id, account=account, order_date=order_date or timezone.now(),
        purchase_order_number=purchase_order_number, shipment_reference=shipment_reference, comment=comment,
        reseller_name=reseller_name, reseller_email=reseller_email, source=Order.Source.MANUAL, validated=True,
        **{name: str(contact.get(key) or "") for key, (name, _) in _CONTACT_TEXT.items()},
    )
    try:
        order.full_clean(exclude=["account"])
    except ValidationError as exc:
        raise ValidationError(exc.message_dict) from exc
    order.save()
    OrderItem.objects.bulk_create(OrderItem(order=order, **row) for row in rows)
    from orders.services.lifecycle import order_record_event

    order_record_event(order=order, kind="created", to_status=order.status, actor=actor,
                       message=f"entered by hand with {len(rows)} item(s)")
    return order
