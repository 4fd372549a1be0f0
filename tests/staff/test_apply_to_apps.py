"""The staff framework on the domain apps' admins: each main ModelAdmin of devices / orders /
ingestion carries PortalAdminMixin, renders its changelist and exports its list as CSV."""

import csv
import io

import pytest
from django.contrib import admin
from django.test import RequestFactory

from portal.admin_kit import CappedCountPaginator, PortalAdminMixin

APPS = ("devices", "orders", "ingestion")


# The lists staff work from all day; each must carry the audit trail, exports and capped counts.
ADOPTED = {
    "devices.Device", "devices.ProvisioningRequest", "devices.Tracker", "devices.Termination",
    "devices.CustomerDatabase", "orders.Order", "orders.Shipment", "orders.Account", "orders.Product",
    "ingestion.DeviceRecord", "ingestion.DeviceFeed", "ingestion.TerminationImportRun",
    "ingestion.TerminationSource",
}


def _adopted_admins():
    for model, model_admin in sorted(admin.site._registry.items(), key=lambda kv: kv[0]._meta.label):
        if model._meta.app_label in APPS and isinstance(model_admin, PortalAdminMixin):
            yield model, type(model_admin)


def test_every_main_list_carries_the_framework():
    adopted = {model._meta.label for model, _ in _adopted_admins()}
    assert ADOPTED <= adopted, f"missing PortalAdminMixin: {sorted(ADOPTED - adopted)}"


@pytest.mark.django_db
@pytest.mark.parametrize("model,admin_class", list(_adopted_admins()), ids=lambda v: getattr(v, "__name__", str(v)))
def test_changelist_and_csv_export_with_the_mixin(model, admin_class, superuser):
    model_admin = admin_class(model, admin.site)
    assert model_admin.paginator is CappedCountPaginator
    request = RequestFactory().get("/")
    request.user = superuser
    request.session = {}
    request._messages = type("M", (), {"add": lambda *a, **k: None, "__iter__": lambda self: iter(())})()
    response = model_admin.changelist_view(request)
    if hasattr(response, "render"):
        response.render()
    assert response.status_code == 200

    export = model_admin.export_view(request, "csv")
    rows = list(csv.reader(io.StringIO(b"".join(export.streaming_content).decode("utf-8-sig"))))
    assert rows and rows[0], "a header row"
    assert not [h for h in rows[0] if "password" in h.lower() or "secret" in h.lower()]
