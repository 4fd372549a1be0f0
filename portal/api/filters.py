"""Filter building blocks shared by the API's FilterSets."""

from datetime import timedelta

import django_filters
from django import forms
from django_filters.fields import IsoDateTimeField

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
