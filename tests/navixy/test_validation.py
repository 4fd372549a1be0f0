"""Bad input: every rule gets a field-level message, and nothing is written or sent."""

import pytest

from devices.models import Tracker
from devices.services import trackers as svc
from portal.models import VendorCall

from .conftest import GOOD_PHONE, fmb140_input

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("change,field,fragment", [
    ({"label": ""}, "label", "required"),
    ({"label": "x" * 61}, "label", "60"),
    ({"plugin_id": ""}, "plugin_id", "Choose"),
    ({"plugin_id": 12}, "plugin_id", "44 and 37"),
    ({"model_code": "nope"}, "model_code", "Unknown model"),
    ({"model_code": "mobile_unknown_xgps"}, "model_code", "mobile app"),
    ({"device_id": ""}, "device_id", "required"),
    ({"device_id": "35693803564380"}, "device_id", "15 digits"),
    ({"device_id": "356938035643808"}, "device_id", "check digit"),
    ({"model_code": "sandbox_meid", "device_id": "A10000009296FZ"}, "device_id", "hexadecimal"),
    ({"model_code": "sandbox_id7", "device_id": "123456"}, "device_id", "exactly 7 digits"),
    ({"model_code": "navixy_ngp", "device_id": "abc", "phone": "", "apn_name": ""}, "device_id", "6-32"),
    ({"model_code": "navixy_ngp", "device_id": "abc_def", "phone": "", "apn_name": ""}, "device_id", "hyphens"),
    ({"model_code": "tt1_wp", "device_id": "2000000000"}, "device_id", "Navixy assigns"),
    ({"phone": ""}, "phone", "required"),
    ({"phone": "99999999"}, "phone", "country code"),
    ({"phone": "49151"}, "phone", "valid phone"),
    ({"phone": "49-151-abc"}, "phone", "digits only"),
    ({"apn_name": ""}, "apn_name", "required"),
    ({"apn_name": "a" * 41}, "apn_name", "40"),
    ({"apn_user": "u" * 41}, "apn_user", "40"),
    ({"apn_password": "p" * 41}, "apn_password", "40"),
    ({"plugin_id": 37}, "activation_code", "requires an activation code"),
    ({"activation_code": "12ab"}, "activation_code", "number"),
    ({"group": 77}, "group", "does not exist"),
    ({"group": "abc"}, "group", "group id"),
    ({"notification_phone": GOOD_PHONE}, "notification_phone", "mobile app"),
])
def test_device_rules(offline_catalogue, change, field, fragment):
    _, errors = svc.tracker_validate(data=fmb140_input(**change))
    assert field in errors, errors
    assert any(fragment in message for message in errors[field]), errors[field]


@pytest.mark.parametrize("change,field,fragment", [
    ({"model_code": "telfmb140"}, "model_code", "X-GPS mobile app"),
    ({"device_id": "356938035643809"}, "device_id", "leave empty"),
    ({"phone": GOOD_PHONE}, "phone", "leave empty"),
    ({"plugin_id": 68}, "activation_code", "requires"),
    ({"notification_email": "not-an-email"}, "notification_email", "valid e-mail"),
    ({"notification_phone": "12"}, "notification_phone", "international"),
])
def test_mobile_rules(offline_catalogue, change, field, fragment):
    data = {"label": "Andrew", "plugin_id": 35, "model_code": "mobile_unknown_xgps", **change}
    _, errors = svc.tracker_validate(data=data)
    assert any(fragment in message for message in errors.get(field, [])), errors


def test_plugin_not_available_to_the_user(offline_catalogue):
    from devices.models import NavixyPlugin

    NavixyPlugin.objects.filter(plugin_id=37).update(available=False)
    _, errors = svc.tracker_validate(data=fmb140_input(plugin_id=37, activation_code="6045325592"))
    assert errors == {"plugin_id": ["Plugin 37 is not available to the portal's Navixy user."]}


def test_valid_inputs(offline_catalogue):
    for data in (
        fmb140_input(),
        fmb140_input(phone="+49 151 12345678"),  # normalised to digits without '+'
        {"label": "Andrew", "plugin_id": 68, "model_code": "mobile_unknown_xgps", "activation_code": "7000000001",
         "notification_phone": GOOD_PHONE, "notification_email": "a@example.com"},
        fmb140_input(model_code="navixy_ngp", device_id="ngp-0001", phone="", apn_name=""),
        fmb140_input(model_code="sandbox_meid", device_id="a10000009296f2", apn_name=""),
        fmb140_input(model_code="tt1_wp", device_id=""),
        fmb140_input(group=1),
    ):
        _cleaned, errors = svc.tracker_validate(data=data)
        assert errors == {}, (data, errors)
    assert svc.tracker_validate(data=fmb140_input(phone="+49 151 12345678"))[0]["phone"] == GOOD_PHONE
    assert svc.tracker_validate(data=fmb140_input(model_code="sandbox_meid", device_id="a10000009296f2",
                                                  apn_name=""))[0]["device_id"] == "A10000009296F2"


def test_invalid_input_writes_and_sends_nothing(offline_catalogue):
    with pytest.raises(svc.ValidationError) as exc:
        svc.tracker_create(data=fmb140_input(device_id="123", phone="1"))
    assert set(exc.value.message_dict) == {"device_id", "phone"}
    assert Tracker.objects.count() == 0 and VendorCall.objects.count() == 0


def test_duplicate_device_id_in_portal(offline_catalogue, enqueued):
    svc.tracker_create(data=fmb140_input(), submit=False)
    _, errors = svc.tracker_validate(data=fmb140_input(label="Other"))
    assert "already has this device ID" in errors["device_id"][0]
