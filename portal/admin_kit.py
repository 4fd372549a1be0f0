"""Admin building blocks every app's ModelAdmin can adopt with one base class.

    from portal.admin_kit import PortalAdminMixin

    @admin.register(Device)
    class DeviceAdmin(PortalAdminMixin, RoleAwareAdminMixin, admin.ModelAdmin):
        ...

``PortalAdminMixin`` = ``AuditedAdminMixin`` (admin add/change/delete → audit trail with
before/after; per-object History page shows it) + ``ExportMixin`` (CSV/XLSX of the filtered
list) + ``ScalableAdminMixin`` (no full COUNT(*) of big tables, no facet counts).

List filters that never scan a big table to draw themselves:

- ``choices_filter(field, choices)``: fixed choices, or a callable reading a small table;
- ``text_filter(path, title=...)``: a text box, for columns with too many values to list
  (accounts, reasons); applying it is an index lookup;
- ``DateRangeFilter``: preset ranges plus a from/before form, instead of ``date_hierarchy``
  (which selects DISTINCT dates over the whole table).
"""

from __future__ import annotations

import datetime

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import unquote
from django.core.paginator import Paginator
from django.db import connection, models
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.functional import cached_property

from portal.audit import (
    Action,
    audit_bulk,
    audit_diff,
    audit_entries_for,
    audit_record,
    audit_snapshot,
)
from portal.exports import ExportMixin

# Filtered lists count at most this many rows (the pager then says "10001 results" at most).
COUNT_CAP = 10_000
# Unfiltered tables larger than this (by the planner's estimate) are not counted exactly.
ESTIMATE_ABOVE = 50_000
# Real UTC offsets lie within ±14 h; PostgreSQL refuses wider ones.
MAX_UTC_OFFSET = datetime.timedelta(hours=14)


def _estimated_rows(model) -> int | None:
    """The PostgreSQL planner's row estimate for the model's table (None elsewhere/unknown)."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)", [model._meta.db_table])
        row = cursor.fetchone()
    return int(row[0]) if row and row[0] is not None and row[0] >= 0 else None


class CappedCountPaginator(Paginator):
    """A paginator that never counts a big table in full: an unfiltered list uses the planner's
    estimate, a filtered one counts up to COUNT_CAP + 1 rows (an index range scan, bounded)."""

    @cached_property
    def count(self):
        qs = self.object_list
        if not hasattr(qs, "query"):
            return len(qs)
        if not qs.query.where and not qs.query.distinct:
            estimate = _estimated_rows(qs.model)
            if estimate is not None and estimate > ESTIMATE_ABOVE:
                return estimate
        # Only the primary key: annotations a list shows (per-row subqueries, aggregates) would
        # otherwise be computed for every counted row.
        return qs.order_by().values("pk")[: COUNT_CAP + 1].count()


class ScalableAdminMixin:
    """Changelists that stay fast on millions of rows. Also set ``list_select_related`` for
    every foreign key in ``list_display``, and in ``list_filter`` use ``choices_filter`` /
    ``text_filter`` instead of plain names of free-text columns (those make Django run SELECT
    DISTINCT over the table) and ``DateRangeFilter`` instead of ``date_hierarchy``."""

    paginator = CappedCountPaginator
    show_full_result_count = False
    # Facet counts ("Show counts") are one COUNT per filter choice over the filtered table.
    show_facets = admin.ShowFacets.NEVER


def choices_filter(field_name: str, choices, *, title: str | None = None, parameter_name: str | None = None):
    """A list filter with fixed choices: unlike a plain field name in ``list_filter`` on a
    column without ``choices``, it does not scan the table for DISTINCT values.

    ``choices`` is a list of (value, label) pairs, or a callable returning one, called each time
    the list is drawn: use that to read the choices from a small table (resellers from the
    accounts, model codes from the catalogue), never from the big table being filtered."""

    def _pairs():
        found = choices() if callable(choices) else choices
        return [(str(value), str(label)) for value, label in found]

    fixed = None if callable(choices) else _pairs()

    class _ChoicesFilter(admin.SimpleListFilter):
        def lookups(self, request, model_admin):
            return fixed if fixed is not None else _pairs()

        def queryset(self, request, queryset):
            value = self.value()
            return queryset.filter(**{field_name: value}) if value not in (None, "") else queryset

    _ChoicesFilter.parameter_name = parameter_name or field_name
    _ChoicesFilter.title = title or field_name.replace("__", " ").replace("_", " ")
    _ChoicesFilter.__name__ = f"{field_name.title().replace('_', '')}ChoicesFilter"
    return _ChoicesFilter


def _hidden_params(changelist, *, drop) -> list[tuple[str, str]]:
    """The list's other query parameters (filters, search, ordering), for a filter's GET form
    to carry along; ``drop`` is a predicate on the parameter name."""
    return [
        (key, value)
        for key, values in changelist.filter_params.items() if not drop(key)
        for value in (values if isinstance(values, list) else [values])
    ]


class InputFilter(admin.SimpleListFilter):
    """A list filter that is a text box. For a column with too many values to list (5,000
    accounts), listing them costs a scan and a page nobody can read; the typed value is looked
    up through an index instead. Subclass with ``lookup`` (e.g. ``"account__account_id"``), or
    use ``text_filter``."""

    template = "admin/portal/filters/input.html"
    lookup: str = ""
    placeholder: str = ""

    def lookups(self, request, model_admin):
        return ()

    def has_output(self):
        return True

    def value(self):
        return (super().value() or "").strip()

    def queryset(self, request, queryset):
        value = self.value()
        return queryset.filter(**{self.lookup: value}) if value else queryset

    def choices(self, changelist):
        yield {
            "selected": bool(self.value()),
            "parameter_name": self.parameter_name,
            "value": self.value(),
            "placeholder": self.placeholder,
            "hidden": _hidden_params(changelist, drop=lambda key: key == self.parameter_name),
            "clear_query_string": changelist.get_query_string(remove=[self.parameter_name]),
        }


def text_filter(path: str, *, title: str, lookup: str = "exact", parameter_name: str | None = None,
                placeholder: str = ""):
    """An ``InputFilter`` on ``path`` (a field or a ``relation__field`` path): the list shows
    the rows whose ``path`` matches the typed value with ``lookup`` (``exact``, ``iexact``...).
    Give ``path`` an index (alone or leading a composite one) when the table is big."""
    name = parameter_name or path
    attrs = {"title": title, "parameter_name": name, "lookup": f"{path}__{lookup}", "placeholder": placeholder}
    return type(f"{path.title().replace('_', '')}InputFilter", (InputFilter,), attrs)


class DateRangeFilter(admin.DateFieldListFilter):
    """A date filter that costs no query to draw: preset ranges (today, yesterday, past 7 and 30
    days, this and last month, this and last year) and a from / before form. Applying it is a
    range scan of the field's index. Use it instead of ``date_hierarchy``, which selects the
    DISTINCT years/months/days over the whole (filtered) table on every page view.

        list_filter = (("order_date", DateRangeFilter), ...)

    The form sends ``<field>__gte`` / ``<field>__lt`` as dates (YYYY-MM-DD); on a date-time field
    they mean midnight in the current time zone. Bookmarks and links built for Django's own date
    filter keep working (same parameters)."""

    template = "admin/portal/filters/date_range.html"

    def __init__(self, field, request, params, model, model_admin, field_path):
        prefix = f"{field_path}__"
        for key in [k for k in params if k in (f"{prefix}gte", f"{prefix}lt")]:
            values = [v.strip() for v in params[key] if v and v.strip()]
            if not values:
                del params[key]  # an empty box in the form: no bound
                continue
            params[key] = [self._as_bound(field, value) for value in values]
        super().__init__(field, request, params, model, model_admin, field_path)
        now = timezone.localtime() if timezone.is_aware(timezone.now()) else timezone.now()
        today = now.replace(hour=0, minute=0, second=0, microsecond=0)
        if not isinstance(field, models.DateTimeField):
            today = today.date()
        month_start = today.replace(day=1)
        last_month_start = (month_start - datetime.timedelta(days=1)).replace(day=1)
        year_start = today.replace(month=1, day=1)
        since, until = self.lookup_kwarg_since, self.lookup_kwarg_until
        # Django's links are: any date, today, past 7 days, this month, this year[, no date, has date].
        after = {
            1: ("Yesterday", {since: today - datetime.timedelta(days=1), until: today}),
            2: ("Past 30 days", {since: today - datetime.timedelta(days=30), until: today + datetime.timedelta(days=1)}),
            3: ("Last month", {since: last_month_start, until: month_start}),
            4: ("Last year", {since: year_start.replace(year=year_start.year - 1), until: year_start}),
        }
        self.links = tuple(item for i, link in enumerate(self.links) for item in (link, after.get(i)) if item)

    @staticmethod
    def _as_bound(field, value: str) -> str:
        """A bare date on a date-time field → midnight of that day in the current time zone
        (Django would take it as a naive date-time). A date or date-time no database takes (year
        outside 1900–9999, UTC offset beyond ±14 h) shows the list's "invalid filter" notice
        rather than an error; anything else unparsable is left for the field to refuse the same way."""
        try:
            day = parse_date(value)
            moment = None if day is not None else parse_datetime(value)
        except ValueError as exc:
            raise IncorrectLookupParameters(exc) from exc
        if moment is not None:
            offset = moment.utcoffset()
            if not 1900 <= moment.year <= 9999 or (offset is not None and abs(offset) > MAX_UTC_OFFSET):
                raise IncorrectLookupParameters(f"date-time out of range: {value}")
            return value
        if day is None:
            return value
        if not 1900 <= day.year <= 9999:
            raise IncorrectLookupParameters(f"date out of range: {value}")
        if not isinstance(field, models.DateTimeField):
            return value
        midnight = datetime.datetime.combine(day, datetime.time.min)
        return str(timezone.make_aware(midnight) if timezone.is_aware(timezone.now()) else midnight)

    def choices(self, changelist):
        yield from super().choices(changelist)
        since = self.date_params.get(self.lookup_kwarg_since, "")
        until = self.date_params.get(self.lookup_kwarg_until, "")
        yield {
            "form": True,
            "since_name": self.lookup_kwarg_since,
            "until_name": self.lookup_kwarg_until,
            "since": since[:10],
            "until": until[:10],
            "hidden": _hidden_params(changelist, drop=lambda key: key.startswith(self.field_generic)),
        }


def _m2m_snapshot(obj) -> dict:
    """{"groups": [sorted pks]} for each many-to-many field of ``obj``."""
    if obj is None or obj.pk is None:
        return {}
    return {
        field.name: sorted(getattr(obj, field.name).values_list("pk", flat=True))
        for field in obj._meta.many_to_many
    }


def _actor(request):
    return getattr(request, "user", None)


class AuditedAdminMixin:
    """Every admin add, change and delete (inlines and bulk delete included) is written to the
    audit trail with the values before and after; the object's History page lists it."""

    def save_model(self, request, obj, form, change):
        before = None
        if change and obj.pk is not None:
            stored = type(obj)._default_manager.filter(pk=obj.pk).first()
            before = audit_snapshot(stored) if stored is not None else None
            # Many-to-many values (a user's groups = their role) are saved later, in save_related.
            obj._portal_m2m_before = _m2m_snapshot(stored) if stored is not None else {}
        super().save_model(request, obj, form, change)
        if before is None:
            audit_record(obj=obj, action=Action.CREATE, after=audit_snapshot(obj), actor=_actor(request))
        else:
            audit_record(obj=obj, action=Action.UPDATE, before=before, after=audit_snapshot(obj), actor=_actor(request))

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        obj = form.instance
        before = getattr(obj, "_portal_m2m_before", None)
        after = _m2m_snapshot(obj)
        if before is None:
            before = {name: [] for name in after}
        if audit_diff(before, after):
            audit_record(obj=obj, action=Action.UPDATE, before=before, after=after, actor=_actor(request),
                         message="related objects changed")

    def delete_model(self, request, obj):
        before = audit_snapshot(obj)
        pk = obj.pk
        super().delete_model(request, obj)
        obj.pk = pk  # Django clears it after delete; the entry still names the row.
        audit_record(obj=obj, action=Action.DELETE, before=before, actor=_actor(request))

    def delete_queryset(self, request, queryset):
        ids = list(queryset.values_list("pk", flat=True))
        super().delete_queryset(request, queryset)
        audit_bulk(model=queryset.model, ids=ids, action=Action.BULK_DELETE, actor=_actor(request),
                   message="deleted from the admin list")

    def save_formset(self, request, form, formset, change):
        model = formset.model
        pks = [f.instance.pk for f in formset.initial_forms if f.instance.pk is not None]
        before = {o.pk: audit_snapshot(o) for o in model._default_manager.filter(pk__in=pks)}
        super().save_formset(request, form, formset, change)
        actor = _actor(request)
        for obj in getattr(formset, "new_objects", []):
            audit_record(obj=obj, action=Action.CREATE, after=audit_snapshot(obj), actor=actor)
        for obj, _fields in getattr(formset, "changed_objects", []):
            audit_record(obj=obj, action=Action.UPDATE, before=before.get(obj.pk), after=audit_snapshot(obj), actor=actor)
        for obj in getattr(formset, "deleted_objects", []):
            if obj.pk is None:
                continue
            audit_record(obj=obj, action=Action.DELETE, before=before.get(obj.pk), actor=actor)

    def history_view(self, request, object_id, extra_context=None):
        extra_context = dict(extra_context or {})
        obj = self.get_object(request, unquote(object_id))
        if obj is not None:
            extra_context["portal_audit_entries"] = list(audit_entries_for(obj)[:200])
        return super().history_view(request, object_id, extra_context=extra_context)


class PortalAdminMixin(AuditedAdminMixin, ExportMixin, ScalableAdminMixin):
    """Audit trail + CSV/XLSX export + big-table changelists: the one base to add."""
