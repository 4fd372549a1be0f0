"""Admin building blocks every app's ModelAdmin can adopt with one base class.

    from portal.admin_kit import PortalAdminMixin

    @admin.register(Device)
    class DeviceAdmin(PortalAdminMixin, RoleAwareAdminMixin, admin.ModelAdmin):
        ...

``PortalAdminMixin`` = ``AuditedAdminMixin`` (admin add/change/delete → audit trail with
before/after; per-object History page shows it) + ``ExportMixin`` (CSV/XLSX of the filtered
list) + ``ScalableAdminMixin`` (no full COUNT(*) of big tables, no DISTINCT scans for filters).
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.core.paginator import Paginator
from django.db import connection
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
        return qs.order_by()[: COUNT_CAP + 1].count()


class ScalableAdminMixin:
    """Changelists that stay fast on millions of rows. Also set ``list_select_related`` for
    every foreign key in ``list_display`` and use ``choices_filter`` instead of plain
    ``list_filter`` names for free-text columns (those make Django run SELECT DISTINCT)."""

    paginator = CappedCountPaginator
    show_full_result_count = False


def choices_filter(field_name: str, choices, *, title: str | None = None):
    """A list filter with fixed choices: unlike a plain field name in ``list_filter`` on a
    column without ``choices``, it does not scan the table for DISTINCT values."""
    choices = [(str(value), str(label)) for value, label in choices]

    class _ChoicesFilter(admin.SimpleListFilter):
        parameter_name = field_name

        def lookups(self, request, model_admin):
            return choices

        def queryset(self, request, queryset):
            value = self.value()
            return queryset.filter(**{field_name: value}) if value not in (None, "") else queryset

    _ChoicesFilter.title = title or field_name.replace("_", " ")
    _ChoicesFilter.__name__ = f"{field_name.title().replace('_', '')}ChoicesFilter"
    return _ChoicesFilter


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
