"""The simulated partner shipping API (REST on the MyAdmin host, ``/api/v3/shipping/partner``).

Read side as seen in third-party code [3P S15]; the write side (``PUT /{id}/items``, ``PUT /{id}``)
is the portal's guess [I] of an API that is not public. Auth: header ``Auth-SessionId`` holding
a MyAdmin session (401 when unknown or expired). Every endpoint runs under fault injection
(system ``shipping``; methods ListOrders, GetOrder, ListOrderItems, SubmitFulfilmentItems,
SubmitFulfilment).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time

from django.db import transaction
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from sandbox.faults import run_with_faults
from sandbox.shipping.models import ShippingOrder, ShippingOrderItem
from sandbox.shipping.seed import ensure_seeded

SYSTEM = "shipping"
MAX_PER_PAGE = 1000


def _error(status: int, message: str, errors: dict | None = None) -> JsonResponse:
    body = {"error": message, "message": message}
    if errors:
        body["errors"] = errors
    return JsonResponse(body, status=status)


def _serve(request, method: str, execute):
    """Authenticate, seed, then run ``execute`` under the active faults."""
    from sandbox.myadmin.auth import session_expire, user_for_session

    session_id = request.headers.get("Auth-SessionId", "")

    def guarded():
        if user_for_session(session_id) is None:
            return _error(401, "SessionExpiredException: session is unknown or has expired")
        ensure_seeded()
        return execute()

    def expire_session():
        session_expire(session_id)

    return run_with_faults(request, SYSTEM, method, guarded, expire_session=expire_session)


def order_json(order: ShippingOrder) -> dict:
    if order.raw_override is not None:
        return order.raw_override
    contact_keys = ("name", "email", "street1", "street2", "city", "state", "zipCode", "telephone1", "telephone2")
    return {
        "orderHeaderId": order.order_header_id,
        "account": {"accountId": order.account_id, "id": order.account_numeric_id},
        "orderDate": order.order_date.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "shipmentStatus": order.shipment_status,
        "comment": order.comment,
        "shippingContact": {k: (order.shipping_contact or {}).get(k, "") for k in contact_keys},
        "resellerName": order.reseller_name,
        "resellerEmail": order.reseller_email,
        "purchaseOrderNumber": order.purchase_order_number,
        "shipmentReference": order.shipment_reference,
        "validated": order.validated,
    }


def item_json(item: ShippingOrderItem) -> dict:
    return {
        "id": item.pk, "shippingHeaderPartnerId": item.order.order_header_id, "productCode": item.product_code,
        "requiresSerialNumber": item.requires_serial_number, "requiresSimNumber": item.requires_sim_number,
        "requiresImei": item.requires_imei, "serialNumber": item.serial_number, "simNumber": item.sim_number,
        "imei": item.imei, "attribute": item.attribute,
    }


def _parse_day(value: str, name: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"{name} must be YYYY-MM-DD") from exc


@csrf_exempt
def orders(request):
    if request.method != "GET":
        return _error(405, "method not allowed")

    def execute():
        qs = ShippingOrder.objects.all()
        params = request.GET
        try:
            if params.get("fromDate"):
                day = _parse_day(params["fromDate"], "fromDate")
                qs = qs.filter(order_date__gte=timezone.make_aware(datetime.combine(day, time.min), UTC))
            if params.get("toDate"):
                day = _parse_day(params["toDate"], "toDate")
                qs = qs.filter(order_date__lte=timezone.make_aware(datetime.combine(day, time.max), UTC))
            page = int(params.get("page", 1))
            per_page = int(params.get("perPage") or params.get("per_page") or 100)
        except ValueError as exc:
            return _error(400, str(exc))
        if page < 1 or not 1 <= per_page <= MAX_PER_PAGE:
            return _error(400, f"page must be ≥ 1 and perPage between 1 and {MAX_PER_PAGE}")
        for param, field in (("status", "shipment_status"), ("purchaseOrderNumber", "purchase_order_number"),
                             ("shipmentReference", "shipment_reference")):
            if params.get(param):
                qs = qs.filter(**{field: params[param]})
        rows = qs.order_by("order_header_id")[(page - 1) * per_page: page * per_page]
        return JsonResponse([order_json(o) for o in rows], safe=False)

    return _serve(request, "ListOrders", execute)


def _load_json(request):
    try:
        return json.loads(request.body or b"null")
    except ValueError:
        return None


@csrf_exempt
def order_detail(request, order_header_id: int):
    if request.method == "GET":
        def execute():
            order = ShippingOrder.objects.filter(order_header_id=order_header_id).first()
            if order is None:
                return _error(404, f"order {order_header_id} not found")
            return JsonResponse(order_json(order))

        return _serve(request, "GetOrder", execute)
    if request.method in ("PUT", "PATCH"):
        return _serve(request, "SubmitFulfilment", lambda: _submit_header(request, order_header_id))
    return _error(405, "method not allowed")


@csrf_exempt
def order_items(request, order_header_id: int):
    if request.method == "GET":
        def execute():
            order = ShippingOrder.objects.filter(order_header_id=order_header_id).first()
            if order is None:
                return _error(404, f"order {order_header_id} not found")
            return JsonResponse([item_json(i) for i in order.items.select_related("order")], safe=False)

        return _serve(request, "ListOrderItems", execute)
    if request.method in ("PUT", "PATCH"):
        return _serve(request, "SubmitFulfilmentItems", lambda: _submit_items(request, order_header_id))
    return _error(405, "method not allowed")


def _known_serials(serials: list[str]) -> dict[str, str]:
    """serial → account id, from the MyAdmin simulator's devices (same vendor, same host)."""
    from sandbox.myadmin.models import SandboxDevice

    return {
        d.serial: d.account.account_id
        for d in SandboxDevice.objects.filter(serial__in=serials).select_related("account")
    }


def _submit_items(request, order_header_id: int):
    """GUESS [I]: PUT /{orderHeaderId}/items with [{"id","serialNumber","simNumber","imei"}].
    Replaces what is stored, so the same write twice is a no-op."""
    body = _load_json(request)
    if not isinstance(body, list):
        return _error(400, "body must be a JSON array of items")
    with transaction.atomic():
        order = ShippingOrder.objects.select_for_update().filter(order_header_id=order_header_id).first()
        if order is None:
            return _error(404, f"order {order_header_id} not found")
        if order.shipment_status == ShippingOrder.CANCELLED:
            return _error(409, f"order {order_header_id} is cancelled")
        items = {i.pk: i for i in order.items.all()}
        errors: dict[str, list[str]] = {}
        seen: set[int] = set()
        for n, entry in enumerate(body):
            if not isinstance(entry, dict) or not isinstance(entry.get("id"), int) or entry["id"] not in items:
                errors[f"[{n}].id"] = [f"not an item of order {order_header_id}"]
                continue
            seen.add(entry["id"])
            item = items[entry["id"]]
            for key, required in (("serialNumber", item.requires_serial_number),
                                  ("simNumber", item.requires_sim_number), ("imei", item.requires_imei)):
                value = entry.get(key) or ""
                if not isinstance(value, str):
                    errors[f"[{n}].{key}"] = ["must be a string"]
                elif required and not value.strip():
                    errors[f"[{n}].{key}"] = [f"item {item.pk} ({item.product_code}) requires {key}"]
        missing = [pk for pk, i in items.items() if pk not in seen and i.requires_serial_number]
        for pk in missing:
            errors[f"item {pk}"] = ["missing from the fulfilment"]
        serials = [e.get("serialNumber") for e in body if isinstance(e, dict) and e.get("serialNumber")]
        if not errors and serials:
            known = _known_serials(serials)
            for n, entry in enumerate(body):
                serial = entry.get("serialNumber")
                if serial and known.get(serial) != order.account_id:
                    errors[f"[{n}].serialNumber"] = [f"{serial} is not a device on account {order.account_id}"]
        if errors:
            return _error(400, "invalid fulfilment items", errors)
        for entry in body:
            item = items[entry["id"]]
            item.serial_number = entry.get("serialNumber") or ""
            item.sim_number = entry.get("simNumber") or ""
            item.imei = entry.get("imei") or ""
            item.save(update_fields=["serial_number", "sim_number", "imei"])
        order.fulfilment_writes += 1
        order.save(update_fields=["fulfilment_writes"])
    return JsonResponse([item_json(i) for i in order.items.select_related("order")], safe=False)


def _submit_header(request, order_header_id: int):
    """GUESS [I]: PUT /{orderHeaderId} with {"carrier","trackingNumber","shipDate"}; marks the order
    Fulfilled once every item that needs a serial/SIM/IMEI has one. Repeating it is a no-op."""
    body = _load_json(request)
    if not isinstance(body, dict):
        return _error(400, "body must be a JSON object")
    errors = {}
    for key in ("carrier", "trackingNumber", "shipDate"):
        if not isinstance(body.get(key), str) or not body[key].strip():
            errors[key] = ["required"]
    if "shipDate" not in errors:
        try:
            ship_date = date.fromisoformat(body["shipDate"][:10])
        except ValueError:
            errors["shipDate"] = ["must be YYYY-MM-DD"]
    if errors:
        return _error(400, "invalid fulfilment", errors)
    with transaction.atomic():
        order = ShippingOrder.objects.select_for_update().filter(order_header_id=order_header_id).first()
        if order is None:
            return _error(404, f"order {order_header_id} not found")
        if order.shipment_status == ShippingOrder.CANCELLED:
            return _error(409, f"order {order_header_id} is cancelled")
        incomplete = [
            f"item {i.pk}" for i in order.items.all()
            if (i.requires_serial_number and not i.serial_number) or (i.requires_sim_number and not i.sim_number)
            or (i.requires_imei and not i.imei)
        ]
        if incomplete:
            return _error(409, "items lack their assignments: " + ", ".join(incomplete))
        order.carrier = body["carrier"].strip()
        order.tracking_number = body["trackingNumber"].strip()
        order.ship_date = ship_date
        order.shipment_status = ShippingOrder.FULFILLED
        order.fulfilment_writes += 1
        order.save()
    return JsonResponse({**order_json(order), "carrier": order.carrier, "trackingNumber": order.tracking_number,
                         "shipDate": order.ship_date.isoformat()})
