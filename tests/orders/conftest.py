"""Orders fixtures: the catalogue, the live sandbox wiring, orders ready for each step, and a
fake page source for sync tests that need no HTTP."""

import itertools
from datetime import timedelta

import pytest
from django.utils import timezone

from devices.models import Device
from orders.models import Account, Order, OrderItem, Product

CATALOGUE = [
    ("INTEG-TRK-100", 10032), ("INTEG-TRK-LITE", 10032), ("INTEG-VEH-200", 10184), ("INTEG-HARNESS-9", None),
]

# Valid test identifiers: IMEIs with a Luhn check digit, ICCIDs (89…) with a Luhn check digit.
_serials = itertools.count(1)


def luhn_complete(body: str) -> str:
    from stdnum import luhn

    return body + luhn.calc_check_digit(body)


def make_imei(n: int) -> str:
    return luhn_complete(f"35345678{n:06d}")


def make_iccid(n: int) -> str:
    return luhn_complete(f"894450010{n:09d}")


@pytest.fixture
def catalogue(db):
    # Transactional tests flush the table the data migration filled: recreate it.
    return {code: Product.objects.get_or_create(code=code, defaults={"myadmin_product_id": pid})[0]
            for code, pid in CATALOGUE}


@pytest.fixture
def live_vendors(settings, sandbox_url):
    """Point the portal's MyAdmin and shipping clients at the live sandbox."""
    settings.MYADMIN_API_URL = f"{sandbox_url}/myadmin/v2/MyAdminApi.ashx"
    settings.MYADMIN_SHIPPING_URL = f"{sandbox_url}/myadmin/api/v3/shipping/partner"
    return sandbox_url


@pytest.fixture
def myadmin(live_vendors):
    """A MyAdmin client on the live sandbox. Its session lives in memory: on SQLite the shared
    DatabaseTokenStore would hold a row lock across the login request the live server answers."""
    from integrations.base import MemoryRateLimiter, MemoryTokenStore
    from integrations.myadmin import MyAdminClient

    return MyAdminClient(f"{live_vendors}/myadmin/v2/MyAdminApi.ashx", "integrator@example.com",
                         "sandbox-password", token_store=MemoryTokenStore(), rate_limiter=MemoryRateLimiter(),
                         read_timeout=2)


@pytest.fixture
def shipping(live_vendors, myadmin):
    from integrations.shipping import ShippingClient

    return ShippingClient(f"{live_vendors}/myadmin/api/v3/shipping/partner", credential=myadmin.credential,
                          read_timeout=2)


@pytest.fixture
def fault(transactional_db):
    """fault(mode, methods="", **fields) → an active sandbox fault on the partner shipping API."""
    from sandbox.models import Fault

    def make(mode, methods="", **fields):
        return Fault.objects.create(system="shipping", mode=mode, methods=methods, **fields)

    return make


class FakeSource:
    """An in-memory partner API: `orders` is the list of raw headers, `items` maps id → raw items."""

    def __init__(self, orders=None, items=None):
        self.orders = list(orders or [])
        self.items = dict(items or {})
        self.item_calls = 0

    def iter_orders(self, **filters):
        return iter(list(self.orders))

    def list_items(self, order_header_id):
        self.item_calls += 1
        return self.items.get(order_header_id, [])


def raw_order(ohid, *, account="ACME01", days_ago=1, status="PendingFulfillment", **overrides):
    order = {
        "orderHeaderId": ohid, "account": {"accountId": account, "id": 4101},
        "orderDate": (timezone.now() - timedelta(days=days_ago)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "shipmentStatus": status, "comment": "",
        "shippingContact": {"name": "Dana", "email": "dana@example.com", "street1": "1 Main St", "street2": "",
                            "city": "Oakland", "state": "CA", "zipCode": "94607", "telephone1": "", "telephone2": ""},
        "resellerName": "Northwind", "resellerEmail": "n@example.com", "purchaseOrderNumber": f"PO-{ohid}",
        "shipmentReference": f"SR-{ohid}", "validated": True,
    }
    order.update(overrides)
    return order


def raw_items(ohid, count=2, *, code="INTEG-TRK-100", first_id=None):
    base = first_id or ohid * 10
    return [{"id": base + n, "shippingHeaderPartnerId": ohid, "productCode": code, "requiresSerialNumber": True,
             "requiresSimNumber": True, "requiresImei": True, "serialNumber": "", "simNumber": "", "imei": "",
             "attribute": ""} for n in range(count)]


@pytest.fixture
def fake_source():
    return FakeSource


@pytest.fixture
def make_device(db):
    def make(*, erp_no="ACME01", status=Device.Status.PROVISIONED, **fields):
        n = next(_serials)
        return Device.objects.create(serial=fields.pop("serial", f"CX{n:010d}"), product_id=10032,
                                     product_type=Device.ProductType.CUSTOM_DEVICE, erp_no=erp_no, status=status,
                                     **fields)

    return make


@pytest.fixture
def provisioned_order(db, catalogue, make_device):
    """An order in "provisioning" whose two tracker items hold fresh serials, plus a harness."""
    account, _ = Account.objects.get_or_create(account_id="ACME01")
    order = Order.objects.create(order_header_id=900001, account=account, order_date=timezone.now(),
                                 shipment_status="PendingFulfillment", status=Order.Status.PROVISIONING,
                                 purchase_order_number="PO-900001")
    for n in range(2):
        device = make_device()
        OrderItem.objects.create(order=order, vendor_item_id=9000010 + n, product_code="INTEG-TRK-100",
                                 product=catalogue["INTEG-TRK-100"], requires_serial=True, requires_imei=True,
                                 requires_sim=True, device=device, serial=device.serial)
    OrderItem.objects.create(order=order, vendor_item_id=9000019, product_code="INTEG-HARNESS-9",
                             product=catalogue["INTEG-HARNESS-9"], requires_serial=False)
    return order
