"""Filter building blocks shared by the API's FilterSets."""

from datetime import timedelta

import django_filters
from django import forms
from django_filters.fields import IsoDateTimeField
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework.filters import OrderingFilter, SearchFilter
from rest_framework.settings import api_settings

# Real UTC offsets lie within ±14 h; PostgreSQL refuses anything wider with a DataError.
MAX_UTC_OFFSET = timedelta(hours=14)


class BoundedIsoDateTimeField(IsoDateTimeField):
    def clean(self, value):
        value = super().clean(value)
        if value is None:
            return value
        offset = value.utcoffset()
        if offset is not None and abs(offset) > MAX_UTC_OFFSET:
            raise forms.ValidationError("Enter a date/time with a UTC offset between -14:00 and +14:00.")
        if not 1900 <= value.year <= 9999:
            raise forms.ValidationError("Enter a date/time between the years 1900 and 9999.")
        return value


class BoundedIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    """ISO 8601 date/time filter that answers 400 (not 500) for offsets or years no database takes."""

    field_class = BoundedIsoDateTimeField


# --- the backends: list filters filter lists -----------------------------------------------------
# DRF runs every filter backend on detail requests too (get_object filters the queryset first),
# so a device's page paid for building the list's whole FilterSet form: a third of its server
# time. The portal's filters narrow lists; they are not an access rule (roles are), so requests
# for one object (retrieve and detail actions) skip them. Lists and list actions keep them.


class _ListOnly:
    def filter_queryset(self, request, queryset, view):
        if getattr(view, "detail", False):  # one object by its id (retrieve, detail actions)
            return queryset
        return super().filter_queryset(request, queryset, view)


def _asks_for_no_filter(request, view, filterset_class) -> bool:
    """True when every query parameter belongs to something other than the FilterSet:
    pagination, search, ordering or the format override (unless the FilterSet declares a filter
    of that name itself). Building a FilterSet deep-copies its filters and its form's fields
    (about 1 ms) only to apply nothing, on the most common list request of all, the plain first
    page."""
    others = {api_settings.SEARCH_PARAM, api_settings.ORDERING_PARAM, api_settings.URL_FORMAT_OVERRIDE}
    paginator = getattr(view, "paginator", None)
    for attr in ("page_size_query_param", "cursor_query_param", "page_query_param", "limit_query_param",
                 "offset_query_param"):
        others.add(getattr(paginator, attr, None))
    others -= set(filterset_class.base_filters) if filterset_class else set()
    return all(name in others for name in request.query_params)


class ListFilterBackend(_ListOnly, DjangoFilterBackend):
    def filter_queryset(self, request, queryset, view):
        # With no filter parameter every filter is a no-op (django-filter skips empty values).
        if _asks_for_no_filter(request, view, self.get_filterset_class(view, queryset)):
            return queryset
        return super().filter_queryset(request, queryset, view)


class ListSearchFilter(_ListOnly, SearchFilter):
    pass


class ListOrderingFilter(_ListOnly, OrderingFilter):
    pass
