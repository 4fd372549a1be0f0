"""Navixy tracker registration: validation against the cached catalogues, the registration
intent with the unknown-outcome discipline (DESIGN §3), reconciliation, retries, refreshes,
catalogue refresh, bulk import and the hook other services use to flag trackers.

Registration discipline:
1. `tracker_submit` moves a valid tracker to REGISTERING and enqueues the task on commit.
2. `tracker_register` (the task's body) takes a lease on the row, commits
   `register_call_started_at`, then sends `tracker/register`.
3. A known outcome (success, refusal, "not executed") clears `register_call_started_at`.
   An unknown one (timeout, dropped connection, 5xx) leaves it set, and the next attempt
   looks the tracker up on Navixy before sending anything: found → attach; not found → send.
4. 224 "device ID already in use" for a device ID this tracker may itself have registered is
   answered by fetching the Navixy tracker and attaching it, not by failing.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from dataclasses import dataclass, field
from datetime import timedelta

import phonenumbers
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from stdnum import luhn

from devices.models import (
    Device,
    NavixyGroup,
    NavixyModel,
    NavixyPlugin,
    Tracker,
    TrackerEvent,
)
from integrations import navixy as nx
from integrations.base import (
    NotExecutedError,
    OutcomeUnknownError,
    RejectedError,
    VendorError,
    vendor_call_context,
)
from portal.middleware import current_request_id

logger = logging.getLogger(__name__)

State = Tracker.State

APN_MAX = 40
LABEL_MAX = 60
BULK_MAX_ROWS = 5000

# Fields a caller may set on a tracker (API, admin form, bulk upload).
INPUT_FIELDS = (
    "label", "group", "plugin_id", "model_code", "device_id", "phone", "apn_name", "apn_user",
    "apn_password", "activation_code", "notification_email", "notification_phone",
)


class TrackerError(ValueError):
    """A tracker action that the tracker's state does not allow."""


def _client(client=None):
    if client is not None:
        return client
    from portal.clients import navixy_client

    return navixy_client()


def _lease_period() -> timedelta:
    # Longer than any single call can take, so a live worker never loses its lease mid-call;
    # short enough that the sweeper picks up the work of a killed worker within minutes.
    return timedelta(seconds=max(120.0, 4 * settings.VENDOR_READ_TIMEOUT))


# --------------------------------------------------------------------------- history / lifecycle


def tracker_record_event(
    *, tracker: Tracker, kind: str, message: str = "", actor=None, data: dict | None = None,
    from_state: str = "", to_state: str = "",
) -> TrackerEvent:
    return TrackerEvent.objects.create(
        tracker=tracker, kind=kind, message=message[:500], data=data or {}, from_state=from_state,
        to_state=to_state, actor=actor if getattr(actor, "pk", None) else None, request_id=current_request_id()[:64],
    )


def _set_state(tracker: Tracker, to_state: str, *, message: str = "", actor=None, kind: str = "state",
               data: dict | None = None, extra_fields: tuple[str, ...] = ()) -> None:
    """Change state on a row the caller holds locked, and write the history row."""
    from_state = tracker.state
    if to_state != from_state and to_state not in Tracker.TRANSITIONS[State(from_state)]:
        raise TrackerError(
            f"Tracker {tracker.label!r} cannot go from {tracker.get_state_display()} to {State(to_state).label}."
        )
    tracker.state = to_state
    tracker.state_message = message[:500]
    tracker.save(update_fields=["state", "state_message", "updated_at", *extra_fields])
    tracker_record_event(tracker=tracker, kind=kind, message=message, actor=actor, data=data,
                         from_state=from_state, to_state=to_state)
    if from_state == State.REGISTERING and to_state != State.REGISTERING:
        _registration_job_advance(tracker, to_state=to_state, message=message)


def _registration_job_advance(tracker: Tracker, *, to_state: str, message: str) -> None:
    """A registration ended (registered, failed, needs attention): count it on the job
    (portal.jobs) it was submitted under, if any. The job id sits on the history row that
    queued the registration, so a task re-sent by the sweeper still reports to it; and this runs
    in the transaction of the state change, so a redelivered task never counts it twice."""
    from portal.jobs import admin_url, job_advance

    queued = (TrackerEvent.objects.filter(tracker=tracker, to_state=State.REGISTERING)
              .order_by("-pk").values_list("data", flat=True).first())
    job_id = (queued or {}).get("job_id") if isinstance(queued, dict) else None
    if not job_id:
        return
    if to_state == State.REGISTERED:
        job_advance(job_id=job_id, done=1, complete=True)
    else:
        job_advance(job_id=job_id, failed=1, complete=True, failure={
            "label": tracker.label, "url": admin_url("devices.Tracker", tracker.pk),
            "message": f"{State(to_state).label}: {message}"})


# --------------------------------------------------------------------------- validation


@dataclass
class Catalogue:
    """The cached Navixy catalogues, loaded once per validation batch (3 queries)."""

    plugins: dict[int, NavixyPlugin]
    models: dict[str, NavixyModel]
    groups: dict[int, NavixyGroup]

    @classmethod
    def load(cls) -> Catalogue:
        return cls(
            plugins={p.plugin_id: p for p in NavixyPlugin.objects.filter(available=True)},
            models={m.code: m for m in NavixyModel.objects.filter(present=True, registrable=True)},
            groups={g.navixy_id: g for g in NavixyGroup.objects.filter(present=True)},
        )


def plugin_supports_model(plugin: NavixyPlugin, model_code: str) -> bool:
    matched = False
    for pattern in plugin.filter_values or []:
        try:
            if re.match(pattern, model_code):
                matched = True
                break
        except re.error:
            continue
    return not matched if plugin.filter_exclusion else matched


def _text(value) -> str:
    """Spreadsheet cells arrive as numbers: 986575154632586.0 must read "986575154632586"."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _phone_error(value: str) -> str | None:
    if not value.isdigit():
        return "Enter the number in international format, digits only, without '+' (e.g. 4915112345678)."
    try:
        parsed = phonenumbers.parse("+" + value)
    except phonenumbers.NumberParseException:
        return "Not a phone number in international format: the country code is not recognised."
    if not phonenumbers.is_valid_number(parsed):
        return "Not a valid phone number for its country (international format without '+', e.g. 4915112345678)."
    return None


def normalise_phone(value) -> str:
    text = _text(value)
    return re.sub(r"[\s\-().]", "", text).lstrip("+")


def device_id_error(model: NavixyModel, device_id: str) -> str | None:
    """Check a device ID against the model's `id_type` (reference §2.1)."""
    id_type = model.id_type
    if id_type == "imei":
        if not re.fullmatch(r"\d{15}", device_id):
            return "An IMEI is exactly 15 digits."
        if not luhn.is_valid(device_id):
            return "This IMEI's check digit is wrong (mistyped digit?)."
    elif id_type == "meid":
        if not re.fullmatch(r"[0-9A-F]{14}", device_id):
            return "A MEID is exactly 14 hexadecimal characters (0-9, A-F)."
    elif id_type.startswith("id,"):
        n = id_type.split(",", 1)[1]
        if not re.fullmatch(rf"\d{{{n}}}", device_id):
            return f"This model's device ID is exactly {n} digits."
    elif id_type.startswith("ascii,"):
        try:
            _, low, high = id_type.split(",")
            low_n, high_n = int(low), min(int(high), 32)  # 6-64 models really enforce 6-32 (S12)
        except ValueError:
            low_n, high_n = 1, 32
        if not re.fullmatch(r"[0-9A-Za-z\-]+", device_id):
            return "Use only Latin letters, digits and hyphens."
        if not low_n <= len(device_id) <= high_n:
            return f"This model's device ID is {low_n}-{high_n} characters long."
    return None


def tracker_validate(
    *, data: dict, catalogue: Catalogue | None = None, exclude_tracker_id: int | None = None,
    check_unique: bool = True,
) -> tuple[dict, dict[str, list[str]]]:
    """Validate tracker input before anything is sent to Navixy.

    Returns ``(cleaned, errors)``: ``cleaned`` holds model field values (``group`` as a
    NavixyGroup or None); ``errors`` maps field name → messages. No vendor call is made.
    """
    cat = catalogue or Catalogue.load()
    errors: dict[str, list[str]] = {}
    cleaned: dict = {}

    def err(name: str, message: str) -> None:
        errors.setdefault(name, []).append(message)

    label = _text(data.get("label"))
    if not label:
        err("label", "A label is required (1-60 characters).")
    elif len(label) > LABEL_MAX:
        err("label", f"At most {LABEL_MAX} characters (this one has {len(label)}).")
    elif not label.isprintable():
        err("label", "Use printable characters only.")
    cleaned["label"] = label

    # Plugin
    plugin = None
    raw_plugin = _text(data.get("plugin_id"))
    if not raw_plugin:
        err("plugin_id", "Choose a registration plugin (44, 37, 35 or 68).")
    else:
        try:
            plugin_id = int(raw_plugin)
        except ValueError:
            plugin_id = None
            err("plugin_id", "The plugin is a number: 44, 37, 35 or 68.")
        if plugin_id is not None:
            if plugin_id not in Tracker.Plugin.values:
                err("plugin_id", "The portal registers with plugins 44 and 37 (GPS devices) or 35 and 68 (mobile app).")
            elif plugin_id not in cat.plugins:
                err("plugin_id", f"Plugin {plugin_id} is not available to the portal's Navixy user.")
            else:
                plugin = cat.plugins[plugin_id]
            cleaned["plugin_id"] = plugin_id
    mobile = plugin is not None and plugin.plugin_id in Tracker.MOBILE_PLUGINS

    # Model
    model = None
    model_code = _text(data.get("model_code", data.get("model")))
    if not model_code:
        err("model_code", "Choose a device model.")
    elif model_code not in cat.models:
        err("model_code", f"Unknown model {model_code!r}: not in the Navixy model catalogue.")
    else:
        model = cat.models[model_code]
    cleaned["model_code"] = model_code
    if plugin is not None and model is not None:
        if mobile and not model.is_mobile:
            err("model_code", f"Plugin {plugin.plugin_id} registers the X-GPS mobile app: use model "
                              f"{nx.MOBILE_APP_MODEL}.")
        elif not mobile and model.is_mobile:
            err("model_code", f"{model.code} is the mobile app: use plugin 35 or 68.")
        elif not plugin_supports_model(plugin, model.code):
            err("model_code", f"Plugin {plugin.plugin_id} does not support model {model.code}.")

    # Group (0 / blank = Navixy's default group)
    raw_group = data.get("group")
    if isinstance(raw_group, NavixyGroup):
        cleaned["group"] = raw_group
    else:
        text = _text(raw_group)
        cleaned["group"] = None
        if text and text != "0":
            try:
                gid = int(text)
            except ValueError:
                gid = None
                err("group", "The group is a Navixy group id (a number; 0 or empty for no group).")
            if gid is not None:
                if gid not in cat.groups:
                    err("group", f"Navixy group {gid} does not exist (refresh the catalogues if it is new).")
                else:
                    cleaned["group"] = cat.groups[gid]

    # Device ID, phone and APN (GPS devices) or notifications (mobile app)
    device_id = _text(data.get("device_id")).upper() if model and model.id_type == "meid" else _text(data.get("device_id"))
    phone = normalise_phone(data.get("phone"))
    apn = {name: _text(data.get(name)) for name in ("apn_name", "apn_user", "apn_password")}
    notification_email = _text(data.get("notification_email"))
    notification_phone = normalise_phone(data.get("notification_phone"))
    cleaned["device_id"] = device_id or None
    if plugin is not None and mobile:
        for name, value in (("device_id", device_id), ("phone", phone), *apn.items()):
            if value:
                err(name, "The mobile app gets its device ID from Navixy and takes no SIM or APN settings: leave empty.")
        cleaned["device_id"] = None
        if notification_email:
            try:
                validate_email(notification_email)
            except ValidationError:
                err("notification_email", "Enter a valid e-mail address.")
        if notification_phone:
            message = _phone_error(notification_phone)
            if message:
                err("notification_phone", message)
    elif plugin is not None:
        for name, value in (("notification_email", notification_email), ("notification_phone", notification_phone)):
            if value:
                err(name, "Notifications are for the mobile app (plugins 35/68): leave empty.")
        if model is not None:
            if model.generates_id:
                if device_id:
                    err("device_id", f"Navixy assigns the device ID for {model.code}: leave empty.")
                cleaned["device_id"] = None
            elif not device_id:
                err("device_id", f"The device ID ({model.id_type}) is required for {model.code}.")
            else:
                message = device_id_error(model, device_id)
                if message:
                    err("device_id", message)
            if model.has_phone and not phone:
                err("phone", "The SIM phone number is required (international format without '+').")
            if model.has_apn_settings and not apn["apn_name"]:
                err("apn_name", "The APN name is required for this model.")
        if phone:
            message = _phone_error(phone)
            if message:
                err("phone", message)
    for name, value in apn.items():
        if len(value) > APN_MAX:
            err(name, f"At most {APN_MAX} characters (this one has {len(value)}).")
    cleaned.update(apn)
    cleaned["phone"] = phone
    cleaned["notification_email"] = notification_email
    cleaned["notification_phone"] = notification_phone

    code = _text(data.get("activation_code"))
    if plugin is not None and plugin.plugin_id in Tracker.CODE_REQUIRED_PLUGINS and not code:
        err("activation_code", f"Plugin {plugin.plugin_id} requires an activation code.")
    if code and not re.fullmatch(r"\d{6,20}", code):
        err("activation_code", "An activation code is a number (usually 10 digits).")
    cleaned["activation_code"] = code

    if check_unique and cleaned.get("device_id") and "device_id" not in errors:
        clash = Tracker.objects.filter(device_id=cleaned["device_id"])
        if exclude_tracker_id:
            clash = clash.exclude(pk=exclude_tracker_id)
        other = clash.values_list("pk", flat=True).first()
        if other:
            err("device_id", f"Tracker #{other} in the portal already has this device ID.")
    return cleaned, errors


# --------------------------------------------------------------------------- create / submit


def _link_device(tracker: Tracker) -> None:
    """Point the tracker at the portal Device with the same IMEI, where there is one."""
    device = None
    if tracker.device_id and not tracker.is_mobile and re.fullmatch(r"\d{15}", tracker.device_id):
        device = Device.objects.filter(imei=tracker.device_id).first()
    tracker.portal_device = device


def tracker_create(*, data: dict, actor=None, submit: bool = True, catalogue: Catalogue | None = None,
                   job_id: int | None = None) -> Tracker:
    """Create a tracker from validated input and (by default) submit it for registration.
    Raises ValidationError(field → messages) and writes nothing when the input is invalid."""
    cleaned, errors = tracker_validate(data=data, catalogue=catalogue)
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        tracker = Tracker(**cleaned, created_by=actor if getattr(actor, "pk", None) else None)
        _link_device(tracker)
        try:
            with transaction.atomic():
                tracker.save()
        except IntegrityError as exc:
            raise ValidationError({"device_id": ["Another portal tracker already has this device ID."]}) from exc
        tracker_record_event(tracker=tracker, kind="created", actor=actor, to_state=tracker.state,
                             message="Created in the portal")
        if submit:
            tracker = tracker_submit(tracker=tracker, actor=actor, job_id=job_id)
    return tracker


def tracker_update(*, tracker: Tracker, data: dict, actor=None) -> Tracker:
    """Edit a tracker that is not (being) registered; secret fields left blank keep their value."""
    with transaction.atomic():
        tracker = Tracker.objects.select_for_update().get(pk=tracker.pk)
        if tracker.state not in (State.DRAFT, State.FAILED) or tracker.register_call_started_at:
            raise TrackerError("Only draft or failed trackers can be edited.")
        merged = {name: getattr(tracker, name) for name in INPUT_FIELDS if name != "group"}
        merged["group"] = tracker.group
        merged.update({k: v for k, v in data.items() if k in INPUT_FIELDS})
        for secret in ("apn_password", "activation_code"):
            if not data.get(secret):
                merged[secret] = getattr(tracker, secret)
        cleaned, errors = tracker_validate(data=merged, exclude_tracker_id=tracker.pk)
        if errors:
            raise ValidationError(errors)
        for name, value in cleaned.items():
            setattr(tracker, name, value)
        _link_device(tracker)
        tracker.field_errors = {}
        tracker.save()
        tracker_record_event(tracker=tracker, kind="edited", actor=actor, message="Input changed")
    return tracker


def tracker_submit(*, tracker: Tracker, actor=None, job_id: int | None = None) -> Tracker:
    """Queue a draft / failed / needs-attention tracker for registration (task on commit).
    With ``job_id`` the registration's end is counted on that job (portal.jobs)."""
    from devices.tasks.trackers import tracker_register_task

    with transaction.atomic():
        tracker = Tracker.objects.select_for_update().get(pk=tracker.pk)
        if tracker.state == State.REGISTERING:
            if job_id:
                # Queued earlier, under another request: its outcome is not this job's to wait for.
                from portal.jobs import admin_url, job_advance

                job_advance(job_id=job_id, failed=1, complete=True, failure={
                    "label": tracker.label, "url": admin_url("devices.Tracker", tracker.pk),
                    "message": "Already being registered (queued earlier); its page shows the outcome."})
            return tracker
        if tracker.navixy_tracker_id:
            raise TrackerError(f"Tracker {tracker.label!r} is already registered on Navixy "
                               f"(#{tracker.navixy_tracker_id}); use 'resend setup' (register_retry).")
        if tracker.state not in (State.DRAFT, State.FAILED, State.NEEDS_ATTENTION):
            raise TrackerError(f"Tracker {tracker.label!r} is {tracker.get_state_display()}.")
        tracker.submitted_at = timezone.now()
        tracker.last_error_code = None
        tracker.field_errors = {}
        _set_state(tracker, State.REGISTERING, actor=actor, message="Queued for registration",
                   data={"job_id": job_id} if job_id else None,
                   extra_fields=("submitted_at", "last_error_code", "field_errors"))
        pk = tracker.pk
        transaction.on_commit(lambda: tracker_register_task.delay(pk))
    return tracker


# --------------------------------------------------------------------------- registration


class Outcome:
    REGISTERED = "registered"
    FAILED = "failed"
    NEEDS_ATTENTION = "needs_attention"
    RETRY = "retry"  # not executed: safe to send again later
    UNKNOWN = "unknown"  # may have executed: reconcile on the next attempt
    SKIPPED = "skipped"  # not in REGISTERING, or another worker holds the lease


_AMBIGUOUS = object()


def _find_on_navixy(client, tracker: Tracker):
    """The Navixy tracker this portal tracker may already have created, None, or _AMBIGUOUS.

    Fixed-ID models: the same device ID under the same label. Platform-assigned IDs (mobile
    app): the same label and model, created since the submission, not attached to another
    portal tracker; more than one such candidate cannot be resolved automatically.
    """
    candidates = [t for t in client.tracker_list(labels=[tracker.label]) if t.label == tracker.label]
    if tracker.device_id and not tracker.is_mobile:
        matches = [t for t in candidates if t.device_id == tracker.device_id]
    else:
        since = (tracker.submitted_at or tracker.created_at).date() - timedelta(days=1)
        taken = set(
            Tracker.objects.filter(navixy_tracker_id__in=[t.id for t in candidates])
            .exclude(pk=tracker.pk).values_list("navixy_tracker_id", flat=True)
        )
        matches = [
            t for t in candidates
            if t.model == tracker.model_code and t.id not in taken
            and (t.creation_date is None or t.creation_date >= since)
        ]
    if len(matches) > 1:
        return _AMBIGUOUS
    return matches[0] if matches else None


def _apply_source(tracker: Tracker, remote: nx.Tracker) -> list[str]:
    tracker.navixy_tracker_id = remote.id
    tracker.source_id = remote.source_id
    tracker.source_blocked = remote.blocked
    tracker.tariff_id = remote.tariff_id
    tracker.creation_date = remote.creation_date
    tracker.tariff_end_date = remote.tariff_end_date
    tracker.refreshed_at = timezone.now()
    return ["navixy_tracker_id", "source_id", "source_blocked", "tariff_id", "creation_date",
            "tariff_end_date", "refreshed_at"]


def _attach(tracker_id: int, remote: nx.Tracker, *, how: str) -> str:
    with transaction.atomic():
        tracker = Tracker.objects.select_for_update().get(pk=tracker_id)
        other = Tracker.objects.filter(navixy_tracker_id=remote.id).exclude(pk=tracker.pk).first()
        fields = ["register_call_started_at", "lease_until"]
        tracker.register_call_started_at = None
        tracker.lease_until = None
        if other is not None:
            _set_state(tracker, State.NEEDS_ATTENTION, kind="conflict", extra_fields=tuple(fields),
                       message=f"Navixy tracker #{remote.id} is already attached to portal tracker #{other.pk}.")
            return Outcome.NEEDS_ATTENTION
        fields += _apply_source(tracker, remote)
        if not tracker.device_id and remote.device_id:
            tracker.device_id = remote.device_id  # assigned by the platform (mobile app)
            fields.append("device_id")
        if tracker.activation_code:
            # Single-use: once Navixy has consumed it, the portal forgets it.
            tracker.activation_code = ""
            tracker.activation_code_used_at = timezone.now()
            fields += ["activation_code", "activation_code_used_at"]
        tracker.registered_at = timezone.now()
        fields.append("registered_at")
        if tracker.portal_device_id is None:
            _link_device(tracker)
            fields.append("portal_device")
        message = f"Registered on Navixy as tracker #{remote.id} ({how})"
        if tracker.state == State.NEEDS_ATTENTION:
            # Flagged while the call was in flight: keep the flag, record the result.
            tracker.save(update_fields=[*fields, "updated_at"])
            tracker_record_event(tracker=tracker, kind="registered", message=message)
        else:
            _set_state(tracker, State.REGISTERED, kind="registered", message=message, extra_fields=tuple(fields),
                       data={"navixy_tracker_id": remote.id, "how": how})
    return Outcome.REGISTERED


def _close(tracker_id: int, to_state: str, *, message: str, code: int | None = None,
           field_errors: dict | None = None) -> str:
    with transaction.atomic():
        tracker = Tracker.objects.select_for_update().get(pk=tracker_id)
        tracker.register_call_started_at = None
        tracker.lease_until = None
        tracker.last_error_code = code
        tracker.field_errors = field_errors or {}
        _set_state(tracker, to_state, kind="register_error" if to_state == State.FAILED else "state",
                   message=message, data={"code": code, "errors": field_errors or {}},
                   extra_fields=("register_call_started_at", "lease_until", "last_error_code", "field_errors"))
    return to_state


def _release(tracker_id: int, *, keep_intent: bool, message: str, code: int | None = None) -> None:
    update = {"lease_until": None, "state_message": message[:500], "last_error_code": code}
    if not keep_intent:
        update["register_call_started_at"] = None
    Tracker.objects.filter(pk=tracker_id).update(**update)


# Navixy codes that concern one input field: shown next to it in the admin and API.
CODE_FIELDS = {
    204: ("group", "This Navixy group no longer exists."),
    220: ("model_code", "Navixy does not know this model."),
    222: ("plugin_id", "Navixy refused the plugin for this model or user."),
    223: ("phone", "Navixy: this phone number is already used by another device."),
    224: ("device_id", "Navixy: this device ID is already registered (not by this portal tracker)."),
    226: ("phone", "Navixy: wrong ICCID."),
    227: ("activation_code", "Navixy: activation code not found or already used."),
}


def _rejection(exc: VendorError) -> tuple[str, dict[str, list[str]]]:
    code = getattr(exc, "code", None)
    errors = exc.field_errors() if hasattr(exc, "field_errors") else {}
    if code in CODE_FIELDS:
        name, message = CODE_FIELDS[code]
        errors.setdefault(name, []).append(message)
    aliases = {"model": "model_code"}
    errors = {aliases.get(k, k): v for k, v in errors.items()}
    summary = "; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()) or str(exc)
    return f"Navixy refused the registration ({code}): {summary}", errors


def tracker_register(*, tracker_id: int, client=None) -> str:
    """Register one tracker on Navixy (the task's body). Idempotent: safe to run again at any
    point, including after a worker died mid-call."""
    now = timezone.now()
    with transaction.atomic():
        tracker = Tracker.objects.select_for_update(of=("self",)).select_related("group").filter(pk=tracker_id).first()
        if tracker is None or tracker.state != State.REGISTERING:
            return Outcome.SKIPPED
        if tracker.lease_until and tracker.lease_until > now:
            return Outcome.SKIPPED
        tracker.lease_until = now + _lease_period()
        tracker.save(update_fields=["lease_until"])
    client = _client(client)
    ambiguous = tracker.register_call_started_at is not None
    with vendor_call_context(target=f"devices.Tracker:{tracker.pk}"):
        try:
            if ambiguous:
                found = _find_on_navixy(client, tracker)
                if found is _AMBIGUOUS:
                    return _close(tracker.pk, State.NEEDS_ATTENTION,
                                  message="A previous registration call may have succeeded and several Navixy "
                                          "trackers match this label: check Navixy and attach by hand.")
                if found is not None:
                    return _attach(tracker.pk, found, how="found after an unanswered call")
            Tracker.objects.filter(pk=tracker.pk).update(register_call_started_at=timezone.now(),
                                                         attempts=F("attempts") + 1)
        except VendorError as exc:
            _release(tracker.pk, keep_intent=True, message=f"Navixy lookup failed: {exc}")
            return Outcome.RETRY
        try:
            remote = client.register(
                label=tracker.label, group_id=tracker.group_navixy_id, plugin_id=tracker.plugin_id,
                model=tracker.model_code, device_id=None if tracker.is_mobile else tracker.device_id,
                phone=tracker.phone or None, apn_name=tracker.apn_name or None,
                apn_user=tracker.apn_user or None, apn_password=tracker.apn_password or None,
                activation_code=tracker.activation_code or None,
                notification_email=tracker.notification_email or None,
                notification_phone=tracker.notification_phone or None,
            )
        except nx.DeviceIdInUse as exc:
            # 224: if this tracker created it (an earlier call whose answer was lost, or a
            # concurrent duplicate), fetch and attach; otherwise someone else owns the ID.
            try:
                found = _find_on_navixy(client, tracker)
            except VendorError as lookup_exc:
                _release(tracker.pk, keep_intent=True, message=f"224, and the lookup failed: {lookup_exc}")
                return Outcome.RETRY
            if found is not None and found is not _AMBIGUOUS:
                return _attach(tracker.pk, found, how="224: already registered by the portal")
            message, errors = _rejection(exc)
            return _close(tracker.pk, State.FAILED, message=message, code=exc.code, field_errors=errors)
        except OutcomeUnknownError as exc:
            _release(tracker.pk, keep_intent=True, code=getattr(exc, "code", None),
                     message=f"No answer from Navixy ({exc}); the tracker will be looked up before any resend.")
            return Outcome.UNKNOWN
        except NotExecutedError as exc:
            _release(tracker.pk, keep_intent=False, code=getattr(exc, "code", None),
                     message=f"Navixy did not take the request ({exc}); will retry.")
            return Outcome.RETRY
        except RejectedError as exc:
            message, errors = _rejection(exc)
            return _close(tracker.pk, State.FAILED, message=message, code=getattr(exc, "code", None),
                          field_errors=errors)
        return _attach(tracker.pk, remote, how="registered")


def tracker_register_give_up(*, tracker_id: int, outcome: str) -> None:
    """After the task's bounded retries: not-executed → failed (staff may retry);
    unknown → needs attention (a person must check Navixy)."""
    with transaction.atomic():
        tracker = Tracker.objects.select_for_update().filter(pk=tracker_id, state=State.REGISTERING).first()
        if tracker is None:
            return
        if tracker.register_call_started_at is not None or outcome == Outcome.UNKNOWN:
            _set_state(tracker, State.NEEDS_ATTENTION, extra_fields=("lease_until",),
                       message="Navixy never confirmed the registration; check Navixy, then retry or fix.")
        else:
            _set_state(tracker, State.FAILED, message=f"Navixy stayed unavailable: {tracker.state_message}")


def trackers_sweep(*, older_than: timedelta = timedelta(minutes=5)) -> list[int]:
    """Re-enqueue REGISTERING trackers whose task was lost (enqueue lost, worker killed)."""
    from devices.tasks.trackers import tracker_register_task

    now = timezone.now()
    ids = list(
        Tracker.objects.filter(state=State.REGISTERING, updated_at__lt=now - older_than)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .values_list("pk", flat=True)[:500]
    )
    for pk in ids:
        tracker_register_task.delay(pk)
    return ids


# --------------------------------------------------------------------------- after registration


def tracker_register_retry(*, tracker_id: int, actor=None, apn_name: str | None = None,
                           apn_user: str | None = None, apn_password: str | None = None, client=None) -> str:
    """Resend the setup commands of a registered tracker (`tracker/register_retry`); no second
    unit is created. Safe to repeat, so any outcome is just recorded."""
    tracker = Tracker.objects.get(pk=tracker_id)
    if not tracker.navixy_tracker_id:
        raise TrackerError(f"Tracker {tracker.label!r} is not registered on Navixy yet.")
    for name, value in (("apn_name", apn_name), ("apn_user", apn_user), ("apn_password", apn_password)):
        if value is not None and len(value) > APN_MAX:
            raise ValidationError({name: [f"At most {APN_MAX} characters."]})
    client = _client(client)
    with vendor_call_context(target=f"devices.Tracker:{tracker.pk}"):
        try:
            remote = client.register_retry(
                tracker_id=tracker.navixy_tracker_id, apn_name=apn_name or tracker.apn_name or None,
                apn_user=apn_user if apn_user is not None else (tracker.apn_user or None),
                apn_password=apn_password if apn_password is not None else (tracker.apn_password or None),
            )
        except VendorError as exc:
            code = getattr(exc, "code", None)
            with transaction.atomic():
                tracker = Tracker.objects.select_for_update().get(pk=tracker_id)
                fields = ["state_message", "updated_at"]
                tracker.state_message = f"Resend of setup commands failed: {exc}"[:500]
                if code == 208:
                    tracker.source_blocked = True
                    fields.append("source_blocked")
                tracker.save(update_fields=fields)
                tracker_record_event(tracker=tracker, kind="register_retry_error", actor=actor, message=str(exc),
                                     data={"code": code, "outcome": exc.outcome.value})
            return "error"
    with transaction.atomic():
        tracker = Tracker.objects.select_for_update().get(pk=tracker_id)
        fields = _apply_source(tracker, remote)
        for name, value in (("apn_name", apn_name), ("apn_user", apn_user), ("apn_password", apn_password)):
            if value is not None:
                setattr(tracker, name, value)
                fields.append(name)
        tracker.state_message = "Setup commands resent (register_retry)"
        tracker.save(update_fields=[*fields, "state_message", "updated_at"])
        tracker_record_event(tracker=tracker, kind="register_retry", actor=actor,
                             message="Setup commands resent to the device")
    return "ok"


def tracker_refresh(*, tracker_id: int, client=None) -> str:
    """Re-read a registered tracker's source fields from Navixy (`tracker/read`)."""
    tracker = Tracker.objects.get(pk=tracker_id)
    if not tracker.navixy_tracker_id:
        raise TrackerError(f"Tracker {tracker.label!r} is not registered on Navixy yet.")
    client = _client(client)
    with vendor_call_context(target=f"devices.Tracker:{tracker.pk}"):
        try:
            remote = client.tracker_read(tracker_id=tracker.navixy_tracker_id)
        except nx.NotFound:
            with transaction.atomic():
                tracker = Tracker.objects.select_for_update().get(pk=tracker_id)
                _set_state(tracker, State.NEEDS_ATTENTION, kind="refresh",
                           message=f"Navixy no longer has tracker #{tracker.navixy_tracker_id}.")
            return "missing"
    with transaction.atomic():
        tracker = Tracker.objects.select_for_update().get(pk=tracker_id)
        fields = _apply_source(tracker, remote)
        changed_label = remote.label != tracker.label
        tracker.label = remote.label or tracker.label
        tracker.group = NavixyGroup.objects.filter(navixy_id=remote.group_id).first() if remote.group_id else None
        tracker.save(update_fields=[*fields, "label", "group", "updated_at"])
        tracker_record_event(tracker=tracker, kind="refresh", message="Refreshed from Navixy",
                             data={"blocked": remote.blocked, "label_changed": changed_label,
                                   "tariff_end_date": str(remote.tariff_end_date or "")})
    return "ok"


def trackers_flag_for_devices(*, device_ids, reason: str, actor=None) -> int:
    """Mark the trackers linked to these portal devices "needs attention" with ``reason``
    (e.g. called when a device's billing is terminated). Returns how many were flagged; the
    audit trail gets one entry with their ids."""
    from portal.audit import Action, audit_bulk
    from portal.bulk import where_in

    flagged = []
    with transaction.atomic():
        for tracker in where_in(Tracker.objects.select_for_update(), "portal_device_id", device_ids).order_by("pk"):
            if tracker.state == State.NEEDS_ATTENTION and tracker.state_message == reason[:500]:
                continue
            _set_state(tracker, State.NEEDS_ATTENTION, kind="flagged", message=reason, data={"reason": reason},
                       actor=actor)
            flagged.append(tracker.pk)
        audit_bulk(model=Tracker, ids=flagged, action=Action.BULK_UPDATE,
                   actor=actor if getattr(actor, "pk", None) else "system",
                   changes={"state": State.NEEDS_ATTENTION.value, "state_message": reason[:500]},
                   message="flagged for staff")
    return len(flagged)


# --------------------------------------------------------------------------- catalogues


def navixy_catalogue_refresh(*, client=None) -> dict[str, int]:
    """Cache Navixy's models, the user's plugins and groups; vanished entries are marked, not
    deleted, so existing trackers keep their references."""
    client = _client(client)
    models_ = client.list_models()
    plugins = client.plugin_list()
    groups = client.group_list()
    now = timezone.now()
    with transaction.atomic():
        for m in models_:
            NavixyModel.objects.update_or_create(code=m.code, defaults={
                "navixy_id": m.id, "name": m.name[:120], "vendor": m.vendor[:64], "type": m.type[:16],
                "id_type": m.id_type[:32], "has_phone": m.has_phone, "has_apn_settings": m.has_apn_settings,
                "registrable": m.register, "present": True, "refreshed_at": now,
            })
        NavixyModel.objects.exclude(code__in=[m.code for m in models_]).update(present=False)
        for p in plugins:
            NavixyPlugin.objects.update_or_create(plugin_id=p.id, defaults={
                "type": p.type[:32], "module": p.module[:200], "filter_exclusion": p.filter_exclusion,
                "filter_values": list(p.filter_values), "available": True, "refreshed_at": now,
            })
        NavixyPlugin.objects.exclude(plugin_id__in=[p.id for p in plugins]).update(available=False)
        for g in groups:
            NavixyGroup.objects.update_or_create(navixy_id=g.id, defaults={
                "title": g.title[:60], "color": g.color[:6], "present": True, "refreshed_at": now,
            })
        NavixyGroup.objects.exclude(navixy_id__in=[g.id for g in groups]).update(present=False)
    return {"models": len(models_), "plugins": len(plugins), "groups": len(groups)}


# --------------------------------------------------------------------------- bulk upload


HEADER_ALIASES = {
    "model": "model_code", "model code": "model_code", "plugin": "plugin_id", "plugin id": "plugin_id",
    "group_id": "group", "group id": "group", "device id": "device_id", "imei": "device_id",
    "apn": "apn_name", "apn name": "apn_name", "apn user": "apn_user", "apn password": "apn_password",
    "activation code": "activation_code", "notification email": "notification_email",
    "notification phone": "notification_phone",
}


class UploadError(ValueError):
    """The file itself cannot be read (not the rows in it)."""


def tracker_rows_from_upload(*, filename: str, content: bytes) -> list[tuple[int, dict]]:
    """(spreadsheet row number, raw values) for each non-empty row of a CSV or XLSX upload."""
    name = (filename or "").lower()
    if name.endswith(".xlsx"):
        from openpyxl import load_workbook

        try:
            sheet = load_workbook(io.BytesIO(content), read_only=True, data_only=True).worksheets[0]
        except Exception as exc:  # openpyxl raises many types for a damaged file
            raise UploadError(f"Cannot read the XLSX file: {exc}") from exc
        rows = list(sheet.iter_rows(values_only=True, max_row=BULK_MAX_ROWS + 2))
    elif name.endswith(".csv"):
        try:
            text = content.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise UploadError("The CSV file must be UTF-8 encoded.") from exc
        rows = list(csv.reader(io.StringIO(text)))
    else:
        raise UploadError("Upload a .csv or .xlsx file.")
    if not rows:
        raise UploadError("The file is empty.")
    header = [HEADER_ALIASES.get(_text(h).lower(), _text(h).lower().replace(" ", "_")) for h in rows[0]]
    unknown = [h for h in header if h and h not in INPUT_FIELDS]
    if unknown:
        raise UploadError(f"Unknown column(s): {', '.join(unknown)}. Columns: {', '.join(INPUT_FIELDS)}.")
    for required in ("label", "plugin_id", "model_code"):
        if required not in header:
            raise UploadError(f"Missing column {required!r}.")
    out = []
    for number, row in enumerate(rows[1:], start=2):
        values = {h: v for h, v in zip(header, row) if h}
        if all(_text(v) == "" for v in values.values()):
            continue
        out.append((number, values))
    if len(out) > BULK_MAX_ROWS:
        raise UploadError(f"At most {BULK_MAX_ROWS} rows per upload.")
    return out


@dataclass
class RowResult:
    row: int
    label: str
    ok: bool
    errors: dict[str, list[str]] = field(default_factory=dict)
    tracker_id: int | None = None

    def as_dict(self) -> dict:
        return {"row": self.row, "label": self.label, "ok": self.ok, "errors": self.errors,
                "tracker_id": self.tracker_id}


def tracker_bulk_import(*, rows: list[tuple[int, dict]], actor=None, dry_run: bool = True,
                        job_id: int | None = None) -> list[RowResult]:
    """Validate every row; unless ``dry_run``, create and submit the good rows. Bad rows are
    reported by row number and change nothing; good rows do not wait for bad ones.

    With ``job_id`` (a job whose total is ``len(rows)``) each bad row counts as failed at once
    and each good row when its Navixy registration ends."""
    catalogue = Catalogue.load()
    seen_device: dict[str, int] = {}
    seen_phone: dict[str, int] = {}
    results = []
    # One query for the whole file instead of one uniqueness check per row.
    candidate_ids = {_text(values.get("device_id")).upper() for _, values in rows} | {
        _text(values.get("device_id")) for _, values in rows}
    existing = dict(Tracker.objects.filter(device_id__in=[c for c in candidate_ids if c])
                    .values_list("device_id", "pk"))
    for number, values in rows:
        cleaned, errors = tracker_validate(data=values, catalogue=catalogue, check_unique=False)
        device_id, phone = cleaned.get("device_id"), cleaned.get("phone")
        if device_id in existing and "device_id" not in errors:
            errors.setdefault("device_id", []).append(f"Tracker #{existing[device_id]} in the portal already has this device ID.")
        if device_id and device_id in seen_device:
            errors.setdefault("device_id", []).append(f"Same device ID as row {seen_device[device_id]}.")
        if phone and phone in seen_phone:
            errors.setdefault("phone", []).append(f"Same phone number as row {seen_phone[phone]}.")
        if device_id:
            seen_device.setdefault(device_id, number)
        if phone:
            seen_phone.setdefault(phone, number)
        result = RowResult(row=number, label=cleaned.get("label", ""), ok=not errors, errors=errors)
        if not errors and not dry_run:
            try:
                tracker = tracker_create(data=values, actor=actor, catalogue=catalogue, job_id=job_id)
                result.tracker_id = tracker.pk
            except ValidationError as exc:
                result.ok = False
                result.errors = exc.message_dict
        results.append(result)
    if job_id and not dry_run:
        _bulk_job_refusals(job_id, [r for r in results if not r.ok])
    return results


def _bulk_job_refusals(job_id: int, refused: list[RowResult]) -> None:
    """The rows refused before any Navixy call, as the job's failures (one update for all)."""
    from portal.jobs import MAX_FAILURES_SHOWN, job_advance

    if not refused:
        return
    failures = [
        {"label": f"row {r.row}" + (f" ({r.label})" if r.label else ""), "url": "",
         "message": "; ".join(f"{name}: {' '.join(msgs)}" for name, msgs in r.errors.items())}
        for r in refused[:MAX_FAILURES_SHOWN]
    ]
    job_advance(job_id=job_id, failed=len(refused), failures=failures, complete=True)
