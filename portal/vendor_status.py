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
