"""HTTP face of the simulated DIG (reference/geotab.md §5): the envelope
``{"Error": [...], "Data": ...}``, status codes 200/202/400/401/403/413/429/503, single-use
refresh tokens, bearer expiry, schema validation per record type, and fault injection."""

from __future__ import annotations

import json
import uuid

from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from sandbox.dig import services
from sandbox.dig.models import (
    DigAccount,
    DigBatch,
    DigInvalidRecord,
    DigSettings,
    DigToken,
)
from sandbox.dig.schema import validate_record
from sandbox.dig.seed import ensure_seeded
from sandbox.faults import run_with_faults

SYSTEM = "dig"


def envelope(data=None, *, errors=None, status=200, headers=None) -> JsonResponse:
    body = {"Error": list(errors or []), "Data": data if not errors else {}}
    response = JsonResponse(body, status=status)
    for key, value in (headers or {}).items():
        response[key] = value
    return response


def _rate_limited(fault):
    return envelope(errors=["Too many requests."], status=429, headers={"Retry-After": str(fault.retry_after_seconds)})


def _unavailable(fault):
    return envelope(errors=["Service unavailable."], status=503, headers={"Retry-After": str(fault.retry_after_seconds)})


def _server_error(fault):
    return envelope(errors=["Internal server error."], status=500)


def _faulty(request, method, execute):
    return run_with_faults(
        request, SYSTEM, method, execute, rate_limited=_rate_limited, unavailable=_unavailable,
        server_error=_server_error, expire_session=services.token_expire_all,
    )


def _json_body(request):
    try:
        return json.loads(request.body or b"null")
    except (ValueError, UnicodeDecodeError):
        return None


def _ci(body: dict, name: str):
    """Binding is case-insensitive on the real service [I]: `Username` or `username`."""
    lowered = {str(k).lower(): v for k, v in body.items()}
    return lowered.get(name.lower())


def _bearer(request) -> str:
    header = request.headers.get("Authorization", "")
    return header[7:].strip() if header[:7].lower() == "bearer " else ""


def _only(request, method):
    if request.method != method:
        return envelope(errors=[f"Method {request.method} not allowed."], status=405)
    return None


def _auth_limit(endpoint):
    allowed, wait = services.auth_rate_allow(endpoint=endpoint)
    if allowed:
        return None
    return envelope(errors=["Rate limit exceeded: 5 requests per minute."], status=429, headers={"Retry-After": str(wait)})


@csrf_exempt
def authenticate(request):
    if (refused := _only(request, "POST")) is not None:
        return refused
    ensure_seeded()

    def execute():
        if (limited := _auth_limit("authenticate")) is not None:
            return limited
        body = _json_body(request)
        if not isinstance(body, dict) or not _ci(body, "Username") or not _ci(body, "Password"):
            return envelope(errors=["Username and Password are required."], status=400)
        account = DigAccount.objects.filter(username__iexact=_ci(body, "Username")).first()
        if account is None or account.password != _ci(body, "Password"):
            return envelope(errors=["Invalid username or password."], status=401)
        return envelope(services.token_payload(services.token_issue(account=account)))

    return _faulty(request, "authenticate", execute)


@csrf_exempt
def refresh_token(request):
    if (refused := _only(request, "POST")) is not None:
        return refused

    def execute():
        if (limited := _auth_limit("refresh-token")) is not None:
            return limited
        body = _json_body(request)
        if not isinstance(body, dict) or not _ci(body, "BearerToken") or not _ci(body, "RefreshToken"):
            return envelope(errors=["BearerToken and RefreshToken are required."], status=400)
        now = timezone.now()
        # Single use: the row is claimed by an UPDATE that only one request can win.
        claimed = DigToken.objects.filter(
            bearer=_ci(body, "BearerToken"), refresh=_ci(body, "RefreshToken"),
            refreshed_at__isnull=True, revoked_at__isnull=True, refresh_expires_at__gt=now,
        ).update(refreshed_at=now)
        if not claimed:
            known = DigToken.objects.filter(refresh=_ci(body, "RefreshToken")).exists()
            if not known:
                return envelope(errors=["Tokens are not valid."], status=401)
            return envelope(errors=["Refresh token has already been refreshed and/or cannot be found."], status=403)
        old = DigToken.objects.select_related("account").get(refresh=_ci(body, "RefreshToken"))
        # The old bearer stops working once its pair has been refreshed.
        DigToken.objects.filter(pk=old.pk).update(revoked_at=now)
        return envelope(services.token_payload(services.token_issue(account=old.account)))

    return _faulty(request, "refresh-token", execute)


@csrf_exempt
def revoke_token(request):
    if (refused := _only(request, "POST")) is not None:
        return refused

    def execute():
        if (limited := _auth_limit("revoke-token")) is not None:
            return limited
        body = _json_body(request)
        if not isinstance(body, dict) or not _ci(body, "RefreshToken"):
            return envelope(errors=["BearerToken and RefreshToken are required."], status=400)
        revoked = DigToken.objects.filter(refresh=_ci(body, "RefreshToken"), revoked_at__isnull=True).update(
            revoked_at=timezone.now(), refreshed_at=timezone.now()
        )
        if not revoked:
            return envelope(errors=["Refresh token already revoked and/or cannot be found."], status=403)
        return envelope("Refresh token revoked and user bearer token enqueued as blocked.", status=202)

    return _faulty(request, "revoke-token", execute)


@csrf_exempt
def records(request):
    if (refused := _only(request, "POST")) is not None:
        return refused

    def execute():
        token = services.token_for_bearer(_bearer(request))
        if token is None:
            return envelope(errors=["Bearer token is missing, expired or blocked."], status=401)
        cfg = DigSettings.current()
        if len(request.body) > cfg.max_body_bytes:
            return envelope(errors=[f"Payload too large: more than {cfg.max_body_bytes} bytes."], status=413)
        body = _json_body(request)
        if not isinstance(body, list) or not body:
            return envelope(errors=["Body must be a non-empty JSON array of records."], status=400)
        if len(body) > cfg.max_records_per_post:
            return envelope(errors=[f"Payload too large: more than {cfg.max_records_per_post} records."], status=413)
        errors = []
        for index, record in enumerate(body):
            for problem in validate_record(record):
                errors.append(f"[{index}] {problem}")
                if len(errors) >= 100:
                    break
        if errors:
            return envelope(errors=errors, status=400)
        guid = str(uuid.uuid4())
        DigBatch.objects.create(guid=guid, account=token.account, body=request.body.decode(), count=len(body))
        return envelope(guid, status=202)

    return _faulty(request, "records", execute)


@csrf_exempt
def invalid_records(request):
    if (refused := _only(request, "GET")) is not None:
        return refused

    def execute():
        token = services.token_for_bearer(_bearer(request))
        if token is None:
            return envelope(errors=["Bearer token is missing, expired or blocked."], status=401)
        try:
            after = int(request.GET["nextResultKey"]) if request.GET.get("nextResultKey") else 0
            size = int(request.GET.get("numberOfResults", "1000"))
        except ValueError:
            return envelope(errors=["nextResultKey and numberOfResults must be integers."], status=400)
        if not 1 <= size <= 50_000:
            return envelope(errors=["numberOfResults must be between 1 and 50000."], status=400)
        services.batches_process()
        mine = DigInvalidRecord.objects.filter(account=token.account)
        page = list(mine.filter(id__gte=after).order_by("id")[: size + 1]) if after else list(mine.order_by("id")[: size + 1])
        more = len(page) > size
        page = page[:size]
        return envelope({
            "NextResultKey": page[-1].id + 1 if more else None,
            "CurrentResultKey": page[0].id if page else after or None,
            "TotalNumberOfInvalidRecords": mine.count(),
            "CurrentNumberOfInvalidRecords": len(page),
            "InvalidRecords": [
                {"BaseRecord": r.base_record, "Cause": r.cause,
                 "TimeStamp": r.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"), "UserId": token.account.username}
                for r in page
            ],
        })

    return _faulty(request, "invalidrecords", execute)


@csrf_exempt
def simulator_state(request):
    """Sandbox-only: process pending batches (the passage of time) and report what DIG holds."""
    if request.method == "POST":
        body = _json_body(request) or {}
        cfg = DigSettings.current()
        for name in ("bearer_lifetime_seconds", "refresh_lifetime_seconds", "auth_requests_per_minute",
                     "max_records_per_post", "max_body_bytes", "max_record_age_days"):
            if isinstance(body.get(name), int) and body[name] >= 0:
                setattr(cfg, name, body[name])
        if isinstance(body.get("unassigned_serials"), list):
            cfg.unassigned_serials = "\n".join(str(s) for s in body["unassigned_serials"])
        cfg.save()
    return JsonResponse(services.stats())
