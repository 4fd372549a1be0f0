import csv
import io

import pytest
from django.urls import reverse
from openpyxl import load_workbook

from portal.exports import neutralise


@pytest.mark.parametrize("value,expected", [
    ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
    ("+1", "'+1"), ("-2+3", "'-2+3"), ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"), ("\rx", "'\rx"),
    ("plain", "plain"), ("", ""), (None, ""), (-5, -5), (3.5, 3.5), (True, True),
])
def test_neutralise(value, expected):
    assert neutralise(value) == expected


def _csv_rows(response):
    body = b"".join(response.streaming_content).decode("utf-8-sig")
    return list(csv.reader(io.StringIO(body)))


@pytest.mark.django_db
def test_csv_export_follows_the_list_filter_and_defuses_formulas(viewer, client_for, make_call):
    make_call(system="myadmin", error_message="=cmd|' /C calc'!A0", outcome="rejected", target="devices.Device:1")
    make_call(system="navixy", outcome="ok")
    client = client_for(viewer)
    changelist = client.get(reverse("admin:portal_vendorcall_changelist"), {"system": "myadmin"})
    assert "Export CSV" in changelist.content.decode()
    url = reverse("admin:portal_vendorcall_export", args=["csv"])
    response = client.get(url, {"system": "myadmin"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = _csv_rows(response)
    header, data = rows[0], rows[1:]
    assert "System" in header and len(data) == 1
    row = dict(zip(header, data[0]))
    assert row["System"] == "myadmin"
    assert row["Error message"] == "'=cmd|' /C calc'!A0"


@pytest.mark.django_db
def test_xlsx_export_is_a_real_workbook_without_formulas(viewer, client_for, make_call):
    make_call(system="dig", error_message="+1+1", outcome="unknown")
    make_call(system="dig", outcome="ok")
    response = client_for(viewer).get(reverse("admin:portal_vendorcall_export", args=["xlsx"]), {"outcome__exact": "unknown"})
    assert response.status_code == 200
    book = load_workbook(io.BytesIO(b"".join(response.streaming_content)))
    rows = list(book.active.iter_rows(values_only=True))
    assert len(rows) == 2
    row = dict(zip(rows[0], rows[1]))
    assert row["Error message"] == "'+1+1" and row["Outcome"] == "unknown"


@pytest.mark.django_db
def test_export_selected_action_and_unknown_format(viewer, client_for, make_call):
    keep = make_call(system="mygeotab")
    make_call(system="mygeotab")
    client = client_for(viewer)
    response = client.post(reverse("admin:portal_vendorcall_changelist"),
                           {"action": "export_selected_csv", "_selected_action": [keep.pk]})
    rows = _csv_rows(response)
    assert len(rows) == 2
    bad = client.get(reverse("admin:portal_vendorcall_export", args=["pdf"]))
    assert bad.status_code == 403


@pytest.mark.django_db
def test_export_needs_a_role(make_user, client_for, make_call):
    make_call()
    nobody = make_user(None)  # staff, no role
    response = client_for(nobody).get(reverse("admin:portal_vendorcall_export", args=["csv"]))
    assert response.status_code == 403


@pytest.mark.django_db
def test_secret_columns_are_never_exported(superuser):
    from django.contrib import admin

    from portal.exports import ExportMixin
    from portal.models import ApiToken

    class TokenExport(ExportMixin, admin.ModelAdmin):
        export_fields = ("name", "prefix", "key_digest", "user__password")

    fields = TokenExport(ApiToken, admin.site).get_export_fields(None)
    assert fields == ["name", "prefix"]

    class DefaultExport(ExportMixin, admin.ModelAdmin):
        pass

    assert "key_digest" not in DefaultExport(ApiToken, admin.site).get_export_fields(None)
