"""Faster output for read-only model serializers on busy list endpoints.

DRF renders each field of each row through its generic machinery (``get_attribute`` walks the
source, ``DateTimeField`` converts time zones through the current-zone lookup …): about 90 µs
per row of a device list, most of a 50-row page. `FastOutputMixin` plans once per serializer
class which fields are plain columns and renders those directly from the instance, with the
same output as DRF, without building the serializer's fields on each request (about 1 ms,
and one build per nested serializer); every other field still goes through DRF. A declared
field (a nested serializer, a method field, a dotted source) is built alone, as DRF builds it
(a copy of the declaration bound to this serializer), so a nested serializer's output costs its
rows, not a rebuild of every field of its parent. Input, validation and the OpenAPI schema are
untouched, since the serializer is still an ordinary ModelSerializer.
"""

from __future__ import annotations

import copy

from django.utils import timezone
from rest_framework import ISO_8601, relations, serializers
from rest_framework.settings import api_settings

_PLAIN_TYPES = (serializers.CharField, serializers.IntegerField, serializers.BigIntegerField, serializers.BooleanField,
                serializers.ChoiceField)


def _output_kind(field, model) -> tuple[str, str | None]:
    """("column", attname) for a field that renders one column through its own
    ``to_representation``; ("datetime", attname) for an ISO 8601 date-time column; ("field",
    None) for anything else (DRF renders it as usual)."""
    if len(field.source_attrs) != 1:
        return "field", None
    try:
        model_field = model._meta.get_field(field.source_attrs[0])
    except Exception:  # noqa: BLE001 — a property or a method, not a column
        return "field", None
    if not model_field.concrete:
        return "field", None
    if model_field.is_relation:
        if isinstance(field, relations.PrimaryKeyRelatedField) and not field.pk_field:
            return "pk", model_field.attname
        return "field", None
    if isinstance(field, serializers.DateTimeField):
        iso = str(getattr(field, "format", api_settings.DATETIME_FORMAT)).lower() == ISO_8601
        return ("datetime", model_field.attname) if iso and not hasattr(field, "timezone") else ("field", None)
    if type(field) in _PLAIN_TYPES:
        return "column", model_field.attname
    return "field", None


class FastOutputMixin:
    """Mix into a read-only ``serializers.ModelSerializer`` (``class S(FastOutputMixin, ModelSerializer)``)."""

    def _output_plan(self) -> list[tuple]:
        """(name, kind, attname, convert) per readable field, worked out once per class.
        ``convert`` is kept only for plain columns, whose conversion (str, int, a choice or
        boolean mapping) depends on the field's declaration alone; every other field is taken
        from the serializer instance at render time, with its own context."""
        plan = self.__class__.__dict__.get("_fast_output_plan")
        if plan is None:
            model = self.Meta.model
            plan = []
            for field in self._readable_fields:
                kind, attname = _output_kind(field, model)
                plan.append((field.field_name, kind, attname, field.to_representation if kind == "column" else None))
            self.__class__._fast_output_plan = plan
        return plan

    def _output_field(self, name: str):
        """The bound field ``name``: built alone when it is declared on the class (DRF's
        ``get_fields`` deep-copies declared fields and ``fields`` binds them, exactly this), else
        from the full field set."""
        if "fields" in self.__dict__ or name not in self._declared_fields:
            return self.fields[name]
        built = self.__dict__.setdefault("_fast_output_fields", {})
        field = built.get(name)
        if field is None:
            field = built[name] = copy.deepcopy(self._declared_fields[name])
            field.bind(field_name=name, parent=self)
        return field

    def to_representation(self, instance):
        values = instance.__dict__
        zone = timezone.get_current_timezone()
        out = {}
        for name, kind, attname, convert in self._output_plan():
            if kind == "field":
                field = self._output_field(name)
                attribute = field.get_attribute(instance)
                check = attribute.pk if isinstance(attribute, relations.PKOnlyObject) else attribute
                out[name] = None if check is None else field.to_representation(attribute)
                continue
            value = values[attname]
            if value is None:
                out[name] = None
            elif kind == "column":
                out[name] = convert(value)
            elif kind == "pk":
                out[name] = value
            elif value.tzinfo is not None:  # datetime, as DRF: the current zone, Z for UTC
                text = value.astimezone(zone).isoformat()
                out[name] = text[:-6] + "Z" if text.endswith("+00:00") else text
            else:
                out[name] = self._output_field(name).to_representation(value)
        return out
