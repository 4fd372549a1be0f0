"""Benchmark: importing the daily termination sheet.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/terminations.py [--quick]

Uses the shared benchmark database (bench/common.py), replaces its own rows (serials "CT…") with
1,000,000 devices, then measures, in the same run:
- a 100,000-row CSV sheet and a 100,000-row XLSX sheet imported end to end
  (`termination_sheet_import`: read, classify, terminate, history, report rows, effects);
- a PostgreSQL `COPY` of the same 100,000 CSV rows into a table (the floor for "getting the rows
  into the database"), and the ratio import ÷ COPY;
- the writes that applying 100,000 terminations cannot avoid, done directly in SQL (COPY the
  terminations, history events and report rows, UPDATE the devices; rolled back), and the
  ratio import ÷ those writes: what the service adds on top of the database work; and the
  device UPDATE alone ÷ the COPY;
- peak RSS of a separate process importing a 1,000,000-row sheet (bounded-memory check).
--quick shrinks everything (10,000 devices, 2,000-row sheets, 20,000-row memory sheet) for CI.
"""

from __future__ import annotations

import csv
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import figure, parse_args, timer, write_results  # noqa: E402

HEADER = ["Serial Number", "Termination Date", "Reason", "Account", "IMEI"]
# Serials of this benchmark ("CT" + 10 digits): distinct from other benchmarks' devices.
PREFIX = "CT"
SOURCE_NAME = "bench-terminations"


def serial(n: int) -> str:
    return f"{PREFIX}{n:010d}"


def write_csv(path: Path, start: int, count: int) -> None:
    day = date(2026, 11, 20)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(HEADER)
        for i in range(start, start + count):
            writer.writerow([serial(i), (day - timedelta(days=i % 5)).strftime("%m/%d/%Y"), "Customer cancelled",
                             f"ERP{i % 50:03d}", f"36{i:013d}"])


def write_xlsx(path: Path, start: int, count: int) -> None:
    import openpyxl

    day = date(2026, 11, 20)
    # A regular workbook with a date-formatted column. openpyxl (3.1) writes its strings inline;
    # Excel and Google Sheets exports keep them in a shared-strings table, which openpyxl reads
    # about 20% faster (100,000 rows: 8.1 s against 6.6 s to iterate), so this is the slower case.
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "Terminations"
    sheet.append(HEADER)
    for i in range(start, start + count):
        sheet.append([serial(i), day - timedelta(days=i % 5), "Customer cancelled", f"ERP{i % 50:03d}", f"36{i:013d}"])
    workbook.save(path)


def clean_previous_run() -> int:
    """The benchmark database is shared by every area's benchmark: reset only this one's rows
    (serials with the benchmark prefix) so each run starts from the same state. Devices are kept
    and set back to active (deleting a million devices is slower than the benchmark itself).
    Returns how many benchmark devices exist already."""
    from django.db import DatabaseError, connection, transaction

    like = f"{PREFIX}%"
    with connection.cursor() as cur:
        cur.execute("DELETE FROM ingestion_terminationimportrow WHERE run_id IN "
                    "(SELECT r.id FROM ingestion_terminationimportrun r JOIN ingestion_terminationsource s "
                    "ON s.id = r.source_id WHERE s.name = %s)", [SOURCE_NAME])
        cur.execute("DELETE FROM devices_termination WHERE serial LIKE %s", [like])
        cur.execute("DELETE FROM ingestion_terminationimportrun WHERE source_id IN "
                    "(SELECT id FROM ingestion_terminationsource WHERE name = %s)", [SOURCE_NAME])
        cur.execute("DELETE FROM devices_deviceevent WHERE device_id IN "
                    "(SELECT id FROM devices_device WHERE serial LIKE %s)", [like])
        cur.execute("UPDATE devices_device SET status = 'active', terminated_at = NULL "
                    "WHERE serial LIKE %s AND status <> 'active'", [like])
        cur.execute("SELECT count(*) FROM devices_device WHERE serial LIKE %s", [like])
        existing = cur.fetchone()[0]
        if connection.vendor == "postgresql":
            # The reset leaves a previous run's worth of dead rows and index entries behind; without
            # a vacuum every run would measure the one before it.
            for table in ("devices_device", "devices_termination", "devices_deviceevent",
                          "ingestion_terminationimportrow"):
                cur.execute(f"VACUUM ANALYZE {table}")
            # The reset writes hundreds of MB of WAL; the checkpoint it makes due would otherwise
            # land in the import measured next. Needs a superuser (or pg_checkpoint): else skipped.
            try:
                with transaction.atomic():
                    cur.execute("CHECKPOINT")
            except DatabaseError:
                pass
    return existing


def load_devices(count: int, *, first: int = 1) -> None:
    from django.db import connection

    from devices.models import Device

    if connection.vendor == "postgresql":
        # COPY, with the columns taken from the model so fields added later still load.
        fields = [f for f in Device._meta.concrete_fields if not f.primary_key]
        known = {"product_id": "10032", "product_type": "CustomDevice", "status": "active",
                 "created_at": "now", "updated_at": "now"}

        def value(field, i):
            if field.name == "serial":
                return serial(i)
            if field.name == "imei":
                return f"36{i:013d}"  # unique across the shared benchmark database
            if field.name == "erp_no":
                return f"ERP{i % 50:03d}"
            if field.name in known:
                return known[field.name]
            if field.null:
                return "\\N"
            default = field.get_default()
            return "" if default is None else str(default).lower() if isinstance(default, bool) else str(default)

        columns = ", ".join(f.column for f in fields)
        with connection.cursor() as cur, cur.copy(f"COPY devices_device ({columns}) FROM STDIN") as copy:
            for chunk in range(first, count + 1, 50_000):
                copy.write("".join("\t".join(value(f, i) for f in fields) + "\n"
                                   for i in range(chunk, min(chunk + 50_000, count + 1))))
        with connection.cursor() as cur:
            cur.execute("ANALYZE devices_device")
    else:
        step = 5000
        for chunk in range(first, count + 1, step):
            Device.objects.bulk_create([
                Device(serial=serial(i), product_id=10032, product_type="CustomDevice", erp_no=f"ERP{i % 50:03d}",
                       status="active", imei=f"36{i:013d}")
                for i in range(chunk, min(chunk + step, count + 1))
            ], batch_size=step)


def copy_baseline(path: Path) -> float:
    """Seconds to COPY the same CSV rows into a plain table (PostgreSQL only)."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS bench_sheet_copy")
        cur.execute("CREATE TABLE bench_sheet_copy (serial text, terminated_on text, reason text, account text, "
                    "imei text)")
    start = time.perf_counter()
    with connection.cursor() as cur, path.open("rb") as fh:
        with cur.copy("COPY bench_sheet_copy FROM STDIN WITH (FORMAT csv, HEADER true)") as copy:
            while chunk := fh.read(1 << 20):
                copy.write(chunk)
    elapsed = time.perf_counter() - start
    with connection.cursor() as cur:
        cur.execute("DROP TABLE bench_sheet_copy")
    return elapsed


def writes_floor(first: int, count: int) -> tuple[float, float]:
    """Seconds for the writes an import of ``count`` rows cannot avoid, done directly in SQL from
    prepared text (no parsing, no classification): COPY the terminations, mark the devices
    terminated in batches of 5000, COPY their history events and the report rows. Rolled back,
    so the benchmark's state is untouched. The import ÷ this is the service's own overhead.
    Returns (all the writes, the device UPDATE alone)."""
    from django.db import connection, transaction

    from ingestion.models import TerminationImportRun, TerminationSource
    from portal.bulk import pg_array

    with connection.cursor() as cur:
        cur.execute("SELECT id, serial FROM devices_device WHERE serial >= %s AND serial < %s ORDER BY serial",
                    [serial(first), serial(first + count)])
        devices = cur.fetchall()
    assert len(devices) == count, (len(devices), count)
    ids = [pk for pk, _ in devices]
    stamp = "2026-11-20 00:00:00+00"
    terminations = "".join(f"{pk}\t{sn}\tdaily_sheet\tapplied\t2026-11-20\tCustomer cancelled\tERP001\t"
                           f"36{pk:013d}\t\t\tactive\t{stamp}\t{stamp}\t{stamp}\n" for pk, sn in devices)
    events = "".join(f"{pk}\tstatus\tactive\tterminated\tterminated by the daily termination sheet\t"
                     f'{{"row": {n}}}\t\t{stamp}\n' for n, (pk, _) in enumerate(devices))
    with transaction.atomic(), connection.cursor() as cur:
        run_id = TerminationImportRun.objects.create(
            source=TerminationSource.objects.get(name=SOURCE_NAME), filename="floor").pk
        report = "".join(f"{run_id}\t{n}\t{sn}\t2026-11-20\tapplied\t\t{pk}\n"
                         for n, (pk, sn) in enumerate(devices, start=2))
        start = time.perf_counter()
        with cur.copy("COPY devices_termination (device_id, serial, source, status, terminated_on, reason_name, "
                      "account, imei, comments, error, previous_status, applied_at, created_at, updated_at) FROM STDIN") as copy:
            copy.write(terminations)
        update_start = time.perf_counter()
        for chunk in range(0, count, 5000):
            cur.execute("UPDATE devices_device SET status = 'terminated', terminated_at = %s, updated_at = now() "
                        "WHERE id = ANY(%s::bigint[])", [stamp, pg_array(ids[chunk:chunk + 5000])])
        update_seconds = time.perf_counter() - update_start
        with cur.copy("COPY devices_deviceevent (device_id, kind, from_status, to_status, message, data, "
                      "request_id, created_at) FROM STDIN") as copy:
            copy.write(events)
        with cur.copy("COPY ingestion_terminationimportrow (run_id, row_number, serial, terminated_on, outcome, "
                      "message, device_id) FROM STDIN") as copy:
            copy.write(report)
        elapsed = time.perf_counter() - start
        transaction.set_rollback(True)
    return elapsed, update_seconds


def import_file(path: Path):
    from ingestion.models import TerminationSource
    from ingestion.services.terminations import termination_sheet_import

    source, _ = TerminationSource.objects.get_or_create(name=SOURCE_NAME, defaults={"kind": "upload"})
    with path.open("rb") as fh:
        return termination_sheet_import(source=source, file=fh, filename=path.name)


def child_import(path: str) -> None:
    """Run in a subprocess: import one sheet and print the run's counts (for peak RSS)."""
    from bench.common import setup_django

    setup_django()
    run = import_file(Path(path))
    print(f"{run.status} {run.total_rows} {run.applied_count} {_peak_rss_kb()}")


def _peak_rss_kb() -> int:
    """This process's own peak resident set (VmHWM). Not getrusage: on Linux a child's ru_maxrss
    starts from its parent's size at fork and survives exec, so it would report the parent."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child_import(sys.argv[2])
        return 0
    args = parse_args(__doc__.splitlines()[0],
                      devices=dict(type=int, default=None, help="devices in the database"),
                      rows=dict(type=int, default=None, help="rows per sheet (CSV and XLSX)"),
                      memory_rows=dict(type=int, default=None, help="rows of the peak-memory sheet"))
    devices, rows, memory_rows = (10_000, 2_000, 20_000) if args.quick else (1_000_000, 100_000, 1_000_000)
    devices, rows, memory_rows = args.devices or devices, args.rows or rows, args.memory_rows or memory_rows
    # Figures are named for the specified sizes; other sizes are recorded under a "_quick" suffix.
    args.quick = args.quick or (devices, rows, memory_rows) != (1_000_000, 100_000, 1_000_000)
    from bench.common import setup_django

    setup_django()
    from django.db import connection

    print(f"database: {connection.vendor} {connection.settings_dict['NAME']}; resetting the previous run …",
          flush=True)
    existing = clean_previous_run()
    print(f"  {existing:,} benchmark devices kept; loading up to {devices:,} …", flush=True)
    with timer() as t:
        load_devices(devices, first=existing + 1)
    print(f"  loaded in {t.seconds:.1f}s", flush=True)

    work = Path(tempfile.mkdtemp(prefix="bench-terminations-"))
    csv_path, xlsx_path, big_path = work / "sheet.csv", work / "sheet.xlsx", work / "big.csv"
    write_csv(csv_path, 1, rows)
    write_xlsx(xlsx_path, rows + 1, rows)  # other devices, so both imports do the same work
    write_csv(big_path, 1, memory_rows)  # overlaps both sheets; beyond `devices` serials are unknown

    with timer() as t_csv:
        run = import_file(csv_path)
    assert run.status == "succeeded" and run.applied_count == rows, (run.status, run.applied_count, run.error)
    print(f"csv {rows:,} rows: {t_csv.seconds:.2f}s", flush=True)
    with timer() as t_xlsx:
        run = import_file(xlsx_path)
    assert run.status == "succeeded" and run.applied_count == rows, (run.status, run.applied_count, run.error)
    print(f"xlsx {rows:,} rows: {t_xlsx.seconds:.2f}s", flush=True)

    figures = {}
    suffix = "" if not args.quick else "_quick"
    figures[f"terminations.csv_100k_seconds{suffix}"] = figure(round(t_csv.seconds, 2), "s", target=10)
    figures[f"terminations.xlsx_100k_seconds{suffix}"] = figure(round(t_xlsx.seconds, 2), "s",
                                                                baseline=round(t_csv.seconds, 2))
    if connection.vendor == "postgresql":
        copy_seconds = copy_baseline(csv_path)
        print(f"COPY of the same rows: {copy_seconds:.3f}s", flush=True)
        figures[f"terminations.csv_vs_copy_ratio{suffix}"] = figure(
            round(t_csv.seconds / copy_seconds, 1), "×", target=3, baseline=round(copy_seconds, 3))
        if devices >= 3 * rows:
            floor_seconds, update_seconds = writes_floor(2 * rows + 1, rows)
            print(f"the unavoidable writes for {rows:,} rows, in SQL: {floor_seconds:.2f}s "
                  f"(of which the device UPDATE: {update_seconds:.2f}s)", flush=True)
            figures[f"terminations.csv_vs_writes_floor_ratio{suffix}"] = figure(
                round(t_csv.seconds / floor_seconds, 2), "×", baseline=round(floor_seconds, 2))
            # The one statement "the device becomes terminated" needs, against the same COPY: it
            # alone shows whether "within 3× of COPY" is reachable by any import that applies rows.
            figures[f"terminations.device_update_vs_copy_ratio{suffix}"] = figure(
                round(update_seconds / copy_seconds, 1), "×", baseline=round(copy_seconds, 3))

    connection.close()
    with timer() as t_big:
        out = subprocess.run([sys.executable, __file__, "--child", str(big_path)], capture_output=True, text=True,
                             env=os.environ, timeout=3600)
    if out.returncode != 0:
        print(out.stdout, out.stderr)
        return 1
    status, total, applied, peak_kb = out.stdout.split()[-4:]
    peak_mb = int(peak_kb) / 1024
    print(f"{memory_rows:,}-row sheet in a child process: {status}, {total} rows, {applied} applied, "
          f"in {t_big.seconds:.1f}s, peak RSS {peak_mb:.0f} MB", flush=True)
    figures[f"terminations.peak_rss_mb_1m_rows{suffix}"] = figure(round(peak_mb), "MB", target=300)
    write_results(figures, quick=args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
