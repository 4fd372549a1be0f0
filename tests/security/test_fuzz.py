"""Hostile input for the two bulk entry points: device-record batches (POST /api/v1/records/)
and termination sheets (ingestion.services.termination_sheet_import). Hypothesis mixes valid
items with near-misses and garbage; the properties are the house rules:

- never a crash (records: never a 5xx; sheets: the import returns a run, it does not raise);
- never partial damage: a refused batch stores nothing; a batch stores exactly its valid,
  new records; a sheet terminates only devices named in its valid rows, at most once each,
  a failed sheet changes nothing, and a re-imported sheet changes nothing.

Example counts come from FUZZ_EXAMPLES (CI default 25; `make proof` uses 200). Each part skips
with a reason while the service it exercises does not exist yet.
"""

import importlib
import json
import os
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                suppress_health_check=list(HealthCheck))


def _module(name: str):
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


records_service = _module("ingestion.services.records")
terminations_service = _module("ingestion.services.terminations")
needs_records = pytest.mark.skipif(
    records_service is None or not hasattr(records_service, "records_intake"),
    reason="record intake (ingestion.services.records.records_intake) does not exist yet")
needs_sheets = pytest.mark.skipif(
    terminations_service is None or not hasattr(terminations_service, "termination_sheet_import"),
    reason="termination-sheet import (ingestion.services.terminations) does not exist yet")

READY, NOT_READY, TERMINATED, UNKNOWN = "CXFUZZ000001", "CXFUZZ000002", "CXFUZZ000003", "CXFUZZ000009"
SERIALS = [READY, NOT_READY, TERMINATED, UNKNOWN]


@pytest.fixture
def fuzz_devices(db):
    from devices.models import Device

    common = {"product_id": 10032, "product_type": Device.ProductType.choices[0][0], "erp_no": "FUZZ01"}
    Device.objects.create(serial=READY, database_name="fuzz_db", ready_for_data_at=datetime.now(UTC), **common)
    Device.objects.create(serial=NOT_READY, **common)
    Device.objects.create(serial=TERMINATED, status=Device.Status.TERMINATED,
                          terminated_at=datetime.now(UTC), **common)
    return Device


# ------------------------------------------------------------------------- record batches
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=40),
)
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)), max_leaves=10)


def _recent_time():
    return st.integers(min_value=-3 * 86400, max_value=60).map(
        lambda s: (datetime.now(UTC) + timedelta(seconds=s)).isoformat().replace("+00:00", "Z"))


valid_gps = st.fixed_dictionaries({
    "Type": st.just("GpsRecord"), "DateTime": _recent_time(), "SerialNo": st.sampled_from(SERIALS),
    "Latitude": st.floats(-90, 90), "Longitude": st.floats(-180, 180),
}, optional={"Speed": st.floats(0, 1000), "IsGpsValid": st.booleans()})
valid_status = st.fixed_dictionaries({
    "Type": st.sampled_from(["StatusRecord", "GenericStatusRecord"]), "DateTime": _recent_time(),
    "SerialNo": st.sampled_from(SERIALS), "Code": st.integers(2000, 5000), "Value": st.integers(-5, 5),
})


@st.composite
def near_miss(draw):
    """A valid record with one field replaced by an arbitrary JSON value (or one dropped)."""
    record = dict(draw(st.one_of(valid_gps, valid_status)))
    field = draw(st.sampled_from(sorted(record)))
    if draw(st.booleans()):
        record[field] = draw(json_values)
    else:
        record.pop(field)
    return record


record_items = st.one_of(valid_gps, valid_status, near_miss(), json_values)
# JSON that Python's parser accepts but strict JSON (and so DIG) does not: always tried.
NON_STRICT_JSON = [
    b"[NaN]",
    b'[{"Type":"GpsRecord","Latitude":Infinity}]',
    (b'[{"Type":"BluetoothRecord","DateTime":"%s","SerialNo":"%s","Address":"00:11:22:33:44:55",'
    b'"Data":Infinity,"DataType":1}]'),
]
bodies = st.one_of(
    st.lists(record_items, min_size=0, max_size=12).map(lambda items: json.dumps(items).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=200),
)


@needs_records
@pytest.mark.django_db
def test_record_batches_never_crash_and_never_half_store(fuzz_devices, make_user, api_client_for,
                                                         keep_test_connection):
    from ingestion.models import DeviceRecord

    client = api_client_for(make_user(superuser=True))

    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ").encode()

    @FUZZ
    @given(body=bodies)
    def check(body):
        before = DeviceRecord.objects.count()
        response = client.generic("POST", "/api/v1/records/", body, content_type="application/json")
        after = DeviceRecord.objects.count()
        assert response.status_code < 500, (body[:300], response.status_code, response.content[:300])
        if response.status_code >= 400:
            assert after == before, f"refused batch stored {after - before} rows: {body[:300]!r}"
            return
        answer = response.json()
        items = json.loads(body)
        assert isinstance(answer, dict), answer
        assert answer["accepted"] + answer["rejected"] == len(items), answer
        assert after - before == answer["accepted"] - answer["duplicates"], (answer, after - before)
        assert all(0 <= e["index"] < len(items) for e in answer["errors"]), answer["errors"]
        # Every stored row is strict JSON that DIG can parse (no NaN / Infinity tokens). All rows
        # are checked, not only new ones, so a repeat of a bad batch still fails the same way.
        for raw in DeviceRecord.objects.values_list("payload", flat=True):
            text = raw if isinstance(raw, str) else json.dumps(raw, allow_nan=False)
            json.loads(text, parse_constant=lambda c: pytest.fail(f"stored non-JSON constant {c}"))

    for fixed in NON_STRICT_JSON:
        check.hypothesis.inner_test(body=fixed.replace(b"%s", now, 1).replace(b"%s", READY.encode(), 1))
    check()


# ---------------------------------------------------------------------- termination sheets
SERIAL_HEADERS = ["Serial Number", "serial no", "Device Serial", "SERIAL", "Serialnummer", "Id"]
DATE_HEADERS = ["Termination Date", "date", "Effective Date", "When"]
cells = st.one_of(
    st.sampled_from(SERIALS + ["cx-fuzz-000001", " CXFUZZ000002 ", "", "0", "=cmd|' /C calc'!A0"]),
    st.sampled_from(["2026-01-31", "31/01/2026", "01/31/2026", "2026-13-45", "yesterday", "45321"]),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20),
)


@st.composite
def sheets(draw):
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=300))
    header = [draw(st.sampled_from(SERIAL_HEADERS)), draw(st.sampled_from(DATE_HEADERS)), "Reason"]
    rows = draw(st.lists(st.lists(cells, min_size=0, max_size=4), max_size=8))
    delimiter = draw(st.sampled_from([",", ";", "\t"]))

    def line(values):
        return delimiter.join('"' + str(v).replace('"', '""') + '"' for v in values)

    text = "\n".join([line(header)] + [line(r) for r in rows]) + "\n"
    return text.encode(draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-16"])), errors="replace")


@needs_sheets
@pytest.mark.django_db
def test_termination_sheets_never_crash_and_never_half_apply(fuzz_devices):
    from devices.models import Device, DeviceEvent

    def state():
        return {d.serial: (d.status, d.terminated_at) for d in Device.objects.all()}

    def terminations_per_device():
        return list(DeviceEvent.objects.filter(to_status=Device.Status.TERMINATED)
                    .values_list("device_id", flat=True))

    @FUZZ
    @given(sheet=sheets())
    def check(sheet):
        before = state()
        run = terminations_service.termination_sheet_import(file=sheet, filename="fuzz.csv")
        run.refresh_from_db()
        after = state()
        changed = {s for s in before if before[s] != after[s]}
        text = sheet.decode("utf-8", "ignore") + sheet.decode("utf-16", "ignore")
        normalised = text.upper().replace("-", "").replace(" ", "")
        assert all(s in normalised for s in changed), (changed, sheet[:300])
        if run.status == "failed":
            assert not changed, f"failed import #{run.pk} changed {changed}: {run.error}"
        events = terminations_per_device()
        assert len(events) == len(set(events)), "a device was terminated twice"
        again = terminations_service.termination_sheet_import(file=sheet, filename="fuzz.csv")
        assert state() == after, f"re-import #{again.pk} of the same sheet changed devices"

    check()
