"""Plain words for a failed vendor call: the vendor's message and what the portal does next."""

from portal.models import VendorCall

NEXT_STEP = {
    VendorCall.Outcome.OK: "Nothing: the call succeeded.",
    VendorCall.Outcome.NOT_EXECUTED: "The vendor did not act on it; the portal retries with backoff "
                                      "(bounded) and then asks staff.",
    VendorCall.Outcome.UNKNOWN: "It may have executed: the portal never repeats it blindly; it waits "
                                 "for reconciliation, which asks the vendor what happened.",
    VendorCall.Outcome.REJECTED: "The vendor refused it: nothing is retried; it needs staff to fix the "
                                  "input or the account and try again.",
}


def vendor_call_next_step(call: VendorCall) -> str:
    step = NEXT_STEP.get(call.outcome, "")
    if call.outcome == VendorCall.Outcome.OK:
        return step
    said = call.error_message or call.error_name or "no message"
    return f"{call.get_system_display() if hasattr(call, 'get_system_display') else call.system} said: {said}. {step}"


def vendor_status_for(obj, *, limit: int = 1) -> list[dict]:
    """The latest failed vendor calls made for ``obj`` (linked by the ledger's target
    "app_label.Model:pk"), each with the vendor's message and what the portal does next; when
    the object carries its own schedule (``next_attempt_at``) or state, that is said too."""
    if obj is None or getattr(obj, "pk", None) is None:
        return []
    target = f"{obj._meta.label}:{obj.pk}"
    calls = list(
        VendorCall.objects.filter(target=target).exclude(outcome=VendorCall.Outcome.OK).order_by("-started_at", "-id")[:limit]
    )
    latest_ok = VendorCall.objects.filter(target=target, outcome=VendorCall.Outcome.OK).order_by("-started_at").values_list(
        "started_at", flat=True).first()
    out = []
    for call in calls:
        if latest_ok and latest_ok > call.started_at:
            continue  # a later call succeeded: nothing to explain
        step = NEXT_STEP.get(call.outcome, "")
        retry_at = getattr(obj, "next_attempt_at", None)
        if call.outcome == VendorCall.Outcome.NOT_EXECUTED and retry_at:
            step = f"The vendor did not act on it; the portal retries at {retry_at:%Y-%m-%d %H:%M:%S %Z}."
        status = str(getattr(obj, "status", "") or "")
        if status in ("needs_staff", "failed") or getattr(obj, "flagged", False):
            step += " It is waiting for staff."
        out.append({"call": call, "system": call.system, "method": call.method,
                    "message": call.error_message or call.error_name or "no message",
                    "next_step": step, "outcome": call.get_outcome_display()})
    return out
