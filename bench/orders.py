"""Order intake benchmark: sync N orders × 3 items (default 10,000) from an in-memory page source,
portal bulk upsert vs a naive per-row `update_or_create` baseline, measured in the same run.

    .venv/bin/python bench/orders.py [--quick] [--orders N] [--naive-orders M]

(--naive-orders / BENCH_NAIVE_ORDERS measure the slow per-row baseline on fewer orders and scale
its time linearly; by default it runs on all N.)

Figures: orders.sync_10k_seconds, orders.sync_queries_per_order, orders.sync_vs_naive_ratio
(portal time ÷ naive time), plus orders.resync_10k_seconds (the idempotent re-run).
The source is local so the figures measure the portal, not the network.
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime, timedelta

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import (
    figure,
    is_postgres,
    parse_args,
    setup_django,
    timer,
    write_results,
)

PORTAL_BASE = 50_000_000  # orderHeaderIds of the portal run
NAIVE_BASE = 60_000_000  # orderHeaderIds of the baseline run
ITEMS_PER_ORDER = 3


class PageSource:
    """The partner API's shape, in memory: headers page by page, items per order."""

    def __init__(self, base: int, count: int):
        self.base, self.count = base, count
        now = datetime.now(UTC)
        self.headers = [self._header(base + n, now - timedelta(minutes=n)) for n in range(count)]

    @staticmethod
    def _header(ohid: int, when: datetime) -> dict:
        account = ("ACME01", "FLEETCO", "INTEG01")[ohid % 3]
        return {
            "orderHeaderId": ohid, "account": {"accountId": account, "id": 4100 + ohid % 3},
            "orderDate": when.strftime("%Y-%m-%dT%H:%M:%SZ"), "shipmentStatus": "PendingFulfillment", "comment": "",
            "shippingContact": {"name": f"Customer {ohid}", "email": f"c{ohid}@example.com", "street1": "1 Main St",
                                "street2": "", "city": "Oakland", "state": "CA", "zipCode": "94607",
                                "telephone1": "+1 510 555 0100", "telephone2": ""},
            "resellerName": "Northwind Telematics", "resellerEmail": "orders@northwind.example",
            "purchaseOrderNumber": f"PO-{ohid}", "shipmentReference": f"SR-{ohid}", "validated": True,
        }

    def iter_orders(self, **filters):
        per_page = 500
        for start in range(0, len(self.headers), per_page):
            yield from self.headers[start:start + per_page]

    def list_items(self, ohid: int) -> list[dict]:
        return [
            {"id": ohid * 10 + n, "shippingHeaderPartnerId": ohid,
             "productCode": ("INTEG-TRK-100", "INTEG-VEH-200", "INTEG-HARNESS-9")[n],
             "requiresSerialNumber": n < 2, "requiresSimNumber": n < 2, "requiresImei": n < 2,
             "serialNumber": "", "simNumber": "", "imei": "", "attribute": ""}
            for n in range(ITEMS_PER_ORDER)
        ]


def naive_sync(source: PageSource) -> None:
    """What a first version would do: one update_or_create per account, order and item."""
    from django.utils.dateparse import parse_datetime

    from orders.models import Account, Order, OrderItem, Product

    for raw in source.iter_orders():
        account, _ = Account.objects.get_or_create(account_id=raw["account"]["accountId"])
        contact = raw["shippingContact"]
        order, _ = Order.objects.update_or_create(
            order_header_id=raw["orderHeaderId"],
            defaults={
                "account": account, "order_date": parse_datetime(raw["orderDate"]), "shipment_status": raw["shipmentStatus"],
                "comment": raw["comment"], "ship_name": contact["name"], "ship_email": contact["email"],
                "ship_street1": contact["street1"], "ship_street2": contact["street2"], "ship_city": contact["city"],
                "ship_state": contact["state"], "ship_zip_code": contact["zipCode"], "ship_telephone1": contact["telephone1"],
                "ship_telephone2": contact["telephone2"], "reseller_name": raw["resellerName"],
                "reseller_email": raw["resellerEmail"], "purchase_order_number": raw["purchaseOrderNumber"],
                "shipment_reference": raw["shipmentReference"], "validated": raw["validated"],
            },
        )
        for item in source.list_items(raw["orderHeaderId"]):
            OrderItem.objects.update_or_create(
                order=order, vendor_item_id=item["id"],
                defaults={"product_code": item["productCode"], "product": Product.objects.filter(code=item["productCode"]).first(),
                              "requires_serial": item["requiresSerialNumber"], "requires_sim": item["requiresSimNumber"],
                              "requires_imei": item["requiresImei"], "attribute": item["attribute"]},
            )


class QueryCounter:
    """Counts every statement (CaptureQueriesContext keeps only the last 9,000)."""

    def __init__(self):
        self.count = 0

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        return execute(sql, params, many, context)


def cleanup() -> None:
    from orders.models import Order, OrderEvent, OrderItem, OrderSyncRun

    mine = {"order_header_id__gte": PORTAL_BASE, "order_header_id__lt": NAIVE_BASE + 10_000_000}
    OrderEvent.objects.filter(**{f"order__{k}": v for k, v in mine.items()}).delete()
    OrderItem.objects.filter(**{f"order__{k}": v for k, v in mine.items()}).delete()
    Order.objects.filter(**mine).delete()
    OrderSyncRun.objects.filter(errors=[], triggered_by=None, fetched__gte=1).delete()


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], orders={"type": int, "default": None, "help": "orders to sync"},
                      naive_orders={"type": int, "default": None,
                                    "help": "orders for the per-row baseline (default: all; it is linear)"})
    count = args.orders or (500 if args.quick else int(os.environ.get("BENCH_ORDERS", "10000")))
    naive_count = min(count, args.naive_orders or int(os.environ.get("BENCH_NAIVE_ORDERS", str(count))))
    setup_django()
    from django.db import connection

    from orders.models import Order, Product
    from orders.services import order_sync

    for code, pid in (("INTEG-TRK-100", 10032), ("INTEG-VEH-200", 10184), ("INTEG-HARNESS-9", None)):
        Product.objects.get_or_create(code=code, defaults={"myadmin_product_id": pid})
    cleanup()
    print(f"orders bench: {count} orders × {ITEMS_PER_ORDER} items on {connection.vendor}")

    source = PageSource(PORTAL_BASE, count)
    portal_queries = QueryCounter()
    with connection.execute_wrapper(portal_queries), timer() as portal:
        run = order_sync(source=source)
    assert run.created == count and run.failed == 0, (run.status, run.created, run.failed, run.errors[:3])
    with timer() as resync:
        again = order_sync(source=source)
    assert again.created == 0 and again.updated == 0, (again.created, again.updated)

    # The per-row baseline costs the same per order at any size (one round trip per row), so a
    # smaller sample may stand in for it: its time is scaled to `count` orders.
    naive_source = PageSource(NAIVE_BASE, naive_count)
    naive_queries = QueryCounter()
    with connection.execute_wrapper(naive_queries), timer() as naive_timer:
        naive_sync(naive_source)
    assert Order.objects.filter(order_header_id__gte=NAIVE_BASE).count() == naive_count
    cleanup()
    naive_seconds = naive_timer.seconds * count / naive_count

    scale = 10_000 / count  # the figure is named for 10k; smaller runs are scaled linearly
    figures = {
        "orders.sync_10k_seconds": figure(round(portal.seconds * scale, 2), "s", target=60,
                                          baseline=round(naive_seconds * scale, 2)),
        "orders.sync_queries_per_order": figure(round(portal_queries.count / count, 3), "queries", target=0.1,
                                                baseline=round(naive_queries.count / naive_count, 2)),
        "orders.sync_vs_naive_ratio": figure(round(portal.seconds / naive_seconds, 3), "×", target=0.25, baseline=1.0),
        "orders.resync_10k_seconds": figure(round(resync.seconds * scale, 2), "s", target=30),
    }
    print(f"portal {portal.seconds:.2f}s ({portal_queries.count} queries), re-sync {resync.seconds:.2f}s, "
          f"naive {naive_seconds:.2f}s (measured on {naive_count}); postgres={is_postgres()} n={count}")
    write_results(figures, quick=args.quick)


if __name__ == "__main__":
    main()
