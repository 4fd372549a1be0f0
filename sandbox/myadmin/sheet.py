"""The daily termination summary sheet Geotab shares with partners, simulated.

Built from this simulator's own devices (those with `terminated_at` set), never from the portal's
tables: the portal fetches it over HTTP like the real shared spreadsheet export. GUESS: the real
sheet's exact columns are not published; it is served here with the headers a partner typically
sees ("Serial Number", "Termination Date", "Reason", "Account", "IMEI", "Comments"), dates
month-first, so the portal's tolerant reader is exercised the way a real export would.

Query parameters: ``days`` (default 7: the sheet repeats recent days, so consecutive sheets
overlap), ``include_today`` (default off: a same-day termination may still be cancelled, so the
daily sheet covers complete days only).
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

from django.http import HttpResponse, HttpResponseBadRequest
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET

from sandbox.faults import run_with_faults
from sandbox.myadmin.models import SandboxDevice, SandboxTerminationReason

HEADER = ["Serial Number", "Termination Date", "Reason", "Account", "IMEI", "Comments"]
MAX_DAYS = 90


def _rows(request):
    try:
        days = max(1, min(MAX_DAYS, int(request.GET.get("days", "7"))))
    except ValueError:
        return None
    today = timezone.now().astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    end = today + timedelta(days=1) if request.GET.get("include_today") in ("1", "true", "yes") else today
    reasons = dict(SandboxTerminationReason.objects.values_list("reason_id", "name"))
    devices = (
        SandboxDevice.objects.filter(terminated_at__gte=today - timedelta(days=days), terminated_at__lt=end)
        .select_related("account").order_by("terminated_at", "serial")
    )
    for device in devices.iterator(chunk_size=2000):
        yield [device.serial, device.terminated_at.astimezone(UTC).strftime("%m/%d/%Y"),
               reasons.get(device.termination_reason_id, ""), device.account.account_id, device.imei,
               device.termination_comments]


def _sheet_name(extension: str) -> str:
    return f"termination-summary-{datetime.now(UTC):%Y-%m-%d}.{extension}"


@csrf_exempt
@require_GET
def termination_sheet(request, extension: str):
    if extension not in ("csv", "xlsx"):
        return HttpResponse("The sheet is served as .csv or .xlsx.", status=404, content_type="text/plain")

    def execute():
        rows = _rows(request)
        if rows is None:
            return HttpResponseBadRequest("days must be a number")
        if extension == "csv":
            buf = io.StringIO()
            writer = csv.writer(buf)
            writer.writerow(HEADER)
            writer.writerows(rows)
            response = HttpResponse(buf.getvalue().encode("utf-8-sig"), content_type="text/csv; charset=utf-8")
        else:
            import openpyxl

            workbook = openpyxl.Workbook(write_only=True)
            sheet = workbook.create_sheet("Terminations")
            sheet.append(HEADER)
            for row in rows:
                sheet.append(row)
            buf = io.BytesIO()
            workbook.save(buf)
            response = HttpResponse(
                buf.getvalue(), content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
            )
        response["Content-Disposition"] = f'attachment; filename="{_sheet_name(extension)}"'
        return response

    return run_with_faults(request, "myadmin", "TerminationSheet", execute)
