"""Sandbox control over HTTP (fault campaigns and scripts switch faults without the admin)."""

import json

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from sandbox.models import Fault

_FIELDS = ("system", "mode", "methods", "probability", "remaining", "delay_ms", "retry_after_seconds")


def _as_dict(fault: Fault) -> dict:
    return {"id": fault.pk, "active": fault.active, "fired": fault.fired,
            **{f: getattr(fault, f) for f in _FIELDS}}


@csrf_exempt
@require_http_methods(["GET", "POST", "DELETE"])
def faults(request):
    """GET lists faults; POST {"system","mode",...} adds one; DELETE (?system=) clears them."""
    if request.method == "GET":
        return JsonResponse({"faults": [_as_dict(f) for f in Fault.objects.all()]})
    if request.method == "DELETE":
        qs = Fault.objects.all()
        if request.GET.get("system"):
            qs = qs.filter(system=request.GET["system"])
        deleted, _ = qs.delete()
        return JsonResponse({"deleted": deleted})
    try:
        body = json.loads(request.body or b"{}")
        if not isinstance(body, dict):
            raise ValueError("body must be a JSON object")
        fault = Fault(**{k: body[k] for k in _FIELDS if k in body})
        fault.full_clean()
    except (ValueError, TypeError) as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    except Exception as exc:  # ValidationError with field messages
        return JsonResponse({"error": getattr(exc, "message_dict", str(exc))}, status=400)
    fault.save()
    return JsonResponse(_as_dict(fault), status=201)
