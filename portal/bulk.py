"""Set-based database helpers for batches of thousands of rows (imports, terminations, effects).

- ``where_in(queryset, column, values)``: ``column IN values`` as one array parameter on
  PostgreSQL. The ORM's ``__in`` prepares every value through the field and binds one
  placeholder each: for 5000 ids that costs more than the query itself.
- ``bulk_insert_rows(model, fields, rows)``: COPY on PostgreSQL, ``bulk_create`` elsewhere. The
  ORM's multi-row INSERT spends most of its time building and binding parameters (about 1 ms a
  row for the termination tables); COPY streams them.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connection, models


def where_in(queryset, column: str, values):
    """``queryset`` filtered to ``column IN values``, for thousands of values."""
    values = list(values)
    if connection.vendor == "postgresql":
        table = connection.ops.quote_name(queryset.model._meta.db_table)
        return queryset.extra(where=[f"{table}.{connection.ops.quote_name(column)} = ANY(%s)"], params=[values])
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
    from psycopg.types.json import Jsonb

    json_at = [i for i, f in enumerate(model_fields) if isinstance(f, models.JSONField)]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in model_fields)
    with connection.cursor() as cursor, cursor.copy(f"COPY {quote(opts.db_table)} ({columns}) FROM STDIN") as copy:
        for row in rows:
            if json_at:
                row = list(row)
                for i in json_at:
                    row[i] = Jsonb(row[i])
            copy.write_row(row)  # psycopg formats the row in C
    return len(rows)
