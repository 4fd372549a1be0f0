"""Client for the Geotab partner shipping API ("Order Now" fulfilment), a REST API on the MyAdmin
host under ``/api/v3/shipping/partner``, authenticated with a MyAdmin session.

What is known (reference geotab.md §3):
- the READ side only from a third-party prototype [3P S15]: ``GET {base}`` lists order headers
  (query ``status``, ``fromDate``, ``toDate`` as YYYY-MM-DD, ``purchaseOrderNumber``,
  ``shipmentReference``, ``page``, ``perPage``) and ``GET {base}/{orderHeaderId}/items`` lists
  the items; header ``Auth-SessionId: <MyAdmin sessionId>``.
- the WRITE side is not public at all. ``submit_fulfilment`` below holds the portal's GUESS of
  it, in this one place, so that obtaining the real contract from Geotab changes only this file.

Plain Python: no Django, no settings. Results are the vendor's JSON objects (dicts); the portal
validates them field by field, because a malformed order must be reported, not crash a sync.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import requests

from integrations.base import (
    AuthenticationError,
    NotExecutedError,
    OutcomeUnknownError,
    RateLimitedError,
    RejectedError,
    SessionExpiredError,
    SharedCredential,
    VendorSession,
    parse_retry_after,
)

SYSTEM = "myadmin_shipping"
# [3P S15] the prototype's spelling; S2 says v3 paging is `per_page`. The sandbox accepts both;
# the real API's spelling is unverified, so it lives in this one constant.
PER_PAGE_PARAM = "perPage"
DEFAULT_PER_PAGE = 100
# A hard stop for paging: a vendor that keeps returning full pages must not loop forever.
MAX_PAGES = 10_000


@dataclass(frozen=True)
class FulfilmentItem:
    """One line of the fulfilment write: the partner's item id and what was assigned to it."""

    item_id: int
    serial_number: str
    sim_number: str = ""
    imei: str = ""


class ShippingClient:
    def __init__(
        self,
        base_url: str,
        *,
        credential: SharedCredential,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        per_page: int = DEFAULT_PER_PAGE,
    ):
        self.base_url = base_url.rstrip("/")
        self.credential = credential
        self.per_page = per_page
        self.session = VendorSession(SYSTEM, connect_timeout=connect_timeout, read_timeout=read_timeout)

    # ----------------------------------------------------------------------------- reads

    def list_orders(
        self,
        *,
        status: str | None = None,
        from_date: date | None = None,
        to_date: date | None = None,
        purchase_order_number: str | None = None,
        shipment_reference: str | None = None,
        page: int = 1,
        per_page: int | None = None,
    ) -> list[dict]:
        """One page of order headers (a JSON array; an empty or short page is the last)."""
        params: dict[str, Any] = {"page": page, PER_PAGE_PARAM: per_page or self.per_page}
        if status:
            params["status"] = status
        if from_date:
            params["fromDate"] = from_date.isoformat()
        if to_date:
            params["toDate"] = to_date.isoformat()
        if purchase_order_number:
            params["purchaseOrderNumber"] = purchase_order_number
        if shipment_reference:
            params["shipmentReference"] = shipment_reference
        result = self._request("ListOrders", "GET", self.base_url, params=params, digest_payload=params)
        if not isinstance(result, list):
            raise OutcomeUnknownError("order list is not a JSON array", system=SYSTEM, method="ListOrders")
        return result

    def iter_orders(self, **filters: Any) -> Iterator[dict]:
        """Every order header matching ``filters``, page by page."""
        per_page = filters.pop("per_page", None) or self.per_page
        for page in range(1, MAX_PAGES + 1):
            rows = self.list_orders(page=page, per_page=per_page, **filters)
            yield from rows
            if len(rows) < per_page:
                return

    def list_items(self, order_header_id: int) -> list[dict]:
        url = f"{self.base_url}/{int(order_header_id)}/items"
        result = self._request("ListOrderItems", "GET", url, digest_payload={"orderHeaderId": order_header_id})
        if not isinstance(result, list):
            raise OutcomeUnknownError("item list is not a JSON array", system=SYSTEM, method="ListOrderItems")
        return result

    # ----------------------------------------------------------------------------- write (GUESS)

    def submit_fulfilment(
        self,
        order_header_id: int,
        *,
        carrier: str,
        tracking_number: str,
        ship_date: date,
        items: list[FulfilmentItem],
    ) -> dict:
        """Tell the partner API the order shipped, with the units assigned to each item.

        GUESS [I]: the write endpoints are not public (geotab.md §3). Assumed shape:
          ``PUT {base}/{orderHeaderId}/items`` with ``[{"id", "serialNumber", "simNumber", "imei"}]``
          then ``PUT {base}/{orderHeaderId}`` with ``{"carrier", "trackingNumber", "shipDate"}``.
        Items go first so that the header write (which marks the order shipped on the partner
        side) only happens once the assignments are stored. Both are PUTs that replace state, so
        sending the same fulfilment twice is harmless: the caller may retry an unknown outcome.
        Returns the order header as the API answers it after the write.
        """
        oid = int(order_header_id)
        item_body = [
            {"id": i.item_id, "serialNumber": i.serial_number, "simNumber": i.sim_number, "imei": i.imei}
            for i in items
        ]
        self._request("SubmitFulfilmentItems", "PUT", f"{self.base_url}/{oid}/items", json=item_body,
                      digest_payload={"orderHeaderId": oid, "items": item_body})
        header_body = {"carrier": carrier, "trackingNumber": tracking_number, "shipDate": ship_date.isoformat()}
        result = self._request("SubmitFulfilment", "PUT", f"{self.base_url}/{oid}", json=header_body,
                               digest_payload={"orderHeaderId": oid, **header_body})
        return result if isinstance(result, dict) else {}

    # ----------------------------------------------------------------------------- transport

    def _request(self, method: str, http_method: str, url: str, *, digest_payload: Any, **kwargs: Any) -> Any:
        """Send with the shared MyAdmin session; on 401 renew it once (single-flight) and resend.

        A 401 means the session was refused before anything executed, so resending is safe even
        for the writes.
        """
        value = self.credential.get()
        try:
            return self._send(method, http_method, url, value, digest_payload=digest_payload, **kwargs)
        except SessionExpiredError:
            fresh = self.credential.renew(value)
            return self._send(method, http_method, url, fresh, digest_payload=digest_payload, **kwargs)

    def _send(self, method: str, http_method: str, url: str, credential_value: dict, **kwargs: Any) -> Any:
        headers = {"Auth-SessionId": str(credential_value.get("sessionId", "")), "Accept": "application/json"}
        return self.session.call(method, http_method, url, parse=_parse, headers=headers, **kwargs)


def _error_message(response: requests.Response) -> tuple[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return (response.text or response.reason or "")[:300], None
    if isinstance(body, dict):
        message = body.get("message") or body.get("error") or body.get("detail") or str(body)
        return str(message)[:300], body.get("errors")
    return str(body)[:300], None


def _parse(response: requests.Response) -> Any:
    status = response.status_code
    if 200 <= status < 300:
        if status == 204 or not response.content:
            return None
        return response.json()  # ValueError → the session classifies it as unknown
    message, details = _error_message(response)
    if status == 401:
        raise SessionExpiredError(message or "session refused", error_name="Unauthorized")
    if status == 403:
        raise AuthenticationError(message or "forbidden", error_name="Forbidden")
    if status == 429:
        raise RateLimitedError(
            message or "rate limited", error_name="TooManyRequests",
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )
    if status == 503:
        # An outage answered by the front door: the request was not processed.
        raise NotExecutedError(
            message or "service unavailable", error_name="ServiceUnavailable",
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )
    if 400 <= status < 500:
        raise RejectedError(message or f"HTTP {status}", error_name=f"HTTP{status}", details=details)
    raise OutcomeUnknownError(message or f"HTTP {status}", error_name=f"HTTP{status}")
