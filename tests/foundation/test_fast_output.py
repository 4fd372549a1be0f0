"""The fast output of read-only serializers is byte-for-byte DRF's."""

from datetime import UTC, datetime

import pytest
from django.utils import timezone
from rest_framework import serializers

from devices.api.device import DeviceSerializer
from devices.models import Device, ProvisioningRequest

pytestmark = pytest.mark.django_db


class PlainDeviceSerializer(serializers.ModelSerializer):
    class Meta:
        model = Device
        fields = DeviceSerializer.Meta.fields


class PlainWithExtrasSerializer(serializers.ModelSerializer):
    label = serializers.SerializerMethodField()
    display_status = serializers.CharField(source="get_status_display")

    class Meta:
        model = Device
        fields = [*DeviceSerializer.Meta.fields, "label", "display_status"]

    def get_label(self, obj):
        return f"{obj.serial} ({self.context.get('who', '-')})"


def _devices():
    request = ProvisioningRequest.objects.create(erp_no="ERP1", product_id=10032, quantity=1,
                                                idempotency_key="fast-output-1")
    full = Device.objects.create(
        serial="GA0000000001", product_id=10032, product_type="CustomDevice", erp_no="ERP1", status="active",
        imei="356000000000001", sim="8901000000000000001", comments="c", promo_code="p", group_id="g",
        database_name="db", ready_for_data_at=datetime(2026, 11, 22, 1, 2, 3, 456789, tzinfo=UTC),
        mygeotab_device_id="b1", terminated_at=datetime(2026, 11, 22, 4, 5, 6, tzinfo=UTC),
        provisioning_request=request,
    )
    sparse = Device.objects.create(serial="GA0000000002", product_id=10032, product_type="CustomDevice",
                                   erp_no="ERP1")
    return list(Device.objects.filter(pk__in=[full.pk, sparse.pk]).order_by("pk"))


@pytest.mark.parametrize("zone", ["UTC", "America/Toronto"])
def test_device_output_matches_drf(zone):
    devices = _devices()
    with timezone.override(zone):
        assert DeviceSerializer(devices, many=True).data == PlainDeviceSerializer(devices, many=True).data
    if zone != "UTC":
        with timezone.override(zone):
            assert DeviceSerializer(devices[0]).data["terminated_at"] == "2026-11-21T23:05:06-05:00"


def test_fields_that_are_not_plain_columns_still_go_through_drf():
    from portal.api.serializers import FastOutputMixin

    class Fast(FastOutputMixin, PlainWithExtrasSerializer):
        class Meta(PlainWithExtrasSerializer.Meta):
            pass

    devices = _devices()
    fast = Fast(devices, many=True, context={"who": "alice"}).data
    assert fast == PlainWithExtrasSerializer(devices, many=True, context={"who": "alice"}).data
    assert fast[0]["label"] == "GA0000000001 (alice)" and fast[0]["display_status"] == Device.Status.ACTIVE.label
    # The plan is per class; the context is per instance.
    assert Fast(devices[0], context={"who": "bob"}).data["label"] == "GA0000000001 (bob)"
