"""The base vendor session: timeouts, outcome classification and the ledger, over real sockets."""

import socket
import threading

import pytest

from integrations.base import (
    MemoryRateLimiter,
    MemoryTokenStore,
    NotExecutedError,
    Outcome,
    OutcomeUnknownError,
    RateLimitedError,
    RejectedError,
    SharedCredential,
    VendorSession,
    parse_retry_after,
    redact,
    request_digest,
    vendor_call_context,
)
from portal.models import VendorCall

pytestmark = pytest.mark.django_db


class TinyServer:
    """A loopback TCP server with one scripted behaviour per connection."""

    def __init__(self, behaviour):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(5)
        self.port = self.sock.getsockname()[1]
        self.behaviour = behaviour
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        self.sock.settimeout(5)
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            conn.recv(65536)
            self.behaviour(conn)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/rpc"

    def close(self):
        self.sock.close()


def _json_ok(conn):
    body = b'{"result": 42}'
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))


def _parse(response):
    return response.json()["result"]


def test_success_is_recorded_with_target_and_digest_without_secrets():
    server = TinyServer(_json_ok)
    session = VendorSession("testvendor", read_timeout=2)
    with vendor_call_context(target="devices.Device:7"):
        assert session.call("Echo", "POST", server.url, parse=_parse,
                            digest_payload={"password": "hunter2", "x": 1}, json={"x": 1}) == 42
    call = VendorCall.objects.get()
    assert (call.system, call.method, call.outcome, call.http_status, call.target) == (
        "testvendor", "Echo", Outcome.OK, 200, "devices.Device:7")
    assert call.request_digest == request_digest({"password": "other", "x": 1})  # secrets masked first
    assert "hunter2" not in str(VendorCall.objects.values().get())
    server.close()


def test_connection_refused_is_not_executed():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    with pytest.raises(NotExecutedError) as info:
        VendorSession("testvendor").call("Echo", "POST", f"http://127.0.0.1:{port}/", parse=_parse)
    assert info.value.retryable and not info.value.may_have_executed
    assert VendorCall.objects.get().outcome == Outcome.NOT_EXECUTED


def test_read_timeout_after_sending_is_unknown():
    release = threading.Event()
    server = TinyServer(lambda conn: release.wait(3))
    with pytest.raises(OutcomeUnknownError) as info:
        VendorSession("testvendor", read_timeout=0.3).call("Provision", "POST", server.url, parse=_parse, data=b"x")
    release.set()
    assert info.value.may_have_executed
    call = VendorCall.objects.get()
    assert (call.outcome, call.error_name) == (Outcome.UNKNOWN, "ReadTimeout")
    server.close()


def test_connection_closed_without_reply_is_unknown():
    server = TinyServer(lambda conn: conn.shutdown(socket.SHUT_RDWR))
    with pytest.raises(OutcomeUnknownError):
        VendorSession("testvendor").call("Provision", "POST", server.url, parse=_parse, data=b"x")
    assert VendorCall.objects.get().error_name == "ConnectionLost"
    server.close()


def test_parse_errors_keep_their_class_and_unreadable_bodies_are_unknown():
    server = TinyServer(_json_ok)

    def refuse(response):
        raise RejectedError("no such account", error_name="MyAdminException")

    with pytest.raises(RejectedError):
        VendorSession("testvendor").call("Provision", "POST", server.url, parse=refuse)
    assert VendorCall.objects.get().outcome == Outcome.REJECTED
    server.close()

    garbage = TinyServer(lambda c: c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n{{{"))
    with pytest.raises(OutcomeUnknownError):
        VendorSession("testvendor").call("Provision", "POST", garbage.url, parse=_parse)
    garbage.close()


def test_shared_credential_renews_once_for_many_stale_callers():
    logins = []
    cred = SharedCredential(MemoryTokenStore(), "vendor", login=lambda: logins.append(1) or {"session": len(logins)})
    first = cred.get()
    assert first == {"session": 1}
    # Two workers found the same session stale: only the first logs in again.
    assert cred.renew(first) == {"session": 2}
    assert cred.renew(first) == {"session": 2}
    assert len(logins) == 2


def test_memory_rate_limiter_waits_for_the_next_window_and_gives_up_past_max_wait():
    now = [100.0]
    slept = []
    limiter = MemoryRateLimiter(clock=lambda: now[0], sleep=lambda s: (slept.append(s), now.__setitem__(0, now[0] + s)))
    for _ in range(3):
        limiter.acquire("m", limit=3, period=60)
    limiter.acquire("m", limit=3, period=60)  # fourth call waits for the next minute
    assert slept and 0 < slept[0] <= 60
    for _ in range(2):
        limiter.acquire("m", limit=3, period=60)
    with pytest.raises(RateLimitedError):
        limiter.acquire("m", limit=3, period=60, max_wait=1)


def test_retry_after_and_redaction():
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(None, default=60) == 60
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert redact({"params": {"apiKey": "k", "sessionId": "s", "serialNo": "CX1"}}) == {
        "params": {"apiKey": "***", "sessionId": "***", "serialNo": "CX1"}}
