"""Filter building blocks shared by the API's FilterSets."""

from datetime import timedelta

import django_filters
from django import forms
from django_filters.fields import IsoDateTimeField
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework.filters import OrderingFilter, SearchFilter

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


class ListFilterBackend(_ListOnly, DjangoFilterBackend):
    pass


class ListSearchFilter(_ListOnly, SearchFilter):
    pass


class ListOrderingFilter(_ListOnly, OrderingFilter):
    pass
