"""Run a simulated vendor action under the active faults.

Every simulator view calls `run_with_faults(request, system, method, execute, ...)`, where
`execute()` performs the action (committing its own transaction) and returns the response.
The modes reproduce what a real network and vendor do to a caller:

- before executing: latency, 429 with Retry-After, 503 outage, 500;
- after executing: a reply delayed past the client's timeout (`slow`), a connection closed with
  no reply (`commit_then_drop`), a 500 (`server_error_after_commit`).
"""

from __future__ import annotations

import logging
import random
import socket
import socketserver
import sys
import time
from collections.abc import Callable

from django.db import transaction
from django.db.models import F
from django.http import HttpResponse, JsonResponse

from sandbox.models import Fault

logger = logging.getLogger(__name__)

Responder = Callable[[Fault], HttpResponse]


def draw(system: str, method: str) -> Fault | None:
    """The first active fault for (system, method) that fires on this request, if any."""
    candidates = [f for f in Fault.objects.filter(system=system, active=True) if f.applies_to(method)]
    for fault in candidates:
        if fault.probability < 1.0 and random.random() >= fault.probability:  # noqa: S311
            continue
        with transaction.atomic():
            locked = Fault.objects.select_for_update().filter(pk=fault.pk, active=True).first()
            if locked is None:
                continue
            if locked.remaining is not None:
                if locked.remaining == 0:
                    continue
                Fault.objects.filter(pk=fault.pk).update(remaining=F("remaining") - 1, fired=F("fired") + 1)
                if locked.remaining == 1:
                    Fault.objects.filter(pk=fault.pk).update(active=False)
            else:
                Fault.objects.filter(pk=fault.pk).update(fired=F("fired") + 1)
        return fault
    return None


def default_error(status: int, message: str) -> Responder:
    def respond(fault: Fault) -> HttpResponse:
        response = JsonResponse({"error": message}, status=status)
        if status == 429:
            response["Retry-After"] = str(fault.retry_after_seconds)
        return response

    return respond


def run_with_faults(
    request,
    system: str,
    method: str,
    execute: Callable[[], HttpResponse],
    *,
    rate_limited: Responder | None = None,
    unavailable: Responder | None = None,
    server_error: Responder | None = None,
    expire_session: Callable[[], None] | None = None,
) -> HttpResponse:
    fault = draw(system, method)
    if fault is None:
        return execute()
    mode = fault.mode
    logger.info("sandbox fault %s on %s.%s", mode, system, method)
    if mode == Fault.Mode.LATENCY:
        time.sleep(fault.delay_ms / 1000)
        return execute()
    if mode == Fault.Mode.RATE_LIMIT:
        return (rate_limited or default_error(429, "Too Many Requests"))(fault)
    if mode == Fault.Mode.OUTAGE:
        return (unavailable or default_error(503, "Service Unavailable"))(fault)
    if mode == Fault.Mode.SERVER_ERROR:
        return (server_error or default_error(500, "Internal Server Error"))(fault)
    if mode == Fault.Mode.SESSION_EXPIRY:
        if expire_session is not None:
            expire_session()
        return execute()
    response = execute()
    if mode == Fault.Mode.SLOW:
        time.sleep(fault.delay_ms / 1000)
        return response
    if mode == Fault.Mode.SERVER_ERROR_AFTER_COMMIT:
        return (server_error or default_error(500, "Internal Server Error"))(fault)
    if mode == Fault.Mode.COMMIT_THEN_DROP:
        drop_connection(request, fallback_delay_ms=fault.delay_ms or 60_000)
        return HttpResponse(status=204)
    return response


def _request_socket(request) -> socket.socket | None:
    """The client connection of this request, for the servers the sandbox runs under."""
    sock = request.META.get("gunicorn.socket")
    if sock is not None:
        return sock
    # Django's runserver / test live server (wsgiref): the request handler that is serving us
    # is up the call stack and holds the connection. A simulator may look; the portal never does.
    frame = sys._getframe(1)
    while frame is not None:
        handler = frame.f_locals.get("self")
        if isinstance(handler, socketserver.StreamRequestHandler):
            return handler.connection
        frame = frame.f_back
    return None


def drop_connection(request, *, fallback_delay_ms: int) -> None:
    """Close the client's connection with no reply (the action has already committed).

    If the server does not expose its socket, hold the reply past any sane client timeout
    instead: from the client's side both are "sent, and no answer came back".
    """
    sock = _request_socket(request)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
            return
        except OSError:
            pass
    time.sleep(fallback_delay_ms / 1000)
