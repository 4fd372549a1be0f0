"""The DIG client against the simulator over real HTTP: token lifecycle and every error class."""

import time

import pytest

from integrations.base import (
    AuthenticationError,
    MemoryTokenStore,
    NotExecutedError,
    OutcomeUnknownError,
    RateLimitedError,
)
from integrations.dig import BadRecordsError, PayloadTooLargeError
from portal.models import VendorCall
from sandbox.dig.models import DigBatch, DigToken
from sandbox.models import Fault

from .conftest import gps, gps_series

pytestmark = pytest.mark.django_db(transaction=True)


def test_login_once_and_share_the_token_pair_between_clients(make_client):
    store = MemoryTokenStore()
    a, b = make_client(token_store=store), make_client(token_store=store)
    assert a.post_records([gps("CX0000000001")])
    assert b.post_records([gps("CX0000000002")])
    assert DigToken.objects.count() == 1  # one login for both "workers"
    assert DigBatch.objects.count() == 2
    calls = list(VendorCall.objects.filter(system="dig").values_list("method", "outcome"))
    assert calls.count(("authenticate", "ok")) == 1


def test_refresh_before_expiry_uses_each_refresh_token_once(make_client, dig_config):
    dig_config(bearer_lifetime_seconds=4)
    clock = [time.time()]
    client = make_client(clock=lambda: clock[0])
    first = client.tokens()
    clock[0] += 2.5  # past half the lifetime: due for refresh, not yet expired
    second = client.tokens()
    assert second.bearer != first.bearer and second.refresh != first.refresh
    old = DigToken.objects.get(bearer=first.bearer)
    assert old.refreshed_at is not None
    clock[0] = time.time()  # back to real time: the new pair is fresh
    assert client.post_records([gps("CX0000000001")])
    assert DigToken.objects.count() == 2


def test_used_refresh_token_gets_403_and_the_client_logs_in_again(make_client):
    store = MemoryTokenStore()
    client = make_client(token_store=store)
    pair = client.tokens()
    # Someone else refreshed with this pair (and lost the answer): DIG now answers 403.
    client._refresh(pair)
    store.set(client.TOKEN_KEY, pair.as_dict())
    fresh = client._renew(pair)
    assert fresh.bearer != pair.bearer
    methods = list(VendorCall.objects.filter(system="dig").order_by("id").values_list("method", "http_status"))
    assert ("refresh-token", 403) in methods
    assert methods[-1] == ("authenticate", 200)


def test_401_on_records_renews_once_and_retries(make_client):
    client = make_client()
    client.tokens()
    DigToken.objects.update(revoked_at="2020-01-01T00:00:00Z")  # DIG blocked our bearer
    assert client.post_records([gps("CX0000000001")])
    statuses = list(VendorCall.objects.filter(system="dig", method="records").order_by("id").values_list("http_status", flat=True))
    assert statuses == [401, 202]


def test_expired_bearer_via_fault_injection_is_renewed(make_client):
    client = make_client()
    client.tokens()
    Fault.objects.create(system="dig", mode="session_expiry", methods="records", remaining=1)
    assert client.post_records([gps("CX0000000001")])
    assert DigBatch.objects.count() == 1


def test_wrong_password_is_an_authentication_error(make_client):
    client = make_client(password="wrong")
    with pytest.raises(AuthenticationError):
        client.post_records([gps("CX0000000001")])


def test_auth_rate_limit_429_from_dig(make_client, dig_config):
    dig_config(auth_requests_per_minute=1)
    make_client().tokens()
    with pytest.raises(RateLimitedError) as info:
        make_client().tokens()
    assert info.value.retry_after and info.value.retry_after > 0


def test_client_side_auth_limit_is_shared(make_client):
    from integrations.base import MemoryRateLimiter

    limiter = MemoryRateLimiter(sleep=lambda s: None)
    for _ in range(5):
        make_client(rate_limiter=limiter, auth_max_wait=0).tokens()
    with pytest.raises(RateLimitedError):
        make_client(rate_limiter=limiter, auth_max_wait=0).tokens()


def test_400_names_the_bad_record(make_client):
    records = gps_series("CX0000000001", 3)
    records[1]["Latitude"] = 123.0
    with pytest.raises(BadRecordsError) as info:
        make_client().post_records(records)
    assert any("[1]" in e and "Latitude" in e for e in info.value.errors)
    assert DigBatch.objects.count() == 0


def test_413_above_the_record_limit(make_client, dig_config):
    dig_config(max_records_per_post=2)
    with pytest.raises(PayloadTooLargeError):
        make_client().post_records(gps_series("CX0000000001", 3))
    with pytest.raises(ValueError):
        make_client().post_records([])


def test_503_outage_and_429_burst_are_not_executed(make_client):
    client = make_client()
    client.tokens()
    Fault.objects.create(system="dig", mode="outage", methods="records", remaining=1, retry_after_seconds=3)
    with pytest.raises(NotExecutedError) as info:
        client.post_records([gps("CX0000000001")])
    assert info.value.retry_after == 3
    Fault.objects.create(system="dig", mode="rate_limit", methods="records", remaining=1, retry_after_seconds=2)
    with pytest.raises(RateLimitedError):
        client.post_records([gps("CX0000000001")])
    assert DigBatch.objects.count() == 0


def test_commit_then_drop_is_outcome_unknown(make_client):
    client = make_client(read_timeout=1.0)
    client.tokens()
    Fault.objects.create(system="dig", mode="commit_then_drop", methods="records", remaining=1, delay_ms=3000)
    with pytest.raises(OutcomeUnknownError):
        client.post_records([gps("CX0000000001")])
    assert DigBatch.objects.count() == 1  # it was stored: a resend is a duplicate DIG dedups


def test_invalid_records_cursor_pages(make_client, dig_config):
    dig_config(unassigned_serials="CX0000000009")
    client = make_client()
    client.post_records(gps_series("CX0000000009", 5) + gps_series("CX0000000001", 2))
    page = client.invalid_records(number_of_results=2)
    assert len(page.records) == 2 and page.next_result_key is not None
    assert page.records[0].cause and page.records[0].record["SerialNo"] == "CX0000000009"
    seen = len(page.records)
    while page.next_result_key is not None:
        page = client.invalid_records(next_result_key=page.next_result_key, number_of_results=2)
        seen += len(page.records)
    assert seen == 5


def test_revoke_blocks_the_bearer(make_client):
    store = MemoryTokenStore()
    client = make_client(token_store=store)
    pair = client.tokens()
    client.revoke()
    assert DigToken.objects.get(bearer=pair.bearer).revoked_at is not None
    assert client.post_records([gps("CX0000000001")])  # logs in again
