"""Replaying rejected or held device records as a job (portal.jobs): what staff watch after
"Replay" in the records admin.

The records are replayed in batches through ``records_replay`` (each batch its own transaction);
the job advances once per batch: records queued for DIG again (or skipped, being queued or sent
already) are done, records that stay held (device not ready, or terminated) are failures,
listed per device with a link to its held records. Each batch is one audit entry with its ids.
"""

from __future__ import annotations

from django.db.models import Count
from django.urls import reverse

from ingestion.models import DeviceRecord
from ingestion.services.records import records_replay
from portal.audit import Action, audit_bulk
from portal.jobs import JobAlreadyFinished, job_advance, job_finish, job_running, job_set_total

REPLAY_BATCH = 1000
# The most records one replay takes (the admin actions cap their selection at this).
REPLAY_MAX = 100_000


def _records_url(**filters) -> str:
    return reverse("admin:ingestion_devicerecord_changelist") + "?" + "&".join(f"{k}={v}" for k, v in filters.items())


HOLD_REASONS = dict(DeviceRecord.HoldReason.choices)


def records_replay_as_job(*, job_id: int | None, record_ids: list[int], actor=None) -> dict | None:
    """Replay ``record_ids`` reporting to ``job_id``. Returns the totals, or None when the job
    was finished already (a redelivered message: the replay is not run twice)."""
    ids = sorted({int(pk) for pk in record_ids})[:REPLAY_MAX]
    totals = {"queued": 0, "held": 0, "skipped": 0}
    try:
        with job_running(job_id):
            if job_id is not None:
                job_set_total(job_id=job_id, total=len(ids))
            for start in range(0, len(ids), REPLAY_BATCH):
                batch = ids[start:start + REPLAY_BATCH]
                result = records_replay(record_ids=batch)
                totals["queued"] += result.queued
                totals["held"] += result.held
                totals["skipped"] += result.skipped
                audit_bulk(model=DeviceRecord, ids=batch, action=Action.BULK_UPDATE, actor=actor or "replay",
                           changes={"replayed": True},
                           message=f"replayed: {result.queued} queued for DIG, {result.held} held, "
                                   f"{result.skipped} skipped (already queued or sent)")
                if job_id is not None:
                    job_advance(job_id=job_id, done=result.queued + result.skipped, failed=result.held,
                                failures=_held_failures(batch) if result.held else None)
            if job_id is not None:
                links = []
                if totals["queued"]:
                    links.append({"label": f"{totals['queued']} records queued for DIG",
                                  "url": _records_url(status__exact=DeviceRecord.Status.QUEUED)})
                if totals["held"]:
                    links.append({"label": f"{totals['held']} records still held",
                                  "url": _records_url(status__exact=DeviceRecord.Status.HELD)})
                job_finish(job_id=job_id, result={**totals, "links": links})
    except JobAlreadyFinished:
        return None
    return totals


def _held_failures(batch: list[int]) -> list[dict]:
    """The batch's records that stay held, one failure per device and reason (one query)."""
    groups = (DeviceRecord.objects.filter(pk__in=batch, status=DeviceRecord.Status.HELD)
              .values("serial", "hold_reason").annotate(n=Count("pk")).order_by("serial"))
    return [
        {"label": g["serial"] or "(no serial)",
         "url": _records_url(q=g["serial"], status__exact=DeviceRecord.Status.HELD),
         "message": f"{g['n']} record(s) stay held: {HOLD_REASONS.get(g['hold_reason'], g['hold_reason'] or 'held')}"}
        for g in groups
    ]
