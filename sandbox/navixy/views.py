"""A look-alike of the Navixy user API (tracker registration subset).

Behaviour follows the reference notes: POST JSON, POST form and GET query-string encodings;
the hash in the body, the query string or `Authorization: NVX <hash>`; the
`{"success":false,"status":{"code","description"}}` envelope with HTTP statuses from the code
table; 50 requests/s per hash; fault injection shared with the other simulators.

Where the public documents are silent the choices are marked [I] (inference) below.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from collections import deque
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from sandbox.faults import run_with_faults

from .models import (
    SimActivationCode,
    SimGroup,
    SimModel,
    SimPlugin,
    SimSession,
    SimTracker,
    SimUser,
)
from .seed import ensure_seeded

SYSTEM = "navixy"
RATE_LIMIT_PER_SECOND = 50

# Descriptions verbatim from the error table; HTTP status where it differs from 400.
DESCRIPTIONS = {
    1: ("Database error", 500),
    3: ("Wrong hash", 400),
    4: ("User or API key not found or session ended", 400),
    5: ("Wrong request format", 400),
    6: ("Unexpected error", 500),
    7: ("Invalid parameters", 400),
    8: ("Queue service error, try again later", 503),
    13: ("Operation not permitted", 403),
    14: ("Database unavailable", 503),
    15: ("Too many requests (rate limit exceeded)", 429),
    102: ("Wrong login or password", 400),
    201: ("Not found in database", 400),
    204: ("Entity not found", 404),
    208: ("Device blocked", 403),
    214: ("Requested operation or parameters are not supported by the device", 400),
    219: ("Not allowed for clones of the device", 403),
    220: ("Unknown device model", 400),
    222: ("Plugin not found", 400),
    223: ("Phone number already in use", 400),
    224: ("Device ID already in use", 400),
    227: ("Wrong activation code", 400),
    242: ("Device already connected", 400),
    252: ("Device already corrupted", 400),
    264: ("Timeout not reached", 403),
}

HASH_RE = re.compile(r"^[0-9a-f]{32}$")
MOBILE_MODEL_RE = re.compile(r"^(navixymobile|mobile_unknown|iosnavixytracker)")
RETRY_INTERVAL = timedelta(seconds=120)  # [I] borrowed from the panel API's register_retry


class SimError(Exception):
    def __init__(self, code: int, errors: list | None = None):
        super().__init__(code)
        self.code = code
        self.errors = errors


def invalid(parameter: str, error: str) -> SimError:
    return SimError(7, [{"parameter": parameter, "error": error}])


def error_response(code: int, errors: list | None = None) -> JsonResponse:
    description, status = DESCRIPTIONS.get(code, ("Unexpected error", 400))
    body = {"success": False, "status": {"code": code, "description": description}}
    if errors:
        body["errors"] = errors
    return JsonResponse(body, status=status)


def ok(**payload) -> JsonResponse:
    return JsonResponse({"success": True, **payload})


# --------------------------------------------------------------------------- request parsing


def _decode_value(value):
    """Arrays and objects travel as JSON text in form and query encodings."""
    if isinstance(value, str) and value[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def read_params(request) -> dict:
    params = {k: _decode_value(v) for k, v in request.GET.items()}
    content_type = request.META.get("CONTENT_TYPE", "")
    if request.method == "POST":
        if content_type.startswith("application/json"):
            try:
                body = json.loads(request.body or b"{}")
            except ValueError as exc:
                raise SimError(5) from exc
            if not isinstance(body, dict):
                raise SimError(5)
            params.update(body)
        else:
            params.update({k: _decode_value(v) for k, v in request.POST.items()})
    return params


def read_hash(request, params: dict) -> str | None:
    """Lookup order from the docs: body/query `hash` parameter, then the NVX header."""
    if params.get("hash"):
        return str(params["hash"])
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if header.startswith("NVX "):
        return header[4:]
    if header.startswith("NVX"):
        return "invalid"  # "NVX<hash>" with no space is invalid
    return None


def authenticate(hash_value: str | None) -> SimSession:
    if not hash_value:
        raise SimError(4)
    if not HASH_RE.match(hash_value):
        raise SimError(3)
    session = SimSession.objects.select_related("user").filter(hash=hash_value).first()
    if session is None or session.ended:
        raise SimError(4)
    return session


# --------------------------------------------------------------------------- rate limit

_windows: dict[str, deque] = {}
_windows_guard = threading.Lock()


def over_rate_limit(key: str) -> bool:
    """A sliding one-second window per hash (or client address), as strict as the platform's."""
    now = time.monotonic()
    with _windows_guard:
        window = _windows.setdefault(key, deque())
        while window and now - window[0] >= 1.0:
            window.popleft()
        if len(window) >= RATE_LIMIT_PER_SECOND:
            return True
        window.append(now)
        return False


# --------------------------------------------------------------------------- serializers


def tracker_json(tracker: SimTracker, *, with_tags: bool = False) -> dict:
    data = {
        "id": tracker.pk,
        "label": tracker.label,
        "group_id": tracker.group_id,
        "source": {
            "id": tracker.source_id,
            "device_id": tracker.device_id,
            "model": tracker.model,
            "blocked": tracker.blocked,
            "tariff_id": tracker.tariff_id,
            "phone": tracker.phone,
            "status_listing_id": None,
            "creation_date": tracker.creation_date.isoformat(),
            "tariff_end_date": tracker.tariff_end_date.isoformat() if tracker.tariff_end_date else None,
        },
        "clone": tracker.clone,
    }
    if with_tags:
        data["tag_bindings"] = []
    return data


def model_json(model: SimModel) -> dict:
    return {
        "id": model.navixy_id, "vendor": model.vendor, "code": model.code, "parent_code": None,
        "type": model.type, "name": model.name, "id_type": model.id_type, "has_phone": model.has_phone,
        "has_apn_settings": model.has_apn_settings, "register": model.register,
        "has_auto_registration": model.has_phone, "port": None, "register_fields": [],
    }


def plugin_json(plugin: SimPlugin) -> dict:
    return {
        "id": plugin.plugin_id, "type": "tracker_register", "ui_module": plugin.ui_module,
        "module": plugin.module,
        "filter": {"exclusion": plugin.filter_exclusion, "values": plugin.filter_values},
    }


# --------------------------------------------------------------------------- parameter checks


def _int(params: dict, name: str, *, required: bool = True) -> int | None:
    value = params.get(name)
    if value in (None, ""):
        if required:
            raise invalid(name, "required parameter is missing")
        return None
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise invalid(name, "must be an integer") from exc


def _str(params: dict, name: str, *, required: bool = False, max_length: int | None = None,
         min_length: int = 0) -> str | None:
    value = params.get(name)
    if value is None:
        if required:
            raise invalid(name, "required parameter is missing")
        return None
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise invalid(name, "must be a string")
    value = str(value)
    if required and len(value) < max(min_length, 1):
        raise invalid(name, "must not be empty")
    if max_length is not None and len(value) > max_length:
        raise invalid(name, f"must be at most {max_length} characters")
    if value and not value.isprintable():
        raise invalid(name, "must consist of printable characters")
    return value


def _phone(params: dict, name: str) -> str | None:
    value = _str(params, name)
    if value in (None, ""):
        return None
    # [I] the docs give no rule beyond "international format without +"; digits, 7-15 long.
    if not re.fullmatch(r"\d{7,15}", value):
        raise invalid(name, "must be a phone number in international format, digits only, without '+'")
    return value


def _check_device_id(model: SimModel, device_id: str | None) -> None:
    id_type = model.id_type
    if id_type == "imei":
        # Luhn is not enforced: the docs' own examples carry IMEIs that fail it.
        if not device_id or not re.fullmatch(r"\d{15}", device_id):
            raise invalid("device_id", "must be an IMEI of 15 digits")
    elif id_type == "meid":
        if not device_id or not re.fullmatch(r"[0-9A-Fa-f]{14}", device_id):
            raise invalid("device_id", "must be a MEID of 14 hexadecimal digits")
    elif id_type.startswith("id,"):
        n = int(id_type.split(",")[1])
        if not device_id or not re.fullmatch(rf"\d{{{n}}}", device_id):
            raise invalid("device_id", f"must consist of exactly {n} digits")
    elif id_type.startswith("ascii,"):
        _, low, high = id_type.split(",")
        if not device_id or not re.fullmatch(r"[0-9a-zA-Z\-]{1,64}", device_id):
            raise invalid("device_id", 'must match "^[0-9a-zA-Z\\-]{1,64}$"')
        high = min(int(high), 32)  # models reporting 6-64 really enforce 6-32 (S12)
        if not int(low) <= len(device_id) <= high:
            raise invalid("device_id", f"must consist of {low}-{high} alphanumeric symbols or hyphens")


def _generated_id(model: SimModel) -> tuple[int, str] | None:
    """`N,M` id types: an N-digit id the platform generates, starting with digit M."""
    m = re.fullmatch(r"(\d+),(\d)", model.id_type)
    if not m:
        return None
    return int(m.group(1)), m.group(2)


def _plugin_supports(plugin: SimPlugin, model_code: str) -> bool:
    matched = any(re.fullmatch(pattern, model_code) or re.match(pattern, model_code)
                  for pattern in plugin.filter_values)
    return not matched if plugin.filter_exclusion else matched


# --------------------------------------------------------------------------- actions


def act_user_auth(request, params):
    login = _str(params, "login", required=True)
    password = _str(params, "password", required=True, max_length=40)
    user = SimUser.objects.filter(login=login, password=password).first()
    if user is None:
        raise SimError(102)
    session = SimSession.objects.create(user=user, hash=secrets.token_hex(16))
    return ok(type="authenticated", hash=session.hash)


def act_session_renew(request, params, session):
    if session.kind != SimSession.Kind.SESSION:
        raise SimError(4)
    return ok()


def act_logout(request, params, session):
    if session.kind != SimSession.Kind.SESSION:
        raise SimError(4)
    SimSession.objects.filter(pk=session.pk).update(ended=True)
    return ok()


def act_list_models(request, params, session):
    qs = SimModel.objects.all()
    codes = params.get("codes")
    if codes is not None:
        if not isinstance(codes, list):
            raise invalid("codes", "must be an array of strings")
        qs = qs.filter(code__in=[str(c) for c in codes])
    return ok(list=[model_json(m) for m in qs])


def act_plugin_list(request, params, session):
    plugins = SimPlugin.objects.filter(plugin_id__in=session.user.plugin_ids)
    return ok(list=[plugin_json(p) for p in plugins])


def act_group_list(request, params, session):
    return ok(list=[{"id": g.pk, "title": g.title, "color": g.color} for g in session.user.groups.all()])


def act_group_create(request, params, session):
    title = _str(params, "title", required=True, max_length=60)
    color = _str(params, "color", required=True)
    if not re.fullmatch(r"[0-9A-Fa-f]{6}", color):
        raise invalid("color", "must be 6 hexadecimal characters")
    group = SimGroup.objects.create(user=session.user, title=title, color=color.upper())
    return ok(id=group.pk)


def act_tracker_list(request, params, session):
    qs = SimTracker.objects.filter(user=session.user, corrupted=False)
    labels = params.get("labels")
    if labels is not None:
        if (not isinstance(labels, list) or not 1 <= len(labels) <= 1024
                or any(not isinstance(x, str) or not 1 <= len(x) <= 60 for x in labels)
                or len(set(labels)) != len(labels)):
            raise invalid("labels", "must be 1-1024 distinct strings of 1-60 characters")
        from django.db.models import Q

        cond = Q()
        for label in labels:
            cond |= Q(label__contains=label)
        qs = qs.filter(cond)
    return ok(list=[tracker_json(t, with_tags=True) for t in qs])


def act_tracker_read(request, params, session):
    tracker_id = _int(params, "tracker_id")
    tracker = SimTracker.objects.filter(user=session.user, pk=tracker_id, corrupted=False).first()
    if tracker is None:
        raise SimError(201)
    return ok(value=tracker_json(tracker, with_tags=True))


def act_tracker_register(request, params, session):
    user = session.user
    label = _str(params, "label", required=True, max_length=60)
    group_id = _int(params, "group_id")
    model_code = _str(params, "model", required=True)
    plugin_id = _int(params, "plugin_id")
    # Uniqueness and lookup order [I]: group → model → plugin → device_id → phone → code.
    if group_id != 0 and not SimGroup.objects.filter(user=user, pk=group_id).exists():
        raise SimError(204)
    model = SimModel.objects.filter(code=model_code, register=True).first()
    if model is None:
        raise SimError(220)
    plugin = SimPlugin.objects.filter(plugin_id=plugin_id).first()
    if plugin is None or plugin_id not in user.plugin_ids or not _plugin_supports(plugin, model.code):
        raise SimError(222)

    generated = _generated_id(model)
    if generated:
        device_id = None  # the platform assigns it
    else:
        device_id = _str(params, "device_id", required=True)
        _check_device_id(model, device_id)
    phone = None
    if plugin.mobile:
        _phone(params, "notification_phone")
        email = _str(params, "notification_email", max_length=254)
        if email and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
            raise invalid("notification_email", "must be an e-mail address")
    else:
        phone = _phone(params, "phone")
        if model.has_phone and phone is None:
            raise invalid("phone", "required parameter is missing")  # [I] 7 for a missing phone
        apn_name = _str(params, "apn_name", max_length=40)
        if model.has_apn_settings and not apn_name:
            raise invalid("apn_name", "required parameter is missing")  # [I]
        _str(params, "apn_user", max_length=40)
        _str(params, "apn_password", max_length=40)
    code = _str(params, "activation_code")
    if plugin.activation_code_mandatory and not code:
        raise invalid("activation_code", "required parameter is missing")  # [I] 7, not 227

    with transaction.atomic():
        if device_id is not None and SimTracker.objects.filter(device_id=device_id, corrupted=False).exists():
            raise SimError(224)
        if phone is not None and SimTracker.objects.filter(phone=phone, corrupted=False).exists():
            raise SimError(223)
        activation = None
        if code:
            activation = SimActivationCode.objects.select_for_update().filter(code=code, activated=False).first()
            if activation is None:
                raise SimError(227)
        if generated:
            digits, first = generated
            device_id = first + "".join(secrets.choice("0123456789") for _ in range(digits - 1))
        today = timezone.localdate()
        try:
            with transaction.atomic():
                tracker = SimTracker.objects.create(
                    user=user, label=label, group_id=group_id, device_id=device_id, model=model.code,
                    phone=phone, tariff_id=activation.tariff_id if activation else 12163,
                    creation_date=today, tariff_end_date=today + timedelta(days=14),
                    apn_name=params.get("apn_name") or "", apn_user=params.get("apn_user") or "",
                    register_commands_sent=0 if params.get("send_register_commands") in (False, "false") else 1,
                )
        except IntegrityError as exc:
            # A concurrent registration won the race for the device id or the phone.
            if SimTracker.objects.filter(device_id=device_id, corrupted=False).exists():
                raise SimError(224) from exc
            raise SimError(223) from exc
        tracker.source_id = 526000 + tracker.pk
        tracker.save(update_fields=["source_id"])
        if activation is not None:
            activation.activated = True
            activation.activation_date = timezone.now()
            activation.device_id = tracker.pk
            activation.save()
    return ok(value=tracker_json(tracker))


def act_register_retry(request, params, session):
    tracker_id = _int(params, "tracker_id", required=False)
    device_id = _str(params, "device_id")
    if tracker_id is None and not device_id:
        raise invalid("tracker_id", "required parameter is missing")
    for name in ("apn_name", "apn_user", "apn_password"):
        _str(params, name, max_length=40)
    with transaction.atomic():
        qs = SimTracker.objects.select_for_update().filter(user=session.user)
        tracker = (qs.filter(pk=tracker_id) if tracker_id is not None else qs.filter(device_id=device_id)).first()
        if tracker is None:
            raise SimError(201)
        if tracker.corrupted:
            raise SimError(252)
        if tracker.clone:
            raise SimError(219)
        if tracker.blocked:
            raise SimError(208)
        if MOBILE_MODEL_RE.match(tracker.model) or tracker.phone is None:
            raise SimError(214)  # [I] no GSM module: nothing to send the setup SMS to
        if tracker.connected:
            raise SimError(242)  # [I] 242 per the tracker page, not 243 per the code table
        now = timezone.now()
        if tracker.last_retry_at and now - tracker.last_retry_at < RETRY_INTERVAL:
            raise SimError(264)  # [I] the panel API's 120 s limit, applied here too
        tracker.last_retry_at = now
        tracker.register_commands_sent += 1
        for name in ("apn_name", "apn_user"):
            if params.get(name) is not None:
                setattr(tracker, name, params[name])
        tracker.save()
    return ok(value=tracker_json(tracker))


PUBLIC_ACTIONS = {"user/auth": act_user_auth}
ACTIONS = {
    "user/session/renew": act_session_renew,
    "user/logout": act_logout,
    "tracker/list_models": act_list_models,
    "plugin/list": act_plugin_list,
    "tracker/group/list": act_group_list,
    "tracker/group/create": act_group_create,
    "tracker/list": act_tracker_list,
    "tracker/read": act_tracker_read,
    "tracker/register": act_tracker_register,
    "tracker/register_retry": act_register_retry,
}


@csrf_exempt
def action(request, path: str):
    name = path.strip("/")
    if request.method not in ("GET", "POST"):
        return error_response(5)
    if name not in ACTIONS and name not in PUBLIC_ACTIONS:
        return error_response(5)
    ensure_seeded()
    try:
        params = read_params(request)
    except SimError as exc:
        return error_response(exc.code, exc.errors)
    hash_value = read_hash(request, params)
    limit_key = hash_value or request.META.get("REMOTE_ADDR", "")
    if over_rate_limit(limit_key):
        return error_response(15)

    def execute():
        try:
            with transaction.atomic():
                if name in PUBLIC_ACTIONS:
                    return PUBLIC_ACTIONS[name](request, params)
                session = authenticate(hash_value)
                return ACTIONS[name](request, params, session)
        except SimError as exc:
            return error_response(exc.code, exc.errors)

    def expire_session():
        # Only session hashes die; API keys have no expiry.
        if hash_value:
            SimSession.objects.filter(hash=hash_value, kind=SimSession.Kind.SESSION).update(ended=True)

    return run_with_faults(
        request, SYSTEM, name, execute,
        rate_limited=lambda fault: _with_retry_after(error_response(15), fault),
        unavailable=lambda fault: error_response(8),
        server_error=lambda fault: error_response(6),
        expire_session=expire_session,
    )


def _with_retry_after(response, fault):
    response["Retry-After"] = str(fault.retry_after_seconds)
    return response
