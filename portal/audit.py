"""The audit trail: who changed what, when, before and after, tied to the request id.

One generic table (`portal.models.AuditEntry`) serves every model, so an app adopts it without
touching its models:

- admin edits: put ``AuditedAdminMixin`` first in the ModelAdmin's bases;
- services: ``before = audit_snapshot(obj)`` … change … ``audit_record(obj=obj,
  action="update", before=before, after=audit_snapshot(obj), actor=actor)``;
- bulk writes (``queryset.update``): ``audit_bulk(model=Device, ids=ids, action="bulk_update",
  changes={"status": "terminated"}, actor=actor)``.

The request id (portal.middleware; Celery tasks inherit it) is stored on every entry, so the
global log links a click to the vendor calls and jobs it caused.
"""

from __future__ import annotations

import datetime
import decimal
import re
import uuid

from django.contrib.contenttypes.models import ContentType
from django.db import models

from portal.middleware import current_request_id
from portal.models import AuditEntry

Action = AuditEntry.Action

# Values of fields with these names never enter the trail: only the fact that they changed.
SECRET_FIELD = re.compile(r"pass(word)?|secret|token|api_?key|key_digest|credential|private", re.IGNORECASE)
REDACTED = "«redacted»"
# A bulk entry keeps at most this many primary keys (object_count stays exact).
MAX_BULK_IDS = 10_000


def _plain(value):
    """A JSON-safe rendering of a field value."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (decimal.Decimal, uuid.UUID)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (bytes, memoryview)):
        return f"<{len(bytes(value))} bytes>"
    return str(value)


def audit_snapshot(obj: models.Model) -> dict:
    """Concrete field values of ``obj`` (foreign keys as ids), secrets redacted."""
    snap = {}
    for field in obj._meta.concrete_fields:
        if SECRET_FIELD.search(field.name):
            snap[field.name] = REDACTED
            continue
        value = getattr(obj, field.attname)
        if isinstance(field, models.FileField):
            value = getattr(value, "name", value) or ""
        snap[field.name] = _plain(value)
    return snap


def audit_diff(before: dict | None, after: dict | None) -> dict:
    """{"field": [before, after]} for the fields that differ. A secret that changed shows as
    redacted on both sides (the snapshot cannot tell, so the caller's snapshots decide)."""
    before, after = before or {}, after or {}
    return {
        key: [before.get(key), after.get(key)]
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key)
    }


def _actor_fields(actor) -> dict:
    if actor is not None and getattr(actor, "is_authenticated", False) and getattr(actor, "pk", None):
        return {"actor": actor, "actor_name": actor.get_username()[:150]}
    if isinstance(actor, str):  # a system actor: "beat", "termination-sheet"
        return {"actor": None, "actor_name": actor[:150]}
    return {"actor": None, "actor_name": ""}


def _request_id() -> str:
    rid = current_request_id()
    return "" if rid == "-" else rid[:64]


def audit_record(
    *,
    obj: models.Model,
    action: str,
    before: dict | None = None,
    after: dict | None = None,
    actor=None,
    message: str = "",
) -> AuditEntry | None:
    """Record one change to ``obj``. ``before``/``after`` are ``audit_snapshot`` dicts (None on
    create / delete). An update that changed nothing records nothing and returns None."""
    if action not in Action.values:
        raise ValueError(f"unknown audit action {action!r}")
    if action == Action.CREATE:
        changes = {k: [None, v] for k, v in (after or {}).items()}
    elif action == Action.DELETE:
        changes = {k: [v, None] for k, v in (before or {}).items()}
    else:
        changes = audit_diff(before, after)
        if not changes and action == Action.UPDATE and not message:
            return None
    return AuditEntry.objects.create(
        content_type=ContentType.objects.get_for_model(obj, for_concrete_model=True),
        object_id=str(obj.pk)[:64] if obj.pk is not None else "",
        object_repr=str(obj)[:200],
        action=action,
        message=message[:300],
        changes=changes,
        object_ids=[],
        object_count=1,
        request_id=_request_id(),
        **_actor_fields(actor),
    )


def audit_bulk(
    *, model, ids, action: str, changes: dict | None = None, actor=None, message: str = ""
) -> AuditEntry | None:
    """Record one bulk write (``queryset.update`` / ``.delete``) touching ``ids``.
    ``changes`` is {"field": new_value} for updates. No ids, no entry."""
    if action not in Action.values:
        raise ValueError(f"unknown audit action {action!r}")
    ids = [_plain(i) for i in ids]
    if not ids:
        return None
    safe_changes = {
        k: REDACTED if SECRET_FIELD.search(k) else _plain(v) for k, v in (changes or {}).items()
    }
    opts = model._meta
    return AuditEntry.objects.create(
        content_type=ContentType.objects.get_for_model(model, for_concrete_model=True),
        object_id=str(ids[0])[:64] if len(ids) == 1 else "",
        object_repr=f"{len(ids)} {opts.verbose_name if len(ids) == 1 else opts.verbose_name_plural}"[:200],
        action=action,
        message=message[:300],
        changes=safe_changes,
        object_ids=ids[:MAX_BULK_IDS],
        object_count=len(ids),
        request_id=_request_id(),
        **_actor_fields(actor),
    )


def audit_entries_for(obj: models.Model):
    """Entries about ``obj``: its own, newest first (bulk entries are found by the global log's
    object filter, since JSON containment is not portable across databases)."""
    ct = ContentType.objects.get_for_model(obj, for_concrete_model=True)
    return AuditEntry.objects.filter(content_type=ct, object_id=str(obj.pk)).select_related("actor")
