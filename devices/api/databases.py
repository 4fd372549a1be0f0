"""REST: `customer-databases` (BILL to write; the password is write-only), its
`test_connection` action, and the device action `add_to_database` (FULFIL)."""

import django_filters
from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from devices.models import CustomerDatabase, CustomerDatabaseAccount, Device
from devices.models.database import validate_mygeotab_server
from portal.api.errors import Conflict, error_response
from portal.crypto import UndecryptableSecret, encryption_problem
from portal.roles import BILL


class CustomerDatabaseSerializer(serializers.ModelSerializer):
    password = serializers.CharField(
        write_only=True, required=False, allow_blank=False, trim_whitespace=False, style={"input_type": "password"},
        help_text="Service-account password; write-only, stored encrypted. Omit to keep the current one.",
    )
    erp_numbers = serializers.ListField(
        child=serializers.CharField(max_length=32), required=False,
        help_text="Partner accounts (ERP numbers) whose devices may be added to this database.",
    )
    server = serializers.CharField(max_length=300, required=False, allow_blank=True,
                                   validators=[validate_mygeotab_server])

    class Meta:
        model = CustomerDatabase
        fields = [
            "id", "label", "server", "database", "username", "password", "default_groups", "active", "erp_numbers",
            "last_checked_at", "last_check_ok", "last_check_message", "created_at", "updated_at",
        ]
        read_only_fields = ["last_checked_at", "last_check_ok", "last_check_message", "created_at", "updated_at"]
        # (server, database) uniqueness is checked in validate(): DRF's generated validator
        # would make `server` required, though blank means "the portal default".
        validators = []

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["erp_numbers"] = sorted(a.erp_no for a in instance.accounts.all())
        return data

    def validate_default_groups(self, value):
        if not isinstance(value, list) or not all(isinstance(g, str) and g for g in value):
            raise serializers.ValidationError('A list of group ids, e.g. ["GroupCompanyId"].')
        return value

    def validate(self, attrs):
        problem = encryption_problem()
        if problem:
            raise serializers.ValidationError({"password": [f"The password cannot be stored: {problem}"]})
        if self.instance is None and not attrs.get("password"):
            raise serializers.ValidationError({"password": ["A password is required for a new database."]})
        if (self.instance is not None and not attrs.get("password")
                and isinstance(self.instance.password, UndecryptableSecret)):
            raise serializers.ValidationError({"password": [UndecryptableSecret.problem]})
        server = attrs.get("server", getattr(self.instance, "server", ""))
        database = attrs.get("database", getattr(self.instance, "database", ""))
        clash = CustomerDatabase.objects.filter(server=server, database=database)
        if self.instance is not None:
            clash = clash.exclude(pk=self.instance.pk)
        if clash.exists():
            raise serializers.ValidationError({"database": ["This database is already registered for that server."]})
        return attrs

    @transaction.atomic
    def create(self, validated_data):
        erp_numbers = validated_data.pop("erp_numbers", [])
        instance = super().create(validated_data)
        self._set_accounts(instance, erp_numbers)
        return instance

    @transaction.atomic
    def update(self, instance, validated_data):
        erp_numbers = validated_data.pop("erp_numbers", None)
        instance = super().update(instance, validated_data)
        if erp_numbers is not None:
            self._set_accounts(instance, erp_numbers)
        return instance

    @staticmethod
    def _set_accounts(instance, erp_numbers):
        wanted = {e.strip() for e in erp_numbers if e.strip()}
        instance.accounts.exclude(erp_no__in=wanted).delete()
        have = set(instance.accounts.values_list("erp_no", flat=True))
        CustomerDatabaseAccount.objects.bulk_create(
            [CustomerDatabaseAccount(database=instance, erp_no=e) for e in sorted(wanted - have)]
        )


class CustomerDatabaseFilter(django_filters.FilterSet):
    erp_no = django_filters.CharFilter(field_name="accounts__erp_no", distinct=True)

    class Meta:
        model = CustomerDatabase
        fields = ["database", "active", "last_check_ok"]


class TestConnectionSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    message = serializers.CharField()


class CustomerDatabaseViewSet(viewsets.ModelViewSet):
    """Customer MyGeotab databases the portal holds a service account for (credentials: BILL)."""

    queryset = CustomerDatabase.objects.prefetch_related("accounts").order_by("database", "id")
    serializer_class = CustomerDatabaseSerializer
    filterset_class = CustomerDatabaseFilter
    required_capability = BILL
    action_capabilities = {"test_connection": BILL}
    ordering_fields = ["id", "database"]

    @extend_schema(request=None, responses=TestConnectionSerializer)
    @action(detail=True, methods=["post"])
    def test_connection(self, request, pk=None):
        from devices.services.databases import customer_database_test_connection

        ok, message = customer_database_test_connection(database=self.get_object(), actor=request.user)
        return Response({"ok": ok, "message": message})


# --------------------------------------------------------------------------- device action


class AddToDatabaseSerializer(serializers.Serializer):
    database = serializers.PrimaryKeyRelatedField(
        queryset=CustomerDatabase.objects.filter(active=True), required=False,
        help_text="Customer database id; may be omitted when exactly one is linked to the device's account.",
    )
    name = serializers.CharField(max_length=50, required=False, allow_blank=True)
    comment = serializers.CharField(max_length=1024, required=False, allow_blank=True)
    # CustomVehicleDevice only.
    vehicle_identification_number = serializers.CharField(max_length=17, required=False, allow_blank=True)
    license_plate = serializers.CharField(max_length=20, required=False, allow_blank=True)
    license_state = serializers.CharField(max_length=20, required=False, allow_blank=True)

    VEHICLE = {"vehicle_identification_number": "vehicleIdentificationNumber", "license_plate": "licensePlate",
               "license_state": "licenseState"}

    def vehicle(self) -> dict:
        return {wire: self.validated_data[name] for name, wire in self.VEHICLE.items()
                if self.validated_data.get(name)}


class AddToDatabaseResultSerializer(serializers.Serializer):
    outcome = serializers.CharField()
    message = serializers.CharField()
    mygeotab_device_id = serializers.CharField(allow_blank=True)


def device_add_to_database_response(request, device: Device) -> Response:
    """Body of `POST /devices/{id}/add_to_database/` (called by the devices viewset)."""
    from devices.services.databases import AddOutcome, device_add_to_database

    payload = AddToDatabaseSerializer(data=request.data)
    payload.is_valid(raise_exception=True)
    vehicle = payload.vehicle()
    if vehicle and device.product_type != Device.ProductType.CUSTOM_VEHICLE_DEVICE:
        return error_response(
            f"Vehicle fields apply to CustomVehicleDevice only; {device.serial} is a {device.product_type}.",
            errors={name: ["Only for a CustomVehicleDevice."] for name in payload.VEHICLE
                    if payload.validated_data.get(name)})
    database = payload.validated_data.get("database")
    if database is None:
        linked = list(CustomerDatabase.objects.filter(active=True, accounts__erp_no=device.erp_no).distinct()[:2])
        if len(linked) != 1:
            reason = "none is linked to" if not linked else "several are linked to"
            return error_response(f"Choose a customer database: {reason} account {device.erp_no}.",
                                  errors={"database": [f"Required: {reason} account {device.erp_no}."]})
        database = linked[0]
    result = device_add_to_database(
        device=device, database=database, actor=request.user,
        name=payload.validated_data.get("name", ""), comment=payload.validated_data.get("comment", ""),
        vehicle=vehicle,
    )
    body = {"outcome": result.outcome.value, "message": result.message,
            "mygeotab_device_id": result.mygeotab_device_id}
    if result.ok:
        return Response(body, status=status.HTTP_200_OK)
    if result.outcome == AddOutcome.NEEDS_STAFF:
        raise Conflict(result.message)
    if result.retryable:
        return error_response(result.message, code="vendor_unavailable", status_code=503)
    return error_response(result.message, code="rejected", status_code=400 if not result.credentials_refused else 409)
