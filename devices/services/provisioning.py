"""Provisioning Geotab serials without ever billing twice (DESIGN §3; README, provisioning section).

The discipline, step by step:

1. ``provisioning_request_create`` validates, writes the intent and commits it, then enqueues.
2. ``provisioning_request_process`` claims ONE vendor call at a time under a row lock: it writes
   ``call_started_at`` / ``call_quantity`` and commits BEFORE the call is sent. Calls are also
   serialised per partner account (the "lane"): while a call on an account is unresolved no
   other call starts on that account, so anything new on that account since the call started
   can only come from that call — which is what makes reconciliation decidable.
3. The reply's serials are stored as `Device` rows in the same transaction that clears the call.
   Not executed (429, expired session twice, connection refused) → back to pending with backoff.
   Rejected → failed. Unknown (timeout, reset, 5xx, worker killed) → never resent.
4. ``provisioning_reconcile`` resolves an unknown / stale call from ``GetDeviceContracts``:
   serials created on the account since the call started, of that product, that no `Device`
   holds and no other request's marker claims, are that call's serials. Exactly the expected
   count → attached. None (after a settle time) → the call did not execute; safe to retry.
   Anything else → ``needs_staff``, and the lane stays closed until staff decide.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from devices.models import Device, ProvisioningRequest
from integrations.base import (
    NotExecutedError,
    OutcomeUnknownError,
    RejectedError,
    VendorError,
    backoff_delay,
    vendor_call_context,
)
from integrations.myadmin import BULK_MAX, PRODUCT_TYPES, ProvisionResult
from portal.audit import Action as AuditAction
from portal.audit import audit_bulk

logger = logging.getLogger(__name__)

Status = ProvisioningRequest.Status
MAX_NOT_EXECUTED_RETRIES = 8
MARKER_PREFIX = "portal-provisioning-"


class IdempotencyConflict(Exception):
    """The same Idempotency-Key was used before with a different request body."""

    def __init__(self, existing: ProvisioningRequest):
        super().__init__(
            f"Idempotency-Key was already used for provisioning request #{existing.pk} with a different body."
        )
        self.existing = existing


# Test hook for the fault campaign: called after MyAdmin answered and before the portal commits
# the serials. Raising here is what a worker killed at that instant looks like.
after_vendor_reply: Callable[[ProvisioningRequest, list[str]], None] | None = None


def _client():
    from portal.clients import myadmin_client

    return myadmin_client()


def _setting(name: str, default: float) -> float:
    return float(getattr(settings, name, default))


def settle_seconds() -> float:
    """How long after an unknown outcome before the reconciler trusts MyAdmin's listing."""
    return _setting("PROVISIONING_SETTLE_SECONDS", 60.0)


def clock_skew_seconds() -> float:
    """Allowed difference between the portal's and MyAdmin's clocks."""
    return _setting("PROVISIONING_CLOCK_SKEW_SECONDS", 5.0)


def _call_deadline_seconds() -> float:
    """A worker that is still 'in flight' after this long is dead (its HTTP call timed out)."""
    return settings.VENDOR_CONNECT_TIMEOUT + settings.VENDOR_READ_TIMEOUT + settle_seconds()


def target(req: ProvisioningRequest) -> str:
    return f"devices.ProvisioningRequest:{req.pk}"


# --------------------------------------------------------------------------- create


def _fingerprint(*, product_id, erp_no, quantity, use_bulk, note) -> str:
    body = {"product_id": product_id, "erp_no": erp_no, "quantity": quantity, "use_bulk": use_bulk, "note": note}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def provisioning_accounts(*, refresh_for: str | None = None) -> list[str] | None:
    """The partner accounts the MyAdmin user may provision to, from its shared session (one
    Authenticate at most). None when MyAdmin cannot be asked: the vendor then has the last word.

    ``refresh_for``: an account missing from the stored list triggers one fresh Authenticate
    (an account may have been granted since the session began) — at most every 10 minutes,
    so repeated bad input cannot hammer MyAdmin's rate-limited Authenticate."""
    from django.core.cache import cache

    try:
        client = _client()
        accounts = client.accounts()
        if refresh_for and refresh_for not in accounts and cache.add("provisioning:accounts-refresh", 1, 600):
            client.credential.renew(client.credential.get())
            accounts = client.accounts()
        return accounts
    except VendorError as exc:
        logger.warning("could not read MyAdmin accounts: %s", exc)
        return None


def provisioning_request_create(
    *,
    product_id: int,
    erp_no: str,
    quantity: int = 1,
    requested_by=None,
    idempotency_key: str | None = None,
    use_bulk: bool = False,
    note: str = "",
) -> ProvisioningRequest:
    """Validate, commit the intent, enqueue its processing after commit.

    Raises ``ValidationError`` (field messages; nothing written, no billable call) or
    ``IdempotencyConflict``. The same key with the same body returns the first request.
    """
    errors: dict[str, list[str]] = {}
    try:
        product_id = int(product_id)
    except (TypeError, ValueError):
        errors["product_id"] = ["Product id must be a number."]
    else:
        if product_id not in PRODUCT_TYPES:
            known = ", ".join(f"{k} ({v})" for k, v in PRODUCT_TYPES.items())
            errors["product_id"] = [f"Unknown product id {product_id}; known products: {known}."]
    try:
        quantity = int(quantity)
    except (TypeError, ValueError):
        errors["quantity"] = ["Quantity must be a whole number."]
    else:
        if not 1 <= quantity <= BULK_MAX:
            errors["quantity"] = [f"Quantity must be between 1 and {BULK_MAX} per request."]
    erp_no = (erp_no or "").strip().upper()
    if not erp_no:
        errors["erp_no"] = ["The partner account (ERP no.) is required."]
    elif len(erp_no) > 32:
        errors["erp_no"] = ["The partner account is at most 32 characters."]
    note = (note or "").strip()
    if len(note) > 300:
        errors["note"] = ["The note is at most 300 characters."]
    if idempotency_key is not None:
        idempotency_key = idempotency_key.strip()
        if not idempotency_key or len(idempotency_key) > 128:
            errors["idempotency_key"] = ["Idempotency-Key must be 1 to 128 characters."]
    if errors:
        raise ValidationError(errors)

    use_bulk = bool(use_bulk)
    fingerprint = _fingerprint(product_id=product_id, erp_no=erp_no, quantity=quantity, use_bulk=use_bulk, note=note)
    if idempotency_key:
        existing = ProvisioningRequest.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            if existing.fingerprint != fingerprint:
                raise IdempotencyConflict(existing)
            return existing

    accounts = provisioning_accounts(refresh_for=erp_no)
    if accounts is not None and erp_no not in accounts:
        raise ValidationError({"erp_no": [
            f"The MyAdmin user cannot provision to account {erp_no}; allowed: {', '.join(sorted(accounts)) or 'none'}."
        ]})

    try:
        with transaction.atomic():
            req = ProvisioningRequest.objects.create(
                product_id=product_id, erp_no=erp_no, quantity=quantity, use_bulk=use_bulk, note=note,
                requested_by=requested_by if getattr(requested_by, "pk", None) else None,
                idempotency_key=idempotency_key or None, fingerprint=fingerprint,
            )
            _enqueue_on_commit(req.pk)
    except IntegrityError:
        # A concurrent request with the same key won the insert.
        existing = ProvisioningRequest.objects.filter(idempotency_key=idempotency_key).first() if idempotency_key else None
        if existing is None:
            raise
        if existing.fingerprint != fingerprint:
            raise IdempotencyConflict(existing) from None
        return existing
    return req


def _enqueue_on_commit(request_id: int, *, countdown: float | None = None) -> None:
    def send():
        from devices.tasks.provisioning import provisioning_request_process_task

        try:
            if countdown:
                provisioning_request_process_task.apply_async(args=[request_id], countdown=countdown)
            else:
                provisioning_request_process_task.delay(request_id)
        except Exception:  # the broker is down: the sweeper re-enqueues pending intents
            logger.exception("could not enqueue provisioning request %s", request_id)

    transaction.on_commit(send)


# --------------------------------------------------------------------------- process


def _lane_busy(req: ProvisioningRequest) -> bool:
    """Is another call on this account unresolved? (needs_staff keeps the lane closed too.)"""
    return (
        ProvisioningRequest.objects.filter(erp_no=req.erp_no, call_started_at__isnull=False)
        .exclude(pk=req.pk)
        .exists()
    )


def _claim_call(request_id: int) -> tuple[ProvisioningRequest, int] | tuple[ProvisioningRequest | None, None]:
    """Under row locks: decide the next call and write it down before it is made."""
    erp_no = ProvisioningRequest.objects.filter(pk=request_id).values_list("erp_no", flat=True).first()
    if erp_no is None:
        return None, None
    with transaction.atomic():
        # The lane: one unresolved call per partner account. Lock every open request of the
        # account, in id order (no deadlock), so two workers cannot both find the lane free.
        list(
            ProvisioningRequest.objects.select_for_update()
            .filter(erp_no=erp_no, status__in=[Status.PENDING, Status.IN_FLIGHT, Status.UNKNOWN, Status.NEEDS_STAFF])
            .order_by("pk").values_list("pk", flat=True)
        )
        req = ProvisioningRequest.objects.select_for_update().filter(pk=request_id).first()
        if req is None or req.status not in (Status.PENDING, Status.IN_FLIGHT) or req.call_started_at is not None:
            return req, None
        now = timezone.now()
        if req.status == Status.PENDING and req.next_attempt_at and req.next_attempt_at > now:
            return req, None
        if req.remaining == 0:
            _finish(req, Status.SUCCEEDED)
            return req, None
        if _lane_busy(req):
            if req.status == Status.IN_FLIGHT:
                req.status = Status.PENDING
                req.save(update_fields=["status", "updated_at"])
            return req, None
        count = min(req.remaining, BULK_MAX) if req.use_bulk else 1
        req.status = Status.IN_FLIGHT
        req.call_started_at = now
        req.call_quantity = count
        req.calls_made += 1
        req.next_attempt_at = None
        req.save(update_fields=["status", "call_started_at", "call_quantity", "calls_made", "next_attempt_at",
                                "updated_at"])
        return req, count


def _wake_lane(req: ProvisioningRequest) -> None:
    """The account's lane is free again: start its oldest waiting request now, not at the next
    sweep. Harmless if it turns out busy again: processing re-checks the lane under locks."""
    waiting = (
        ProvisioningRequest.objects.filter(erp_no=req.erp_no, status=Status.PENDING, call_started_at__isnull=True)
        .exclude(pk=req.pk)
        .exclude(next_attempt_at__gt=timezone.now())
        .order_by("id")
        .values_list("pk", flat=True)
        .first()
    )
    if waiting is not None:
        _enqueue_on_commit(waiting)


def _finish(req: ProvisioningRequest, status: str, *, error: str = "") -> None:
    req.status = status
    req.completed_at = timezone.now()
    fields = ["status", "completed_at", "updated_at"]
    if error:
        req.last_error = error[:500]
        fields.append("last_error")
    req.save(update_fields=fields)


def provisioning_request_process(*, request_id: int, client=None, max_calls: int | None = None) -> ProvisioningRequest | None:
    """Work a request until done, blocked or interrupted. Safe to run twice concurrently and
    after a crash: a call is only ever made after it has been written down, and never twice."""
    client = client or _client()
    req = ProvisioningRequest.objects.filter(pk=request_id).first()
    if req is None:
        return None
    if req.status not in (Status.PENDING, Status.IN_FLIGHT) or req.call_started_at is not None:
        return req
    try:
        # The shared session first: a refused or unreachable Authenticate is retried later,
        # before any billable call is written down.
        client.credential.get()
    except (NotExecutedError, RejectedError, OutcomeUnknownError) as exc:
        _release_not_executed(request_id, exc, claimed=False)
        return ProvisioningRequest.objects.get(pk=request_id)
    bound = (max_calls or req.quantity) + 1
    minted_now: list[str] = []
    for _ in range(bound):
        req, count = _claim_call(request_id)
        if count is None:
            break
        with vendor_call_context(target=target(req)):
            try:
                if req.use_bulk:
                    results = client.provision_devices_bulk(req.product_id, req.erp_no, count)
                else:
                    results = [client.provision_device_to_account(req.product_id, req.erp_no)]
            except NotExecutedError as exc:
                _release_not_executed(request_id, exc)
                break
            except RejectedError as exc:
                _close_call(request_id, [], failure=f"MyAdmin refused: {exc}")
                break
            except OutcomeUnknownError as exc:
                _mark_unknown(request_id, f"{exc.error_name or 'unknown'}: {exc.message}")
                break
            except VendorError as exc:
                _mark_unknown(request_id, str(exc))
                break
        serials = [r.serial_no for r in results if r.is_success and r.serial_no]
        if after_vendor_reply is not None:
            after_vendor_reply(req, serials)
        failures = [r for r in results if not r.is_success]
        req = _close_call(request_id, serials, failure=_failure_text(failures, len(results)), via="reply")
        minted_now.extend(serials)
        if req.status != Status.IN_FLIGHT:
            break
    if minted_now:
        _tag_serials(client, req, minted_now)
    return ProvisioningRequest.objects.get(pk=request_id)


def _failure_text(failures: list[ProvisionResult], total: int) -> str:
    if not failures:
        return ""
    reasons = sorted({f.error or "no reason given" for f in failures})
    return f"MyAdmin did not provision {len(failures)} of {total}: {'; '.join(reasons)}"[:500]


def _attach(req: ProvisioningRequest, serials: list[str], *, via: str) -> int:
    """Create a Device (and its history row) for each new serial, inside the caller's
    transaction, in bulk: a 1,000-serial reply is two INSERTs. Returns how many."""
    from devices.models import DeviceEvent
    from portal.middleware import current_request_id

    existing = set(Device.objects.filter(serial__in=serials).values_list("serial", flat=True))
    new = [s for s in dict.fromkeys(serials) if s not in existing]
    if not new:
        return 0
    Device.objects.bulk_create([
        Device(serial=serial, product_id=req.product_id, product_type=PRODUCT_TYPES[req.product_id],
               erp_no=req.erp_no, status=Device.Status.PROVISIONED, provisioning_request=req)
        for serial in new
    ])
    created = list(Device.objects.filter(serial__in=new).values_list("pk", flat=True))  # pks on every backend
    actor = req.requested_by if req.requested_by_id else None
    message = f"Minted on {req.erp_no} by provisioning request #{req.pk} ({via})"[:500]
    DeviceEvent.objects.bulk_create([
        DeviceEvent(device_id=pk, kind="provisioned", to_status=Device.Status.PROVISIONED, message=message,
                    actor=actor, data={"provisioning_request": req.pk, "via": via},
                    request_id=current_request_id()[:64])
        for pk in created
    ])
    # One audit entry for the serials of this reply (billable), with their ids.
    audit_bulk(model=Device, ids=created, action=AuditAction.CREATE, actor=actor or "provisioning",
               changes={"provisioning_request": req.pk, "erp_no": req.erp_no, "product_id": req.product_id},
               message=message)
    return len(new)


def _close_call(request_id: int, serials: list[str], *, failure: str = "", via: str = "reply") -> ProvisioningRequest:
    """Store the call's serials and clear the call, in one transaction."""
    with transaction.atomic():
        req = ProvisioningRequest.objects.select_for_update().get(pk=request_id)
        if req.call_started_at is None and serials:
            # The reconciler resolved this call while the reply was on its way: it attached
            # whatever it found; anything it did not find is attached now (never orphaned).
            logger.warning("late reply for provisioning request %s", request_id)
        _attach(req, serials, via=via)
        req.minted_count = req.devices.count()
        req.call_started_at = None
        req.call_quantity = 0
        req.attempts = 0
        fields = ["minted_count", "call_started_at", "call_quantity", "attempts", "updated_at"]
        req.save(update_fields=fields)
        if failure:
            _finish(req, Status.FAILED, error=failure)
            _wake_lane(req)
        elif req.remaining == 0:
            _finish(req, Status.SUCCEEDED)
            _wake_lane(req)
        elif via != "reply":
            # Resolved by the reconciler or staff: a worker mints the rest.
            req.status = Status.PENDING
            req.save(update_fields=["status", "updated_at"])
            _enqueue_on_commit(req.pk)
        return req


def _release_not_executed(request_id: int, exc: VendorError, *, claimed: bool = True) -> None:
    """MyAdmin certainly did not act: clear the call, back off, retry (bounded).
    ``claimed=False``: nothing was written down for this attempt (e.g. Authenticate failed
    before any call was claimed); a call outstanding from earlier is then left alone."""
    with transaction.atomic():
        req = ProvisioningRequest.objects.select_for_update().get(pk=request_id)
        if not claimed and (req.call_started_at is not None or req.status not in (Status.PENDING, Status.IN_FLIGHT)):
            return
        req.call_started_at = None
        req.call_quantity = 0
        req.attempts += 1
        req.last_error = f"not executed: {exc}"[:500]
        if req.attempts > MAX_NOT_EXECUTED_RETRIES:
            req.save(update_fields=["call_started_at", "call_quantity", "attempts", "last_error", "updated_at"])
            _finish(req, Status.FAILED, error=f"gave up after {req.attempts - 1} retries: {exc}")
            return
        delay = max(exc.retry_after or 0.0, backoff_delay(req.attempts, base=2.0, cap=60.0))
        req.status = Status.PENDING
        req.next_attempt_at = timezone.now() + timedelta(seconds=delay)
        req.save(update_fields=["status", "call_started_at", "call_quantity", "attempts", "last_error",
                                "next_attempt_at", "updated_at"])
        _enqueue_on_commit(req.pk, countdown=min(60.0, delay))
        # This request now waits out its backoff with the lane free: others may go first.
        _wake_lane(req)


def _mark_unknown(request_id: int, error: str) -> None:
    with transaction.atomic():
        req = ProvisioningRequest.objects.select_for_update().get(pk=request_id)
        req.status = Status.UNKNOWN
        req.last_error = f"outcome unknown: {error}"[:500]
        req.save(update_fields=["status", "last_error", "updated_at"])
    logger.warning("provisioning request %s: outcome unknown (%s); left to the reconciler", request_id, error)


def _tag_serials(client, req: ProvisioningRequest, serials: list[str]) -> None:
    """Best effort: write the request's marker into the contracts' comments (one call per run),
    so MyAdmin itself says which portal request minted each serial."""
    try:
        with vendor_call_context(target=target(req)):
            for i in range(0, len(serials), BULK_MAX):
                client.update_device_contracts(serials[i:i + BULK_MAX], comments=req.marker)
        tagged = list(Device.objects.filter(serial__in=serials, comments="").values_list("pk", flat=True))
        Device.objects.filter(pk__in=tagged).update(comments=req.marker)
        audit_bulk(model=Device, ids=tagged, action=AuditAction.BULK_UPDATE, actor="provisioning",
                   changes={"comments": req.marker}, message=f"contract comments set by provisioning request #{req.pk}")
    except VendorError as exc:
        logger.info("could not tag serials of provisioning request %s: %s", req.pk, exc)


# --------------------------------------------------------------------------- reconcile


def _product_matches(contract, product_id: int) -> bool:
    if contract.product_id is not None:
        return contract.product_id == product_id
    from integrations.myadmin import SERIAL_PREFIXES

    return contract.serial_no.startswith(SERIAL_PREFIXES.get(product_id, "??"))


def _is_due(req: ProvisioningRequest, now: datetime) -> bool:
    if req.call_started_at is None:
        return False
    if req.status == Status.UNKNOWN:
        return req.updated_at <= now - timedelta(seconds=settle_seconds())
    if req.status == Status.IN_FLIGHT:
        return req.call_started_at <= now - timedelta(seconds=_call_deadline_seconds())
    return False


def provisioning_reconcile(*, request_id: int, client=None, actor=None) -> str:
    """Resolve the request's unresolved call from MyAdmin. Returns what was decided:
    "attached", "not_executed", "needs_staff", "waiting" or "nothing_to_do"."""
    client = client or _client()
    req = ProvisioningRequest.objects.filter(pk=request_id).first()
    if req is None or req.call_started_at is None or req.status not in (Status.UNKNOWN, Status.IN_FLIGHT):
        return "nothing_to_do"
    if not _is_due(req, timezone.now()):
        return "waiting"
    started = req.call_started_at
    skew = timedelta(seconds=clock_skew_seconds())
    with vendor_call_context(target=target(req)):
        try:
            contracts = list(client.get_device_contracts(
                for_account=req.erp_no, from_date=started - skew, to_date=timezone.now() + skew))
        except VendorError as exc:
            logger.warning("reconcile of provisioning request %s deferred: %s", req.pk, exc)
            return "waiting"

    serials = [c.serial_no for c in contracts]
    owned = set(Device.objects.filter(serial__in=serials).values_list("serial", flat=True))
    ours, candidates = [], []
    for c in contracts:
        if c.serial_no in owned or not _product_matches(c, req.product_id):
            continue
        if req.marker in c.comments:
            ours.append(c.serial_no)
        elif MARKER_PREFIX not in c.comments:
            candidates.append(c.serial_no)
    found = ours + candidates

    with transaction.atomic():
        req = ProvisioningRequest.objects.select_for_update().get(pk=request_id)
        if req.call_started_at != started or req.status not in (Status.UNKNOWN, Status.IN_FLIGHT):
            return "nothing_to_do"  # resolved meanwhile (a late reply or another reconciler)
        if len(found) == req.call_quantity:
            note = f"Reconciled: {len(found)} serial(s) found on {req.erp_no} created after the call started."
            req.reconcile_note = note[:500]
            req.save(update_fields=["reconcile_note", "updated_at"])
            _close_call(req.pk, found, via="reconciler")
            decision = "attached"
        elif not found:
            req.reconcile_note = "Reconciled: MyAdmin shows no serial from this call; it did not execute."
            req.call_started_at = None
            req.call_quantity = 0
            req.status = Status.PENDING
            req.next_attempt_at = None
            req.save(update_fields=["reconcile_note", "call_started_at", "call_quantity", "status",
                                    "next_attempt_at", "updated_at"])
            _enqueue_on_commit(req.pk)
            decision = "not_executed"
        else:
            req.status = Status.NEEDS_STAFF
            req.reconcile_note = (
                f"Expected {req.call_quantity} serial(s) from the call started {started:%Y-%m-%d %H:%M:%S} UTC, "
                f"found {len(found)} unclaimed on {req.erp_no}: {', '.join(found[:20])}. Staff must decide."
            )[:500]
            req.save(update_fields=["status", "reconcile_note", "updated_at"])
            decision = "needs_staff"
    log = logger.error if decision == "needs_staff" else logger.info
    log("provisioning request %s reconciled: %s", request_id, decision)
    return decision


def provisioning_reconcile_due(*, client=None, limit: int = 200) -> dict[str, int]:
    """The beat job: reconcile every unknown / stale in-flight call that is due."""
    now = timezone.now()
    counts: dict[str, int] = {}
    open_calls = ProvisioningRequest.objects.filter(
        status__in=[Status.UNKNOWN, Status.IN_FLIGHT], call_started_at__isnull=False
    ).order_by("call_started_at")[:limit]
    due = [r.pk for r in open_calls if _is_due(r, now)]
    if not due:
        return counts
    client = client or _client()
    for pk in due:
        decision = provisioning_reconcile(request_id=pk, client=client)
        counts[decision] = counts.get(decision, 0) + 1
    return counts


def provisioning_staff_resolve(*, request_id: int, serials: list[str], actor=None, client=None) -> ProvisioningRequest:
    """Staff decide a needs_staff call: ``serials`` are the ones it minted (empty = none).
    Each serial must exist on the request's account at MyAdmin and belong to no device."""
    req = ProvisioningRequest.objects.get(pk=request_id)
    if req.status != Status.NEEDS_STAFF or req.call_started_at is None:
        raise ValidationError("Only a request waiting for staff can be resolved this way.")
    serials = sorted({s.strip().upper() for s in serials if s and s.strip()})
    if len(serials) > req.call_quantity:
        raise ValidationError({"serials": [f"That call could mint at most {req.call_quantity} serial(s)."]})
    if serials:
        taken = list(Device.objects.filter(serial__in=serials).values_list("serial", flat=True))
        if taken:
            raise ValidationError({"serials": [f"Already held by a device: {', '.join(taken)}."]})
        client = client or _client()
        with vendor_call_context(target=target(req)):
            found = {c.serial_no for c in client.get_device_contracts(for_account=req.erp_no, serial_nos=serials)}
        missing = [s for s in serials if s not in found]
        if missing:
            raise ValidationError({"serials": [f"Not on account {req.erp_no} at MyAdmin: {', '.join(missing)}."]})
    with transaction.atomic():
        req = ProvisioningRequest.objects.select_for_update().get(pk=request_id)
        who = getattr(actor, "username", "staff")
        req.reconcile_note = (f"Resolved by {who}: " + (", ".join(serials) if serials else "nothing was minted"))[:500]
        req.save(update_fields=["reconcile_note", "updated_at"])
        if serials:
            req = _close_call(req.pk, serials, via=f"staff:{who}")
        else:
            req.call_started_at = None
            req.call_quantity = 0
            req.status = Status.PENDING
            req.save(update_fields=["call_started_at", "call_quantity", "status", "updated_at"])
            _enqueue_on_commit(req.pk)
    return ProvisioningRequest.objects.get(pk=request_id)


def provisioning_request_cancel(*, request_id: int, actor=None) -> ProvisioningRequest:
    """Stop a request that has no call outstanding (what is minted stays minted)."""
    with transaction.atomic():
        req = ProvisioningRequest.objects.select_for_update().get(pk=request_id)
        if req.call_started_at is not None:
            raise ValidationError("A call is outstanding; it must be resolved before the request can be cancelled.")
        if req.status not in (Status.PENDING, Status.IN_FLIGHT):
            raise ValidationError(f"A {req.get_status_display().lower()} request cannot be cancelled.")
        _finish(req, Status.FAILED, error=f"Cancelled by {getattr(actor, 'username', 'staff')}")
    return req


# --------------------------------------------------------------------------- sweep


def provisioning_sweep(*, stale_seconds: float = 60.0, limit: int = 500) -> int:
    """Re-enqueue pending requests whose enqueue was lost (or whose backoff ended), and
    requests left in flight between two calls by a dead worker. Returns how many."""
    now = timezone.now()
    stale = now - timedelta(seconds=stale_seconds)
    ids = list(
        ProvisioningRequest.objects.filter(status=Status.PENDING, updated_at__lte=stale)
        .exclude(next_attempt_at__gt=now)
        .order_by("id").values_list("pk", flat=True)[:limit]
    )
    between_calls = list(
        ProvisioningRequest.objects.filter(status=Status.IN_FLIGHT, call_started_at__isnull=True, updated_at__lte=stale)
        .order_by("id").values_list("pk", flat=True)[:limit]
    )
    from devices.tasks.provisioning import provisioning_request_process_task

    sent = 0
    for pk in ids + between_calls:
        try:
            provisioning_request_process_task.delay(pk)
            sent += 1
        except Exception:
            logger.exception("sweeper could not enqueue provisioning request %s", pk)
            break
    if sent:
        # Touch them so the next sweep waits stale_seconds again before re-sending.
        ProvisioningRequest.objects.filter(pk__in=ids + between_calls).update(updated_at=now)
    return sent
