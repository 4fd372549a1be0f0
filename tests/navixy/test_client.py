"""The Navixy client against the simulator over real HTTP: the documented examples, every
registration error code, the encodings and hash placements, session renewal and rate limits."""

import pytest
import requests

from integrations import navixy as nx
from integrations.base import MemoryRateLimiter, Outcome
from portal.models import VendorCall

from .conftest import SIM_API_KEY, SIM_LOGIN, SIM_PASSWORD, luhn_imei

# Only these apps' tables are flushed after each test: much cheaper than a full flush, and the
# client tests touch nothing else.
CLIENT_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "portal", "sandbox", "sandbox.navixy"]
pytestmark = pytest.mark.django_db(transaction=True, available_apps=CLIENT_APPS)

FMB140 = {"label": "T571TO", "group_id": 0, "plugin_id": 44, "model": "telfmb140", "phone": "999999999969",
          "device_id": "986575154632586", "apn_name": "internet", "apn_user": "user", "apn_password": "passwd"}


def test_doc_example_plugin_44_teltonika_by_imei(navixy):
    tracker = navixy.register(**FMB140)
    assert tracker.label == "T571TO"
    assert tracker.device_id == "986575154632586"
    assert tracker.model == "telfmb140"
    assert tracker.phone == "999999999969"
    assert tracker.group_id == 0 and tracker.clone is False and tracker.blocked is False
    assert tracker.source_id and tracker.tariff_id
    assert (tracker.tariff_end_date - tracker.creation_date).days == 14
    assert navixy.tracker_read(tracker_id=tracker.id) == tracker
    assert [t.id for t in navixy.tracker_list(labels=["T571"])] == [tracker.id]


def test_doc_example_plugin_37_needs_and_consumes_activation_code(navixy):
    params = {**FMB140, "plugin_id": 37}
    with pytest.raises(nx.InvalidParameters) as exc:
        navixy.register(**params)
    assert exc.value.field_errors() == {"activation_code": ["required parameter is missing"]}
    assert exc.value.outcome == Outcome.REJECTED
    tracker = navixy.register(**params, activation_code="6045325592")
    assert tracker.device_id == FMB140["device_id"]
    # Single use: the same code again is 227, whatever the device.
    with pytest.raises(nx.WrongActivationCode) as exc:
        navixy.register(**{**params, "device_id": luhn_imei("35693803564380"), "phone": "999999999970"},
                        activation_code="6045325592")
    assert exc.value.code == 227


@pytest.mark.parametrize("plugin_id,code", [(35, None), (68, "7000000001")])
def test_doc_example_mobile_app(navixy, plugin_id, code):
    tracker = navixy.register(label="Andrew", group_id=0, plugin_id=plugin_id, model="mobile_unknown_xgps",
                              notification_phone="999877459965", activation_code=code)
    assert tracker.model == "mobile_unknown_xgps"
    assert tracker.phone is None
    assert len(tracker.device_id) == 12 and tracker.device_id.startswith("1")  # assigned by the platform


def test_mobile_plugin_68_requires_code(navixy):
    with pytest.raises(nx.InvalidParameters):
        navixy.register(label="Andrew", group_id=0, plugin_id=68, model="mobile_unknown_xgps")


def test_device_id_registers_once_224_and_phone_once_223(navixy):
    navixy.register(**FMB140)
    with pytest.raises(nx.DeviceIdInUse) as exc:
        navixy.register(**{**FMB140, "phone": "999999999970"})
    assert exc.value.code == 224 and exc.value.http_status == 400 and not exc.value.retryable
    with pytest.raises(nx.PhoneInUse) as exc:
        navixy.register(**{**FMB140, "device_id": luhn_imei("35693803564380")})
    assert exc.value.code == 223


REJECTIONS = [
    ({"model": "no_such_model"}, nx.UnknownModel, 400),
    ({"plugin_id": 99}, nx.PluginNotFound, 400),
    ({"plugin_id": 35}, nx.PluginNotFound, 400),  # the mobile plugin does not take a device model
    ({"group_id": 424242}, nx.EntityNotFound, 404),
    ({"device_id": "12345"}, nx.InvalidParameters, 400),
    ({"apn_name": "x" * 41}, nx.InvalidParameters, 400),
    ({"label": ""}, nx.InvalidParameters, 400),
    ({"activation_code": "0000000000"}, nx.WrongActivationCode, 400),
]


def test_registration_errors_are_typed_by_code(navixy):
    # One test for all cases: each live-server test pays a database flush.
    for change, error, status in REJECTIONS:
        with pytest.raises(error) as exc:
            navixy.register(**{**FMB140, **change})
        assert exc.value.http_status == status, change
        assert exc.value.outcome == Outcome.REJECTED
    assert navixy.tracker_list() == []


def test_validation_error_lists_the_parameter(navixy):
    with pytest.raises(nx.InvalidParameters) as exc:
        navixy.register(**{**FMB140, "model": "navixy_ngp", "device_id": "ab", "phone": None})
    assert exc.value.field_errors() == {"device_id": ["must consist of 6-32 alphanumeric symbols or hyphens"]}


def test_catalogue_calls(navixy):
    models = {m.code: m for m in navixy.list_models()}
    assert models["telfmb140"].id_type == "imei" and models["telfmb140"].has_phone
    assert models["mobile_unknown_xgps"].is_mobile and not models["mobile_unknown_xgps"].has_phone
    assert {m.id_type for m in models.values()} >= {"imei", "meid", "id,7", "10,2", "ascii,6,64"}
    assert [m.code for m in navixy.list_models(codes=["telfmb140"])] == ["telfmb140"]
    plugins = {p.id: p for p in navixy.plugin_list()}
    assert set(plugins) == {44, 37, 35, 68}
    assert plugins[44].filter_exclusion and not plugins[35].filter_exclusion
    group_id = navixy.group_create(title="Vans", color="00FF00")
    assert any(g.id == group_id and g.title == "Vans" for g in navixy.group_list())
    tracker = navixy.register(**{**FMB140, "group_id": group_id})
    assert tracker.group_id == group_id


def test_each_id_type(navixy):
    base = {"group_id": 0, "plugin_id": 44}
    assert navixy.register(**base, label="M", model="sandbox_meid", device_id="A10000009296F2",
                           phone="999999999971").device_id == "A10000009296F2"
    assert navixy.register(**base, apn_name="internet", label="F", model="sandbox_id7", device_id="1234567",
                           phone="999999999972").device_id == "1234567"
    with pytest.raises(nx.InvalidParameters):
        navixy.register(**base, apn_name="internet", label="F", model="sandbox_id7", device_id="123456",
                        phone="999999999973")
    generated = navixy.register(**base, apn_name="internet", label="G", model="tt1_wp", phone="999999999974")
    assert len(generated.device_id) == 10 and generated.device_id.startswith("2")
    assert navixy.register(**base, label="N", model="navixy_ngp", device_id="ngp-0001").device_id == "ngp-0001"
    with pytest.raises(nx.InvalidParameters) as exc:
        navixy.register(**base, label="N", model="navixy_ngp", device_id="bad_id!")
    assert exc.value.field_errors()["device_id"] == ['must match "^[0-9a-zA-Z\\-]{1,64}$"']


def test_register_retry(navixy):
    tracker = navixy.register(**FMB140)
    again = navixy.register_retry(tracker_id=tracker.id, apn_name="internet2")
    assert again.id == tracker.id
    with pytest.raises(nx.RetryTooSoon) as exc:  # [I] once per 120 s
        navixy.register_retry(tracker_id=tracker.id)
    assert exc.value.outcome == Outcome.NOT_EXECUTED
    with pytest.raises(nx.NotFound):
        navixy.register_retry(tracker_id=999999)
    mobile = navixy.register(label="Andrew", group_id=0, plugin_id=35, model="mobile_unknown_xgps")
    with pytest.raises(nx.NotSupportedByDevice):
        navixy.register_retry(tracker_id=mobile.id)
    with pytest.raises(nx.NotFound):
        navixy.tracker_read(tracker_id=999999)


def test_hash_sent_as_nvx_header_and_secrets_not_in_ledger(navixy):
    navixy.register(**FMB140)
    calls = list(VendorCall.objects.filter(system="navixy").values_list("method", "outcome"))
    assert ("user/auth", "ok") in calls and ("tracker/register", "ok") in calls
    blob = str(list(VendorCall.objects.values()))
    assert SIM_PASSWORD not in blob and "passwd" not in blob


def test_session_end_is_renewed_once(navixy, fault):
    navixy.group_list()
    first_hash = navixy.credential.get()["hash"]
    fault("session_expiry", "tracker/group/list", remaining=1)
    navixy.group_list()  # the first try meets code 4; the client logs in again and resends
    assert navixy.credential.get()["hash"] != first_hash
    methods = list(VendorCall.objects.filter(system="navixy").order_by("id").values_list("method", "error_name"))
    assert methods[-3:] == [("tracker/group/list", "navixy.4"), ("user/auth", ""), ("tracker/group/list", "")]


def test_wrong_password_is_authentication_error(navixy_api_url):
    client = nx.NavixyClient(navixy_api_url, login=SIM_LOGIN, password="wrong")
    with pytest.raises(nx.WrongCredentials) as exc:
        client.group_list()
    assert exc.value.code == 102


def test_api_key_auth_and_unknown_key(navixy_api_url):
    assert nx.NavixyClient(navixy_api_url, api_key=SIM_API_KEY).group_list()
    with pytest.raises(nx.ApiKeyRejected):
        nx.NavixyClient(navixy_api_url, api_key="0" * 32).group_list()
    with pytest.raises(nx.WrongHash):
        nx.NavixyClient(navixy_api_url, api_key="not-a-hash").group_list()


def test_rate_limit_15_backs_off_then_succeeds(navixy, fault):
    fault("rate_limit", "plugin/list", remaining=2, retry_after_seconds=1)
    assert navixy.plugin_list()
    assert navixy.sleeps == [1.0, 1.0]  # Retry-After honoured, then success


def test_rate_limit_gives_up_after_bounded_retries(navixy, fault):
    fault("rate_limit", "plugin/list", remaining=10)
    with pytest.raises(nx.RateLimited) as exc:
        navixy.plugin_list()
    assert exc.value.code == 15 and exc.value.http_status == 429 and exc.value.retryable
    assert len(navixy.sleeps) == navixy.max_busy_retries


def test_outage_is_not_executed_and_5xx_is_unknown(navixy, fault):
    fault("outage", "tracker/register", remaining=10)
    with pytest.raises(nx.QueueBusy) as exc:
        navixy.register(**FMB140)
    assert exc.value.http_status == 503 and exc.value.outcome == Outcome.NOT_EXECUTED
    requests.delete(navixy.base_url.rsplit("/navixy", 1)[0] + "/faults/", timeout=5)
    fault("server_error_after_commit", "tracker/register", remaining=1)
    with pytest.raises(nx.UnexpectedError) as exc:
        navixy.register(**FMB140)
    assert exc.value.outcome == Outcome.UNKNOWN and exc.value.http_status == 500
    with pytest.raises(nx.DeviceIdInUse):  # it had executed
        navixy.register(**FMB140)


def test_commit_then_drop_is_unknown(navixy, fault):
    fault("commit_then_drop", "tracker/register", remaining=1, delay_ms=3000)
    with pytest.raises(nx.OutcomeUnknownError) as exc:
        navixy.register(**FMB140)
    assert exc.value.outcome == Outcome.UNKNOWN
    assert [t.device_id for t in navixy.tracker_list(labels=["T571TO"])] == [FMB140["device_id"]]


def test_client_stays_under_50_per_second():
    clock = [0.0]
    # A fake clock; sleeps overshoot by a microsecond as real ones do (float window edges).
    limiter = MemoryRateLimiter(clock=lambda: clock[0], sleep=lambda s: clock.__setitem__(0, clock[0] + s + 1e-6))
    stamps = []
    for _ in range(200):
        limiter.acquire("navixy:x", limit=nx.RATE_WINDOW_CALLS, period=nx.RATE_WINDOW_SECONDS)
        stamps.append(clock[0])
        clock[0] += 0.001
    worst = max(sum(1 for s in stamps if start <= s < start + 1.0) for start in stamps)
    assert worst <= 50


# --------------------------------------------------------------------------- raw wire forms


def _auth_hash(url):
    r = requests.post(f"{url}/user/auth", json={"login": SIM_LOGIN, "password": SIM_PASSWORD}, timeout=5)
    body = r.json()
    assert r.status_code == 200 and body["success"] is True and body["type"] == "authenticated"
    assert len(body["hash"]) == 32
    return body["hash"]


def test_encodings_and_hash_placements(navixy_api_url):
    url = navixy_api_url
    h = _auth_hash(url)
    # JSON body with hash at the root
    r = requests.post(f"{url}/tracker/group/list", json={"hash": h}, timeout=5)
    assert r.json()["success"] is True
    # form body, arrays as JSON text
    r = requests.post(f"{url}/tracker/list_models", data={"hash": h, "codes": '["telfmb140"]'}, timeout=5)
    assert [m["code"] for m in r.json()["list"]] == ["telfmb140"]
    # query string (GET), including a registration as in the docs' GET example
    r = requests.get(f"{url}/tracker/register", params={"hash": h, **{k: str(v) for k, v in FMB140.items()}},
                     timeout=5)
    assert r.json()["value"]["source"]["device_id"] == FMB140["device_id"]
    # header, with the mandatory single space
    r = requests.post(f"{url}/plugin/list", json={}, headers={"Authorization": f"NVX {h}"}, timeout=5)
    assert r.json()["success"] is True
    r = requests.post(f"{url}/plugin/list", json={}, headers={"Authorization": f"NVX{h}"}, timeout=5)
    assert r.status_code == 400 and r.json()["status"]["code"] == 3
    # no hash / unknown hash → 4
    r = requests.post(f"{url}/plugin/list", json={}, timeout=5)
    assert r.json() == {"success": False, "status": {"code": 4,
                                                     "description": "User or API key not found or session ended"}}
    # trailing slash tolerated
    assert requests.post(f"{url}/plugin/list/", json={"hash": h}, timeout=5).json()["success"] is True


def test_simulator_rate_limit_is_50_per_second():
    from sandbox.navixy import views

    key = "rate-limit-test-key"
    assert not any(views.over_rate_limit(key) for _ in range(50))
    assert views.over_rate_limit(key)  # the 51st within the same second
