"""API conventions every endpoint shares: auth, roles, one error shape, keyset pages, schema."""

from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import Group

from portal import roles
from portal.models import VendorCall

pytestmark = pytest.mark.django_db


def _calls(n):
    VendorCall.objects.bulk_create(
        VendorCall(system="myadmin", method="LookupDevice", outcome="ok", started_at=datetime.now(UTC))
        for _ in range(n)
    )


def test_roles_exist_with_view_permissions():
    for role in roles.ROLES:
        group = Group.objects.get(name=role)
        assert group.permissions.filter(codename="view_vendorcall").exists()
    assert not Group.objects.get(name="viewer").permissions.exclude(codename__startswith="view_").exists()


def test_anonymous_gets_401_in_the_common_shape(client):
    response = client.get("/api/v1/vendor-calls/")
    assert response.status_code == 401
    assert set(response.json()) == {"detail", "code"}


def test_user_without_a_role_is_refused(make_user, api_client_for):
    response = api_client_for(make_user(None)).get("/api/v1/vendor-calls/")
    assert response.status_code == 403
    assert response.json()["detail"] == "Your role does not allow this action."


def test_capabilities_per_role(make_user):
    viewer, fulfil, bill, su = (make_user(roles.VIEWER), make_user(roles.FULFILMENT),
                                make_user(roles.BILLING), make_user(superuser=True))
    assert roles.has_capability(viewer, roles.VIEW) and not roles.has_capability(viewer, roles.FULFIL)
    assert roles.has_capability(fulfil, roles.FULFIL) and not roles.has_capability(fulfil, roles.BILL)
    assert roles.has_capability(bill, roles.BILL) and not roles.has_capability(bill, roles.FULFIL)
    assert all(roles.has_capability(su, c) for c in (roles.VIEW, roles.FULFIL, roles.BILL))


def test_ledger_is_read_only_over_the_api(viewer, superuser, api_client_for):
    assert api_client_for(viewer).post("/api/v1/vendor-calls/", {}).status_code == 403
    assert api_client_for(superuser).post("/api/v1/vendor-calls/", {}).status_code == 405


def test_keyset_pages_do_not_count_and_have_a_constant_query_count(viewer, api_client_for, django_assert_num_queries):
    client = api_client_for(viewer)
    _calls(120)
    with django_assert_num_queries(3):  # token+user, the user's roles, the page; no COUNT
        first = client.get("/api/v1/vendor-calls/?page_size=50").json()
    assert "count" not in first and len(first["results"]) == 50
    _calls(500)
    with django_assert_num_queries(3):
        client.get("/api/v1/vendor-calls/?page_size=50")
    second = client.get(first["next"]).json()
    assert {r["id"] for r in second["results"]}.isdisjoint({r["id"] for r in first["results"]})


def test_bad_filter_gets_a_field_error(viewer, api_client_for):
    response = api_client_for(viewer).get("/api/v1/vendor-calls/?started_after=yesterday")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid" and "started_after" in body["errors"]
    assert body["detail"].startswith("started_after:")


def test_unknown_object_is_404_in_the_common_shape(viewer, api_client_for):
    response = api_client_for(viewer).get("/api/v1/vendor-calls/999999/")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_schema_and_docs_are_served_without_a_cdn(viewer, client):
    client.force_login(viewer)
    schema = client.get("/api/schema/")
    assert schema.status_code == 200 and b"/api/v1/vendor-calls/" in schema.content
    docs = client.get("/api/docs/").content.decode()
    assert "drf_spectacular_sidecar/swagger-ui-dist" in docs
    assert "cdn" not in docs.lower() and "unpkg" not in docs.lower()
    asset = client.get("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")
    assert asset.status_code == 200


def test_request_id_is_echoed_and_invented_when_missing_or_malformed(client):
    assert client.get("/health/", HTTP_X_REQUEST_ID="abc-123").headers["X-Request-ID"] == "abc-123"
    generated = client.get("/health/", HTTP_X_REQUEST_ID="bad id\n").headers["X-Request-ID"]
    assert len(generated) == 32


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        ("not_executed", 503, "vendor_unavailable"),
        ("rejected", 502, "vendor_rejected"),
        ("unknown", 503, "vendor_unavailable"),
    ],
)
def test_a_vendor_error_escaping_a_view_is_never_a_500(error, status, code):
    from rest_framework.test import APIRequestFactory
    from rest_framework.views import APIView

    from integrations import base

    cls = {"not_executed": base.NotExecutedError, "rejected": base.RejectedError,
           "unknown": base.OutcomeUnknownError}[error]

    class Failing(APIView):
        permission_classes = []
        authentication_classes = []

        def get(self, request):
            raise cls("boom", system="myadmin", method="GetTerminationReasons")

    response = Failing.as_view()(APIRequestFactory().get("/x"))
    assert response.status_code == status
    assert response.data["code"] == code and "myadmin" in response.data["detail"]


@pytest.mark.parametrize("value", ["0207-06-21T16:07:53+20:11", "0001-01-01T00:00:00Z"])
def test_datetime_filters_refuse_values_no_database_takes(viewer, api_client_for, value):
    from urllib.parse import quote

    response = api_client_for(viewer).get(f"/api/v1/vendor-calls/?started_after={quote(value)}")
    assert response.status_code == 400
    assert "started_after" in response.json()["errors"]


def test_list_filters_narrow_lists_and_do_not_touch_detail_requests(db, api_client_for, viewer):
    from devices.models import Device

    active = Device.objects.create(serial="GF0000000001", product_id=1, product_type="CustomDevice", erp_no="E1",
                                   status="active")
    Device.objects.create(serial="GF0000000002", product_id=1, product_type="CustomDevice", erp_no="E1",
                          status="provisioned")
    client = api_client_for(viewer)
    listed = client.get("/api/v1/devices/?status=provisioned").json()["results"]
    assert [d["serial"] for d in listed] == ["GF0000000002"]
    # A detail request is the object, whatever list filters ride along.
    detail = client.get(f"/api/v1/devices/{active.pk}/?status=provisioned")
    assert detail.status_code == 200 and detail.json()["serial"] == "GF0000000001"
    assert client.get("/api/v1/devices/?status=nonsense").status_code == 400


def test_a_list_asking_for_no_filter_skips_building_the_filterset(db, api_client_for, viewer, monkeypatch):
    """Pagination, ordering and search parameters are not FilterSet parameters: a plain page
    does not pay for building the FilterSet, and any real filter still goes through it (also
    a FilterSet filter named like DRF's search parameter, as the orders' `search`)."""
    from django_filters import FilterSet

    built = []
    original = FilterSet.__init__

    def counting(self, *args, **kwargs):
        built.append(type(self).__name__)
        original(self, *args, **kwargs)

    monkeypatch.setattr(FilterSet, "__init__", counting)
    client = api_client_for(viewer)
    assert client.get("/api/v1/devices/?page_size=5&ordering=-id").status_code == 200
    assert built == []
    assert client.get("/api/v1/devices/?page_size=5&status=active").status_code == 200
    assert built == ["DeviceFilter"]
    assert client.get("/api/v1/orders/?search=PO-1").status_code == 200
    assert built == ["DeviceFilter", "OrderFilter"]
