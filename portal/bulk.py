"""Set-based database helpers for batches of thousands of rows (imports, terminations, effects).

- ``where_in(queryset, column, values)``: ``column IN values`` as one array parameter on
  PostgreSQL. The ORM's ``__in`` prepares every value through the field and binds one
  placeholder each: for 5000 ids that costs more than the query itself.
- ``pg_array(values)``: that array parameter as one literal string. psycopg adapts a Python
  list element by element (about 1 µs an int, 4 µs a datetime); the literal costs a join.
- ``bulk_insert_rows(model, fields, rows)``: COPY on PostgreSQL, ``bulk_create`` elsewhere. The
  ORM's multi-row INSERT spends most of its time building and binding parameters (about 1 ms a
  row for the termination tables); COPY streams them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import date

import orjson
from django.db import connection, models


def pg_array(values: Iterable) -> str:
    """A PostgreSQL array literal (``{1,2,3}``) of ints, strings, dates or datetimes (aware, or
    read in the session's time zone) and None, for a ``%s::<type>[]`` parameter. Strings are
    always quoted, so any text (commas, braces, quotes, backslashes, "NULL") comes back as is."""
    values = list(values)
    kinds = set(map(type, values))
    if kinds <= {int}:  # ids, the usual case: no per-element Python
        return "{" + ",".join(map(str, values)) + "}"
    if kinds <= {str}:
        together = "".join(values)
        if '"' not in together and "\\" not in together:  # serials: nothing to escape, quote all at once
            return '{"' + '","'.join(values) + '"}'
        return "{" + ",".join(map(_array_string, values)) + "}"
    parts = []
    for value in values:
        if value is None:
            parts.append("NULL")
        elif isinstance(value, bool):
            parts.append("t" if value else "f")
        elif isinstance(value, int):
            parts.append(str(value))
        elif isinstance(value, date):  # datetime too
            parts.append(value.isoformat())
        elif isinstance(value, str):
            parts.append(_array_string(value))
        else:
            raise TypeError(f"pg_array takes ints, strings, dates and None, not {type(value).__name__}")
    return "{" + ",".join(parts) + "}"


def _array_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def where_in(queryset, column: str, values):
    """``queryset`` filtered to ``column IN values``, for thousands of values."""
    values = list(values)
    if connection.vendor == "postgresql":
        table = connection.ops.quote_name(queryset.model._meta.db_table)
        field = queryset.model._meta.get_field(column)
        array_type = f"{field.target_field.rel_db_type(connection) if field.is_relation else field.db_type(connection)}[]"
        return queryset.extra(where=[f"{table}.{connection.ops.quote_name(field.column)} = ANY(%s::{array_type})"],
                              params=[pg_array(values)])
    return queryset.filter(**{f"{column}__in": values})


def bulk_insert_rows(model, fields: Sequence[str], rows: Sequence[Sequence]) -> int:
    """Insert many rows in one statement. Values are given for every listed field (auto_now
    fields included); JSON fields take Python objects. Returns how many rows were written."""
    if not rows:
        return 0
    opts = model._meta
    model_fields = [opts.get_field(name) for name in fields]
    if connection.vendor != "postgresql":
        model.objects.bulk_create([model(**dict(zip(fields, row))) for row in rows], batch_size=2000)
        return len(rows)
    # COPY's text format takes every value as text, so values psycopg adapts slowly go as text:
    # JSON through orjson (3.4 → 0.5 µs a value), and datetimes, which a batch repeats (its "now"),
    # rendered once each (1.8 → 0.3 µs).
    as_text = [(i, json_text) for i, f in enumerate(model_fields) if isinstance(f, models.JSONField)]
    if any(isinstance(f, models.DateTimeField) for f in model_fields):
        moment_text = _MomentText()
        as_text += [(i, moment_text) for i, f in enumerate(model_fields) if isinstance(f, models.DateTimeField)]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in model_fields)
    with connection.cursor() as cursor, cursor.copy(f"COPY {quote(opts.db_table)} ({columns}) FROM STDIN") as copy:
        for row in rows:
            if as_text:
                row = list(row)
                for i, render in as_text:
                    row[i] = render(row[i])
            copy.write_row(row)  # psycopg formats the row in C
    return len(rows)


_stdlib_json = json.JSONEncoder(separators=(",", ":")).encode


def json_text(value) -> str | None:
    """JSON as the portal stores it in bulk (COPY rows, DIG records). orjson is several times
    faster; the standard library (what JSONField itself uses) takes what orjson refuses:
    integers beyond 64 bits, and datetimes, which the standard library refuses too, so a bulk
    write accepts exactly what a save accepts."""
    if value is None:
        return None
    try:
        return orjson.dumps(value, option=orjson.OPT_PASSTHROUGH_DATETIME).decode()
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return _stdlib_json(value)


class _MomentText(dict):
    """datetime → its ISO text, each distinct value rendered once."""

    def __call__(self, value):
        if value is None or isinstance(value, str):
            return value
        text = self.get(value)
        if text is None:
            text = self[value] = value.isoformat()
        return text
