"""One error shape for every 4xx: {"detail": "...", "code": "...", "errors": {field: [...]}}.

`errors` is present for validation failures and names each field (or `non_field_errors`);
`detail` is always a plain sentence a person can read.
"""

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


def _flatten(detail):
    if isinstance(detail, dict):
        return {str(k): _flatten(v) for k, v in detail.items()}
    if isinstance(detail, list):
        return [_flatten(v) for v in detail]
    return str(detail)


def _first_message(errors) -> str:
    if isinstance(errors, dict):
        for field, value in errors.items():
            msg = _first_message(value)
            if msg:
                return msg if field in ("non_field_errors", "detail") else f"{field}: {msg}"
    if isinstance(errors, list):
        for value in errors:
            msg = _first_message(value)
            if msg:
                return msg
    if isinstance(errors, str):
        return errors
    return ""


def exception_handler(exc, context):
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        errors = _flatten(exc.detail)
        if isinstance(errors, list):
            errors = {"non_field_errors": errors}
        body = {
            "detail": _first_message(errors) or "Invalid input.",
            "code": "invalid",
            "errors": errors,
        }
    else:
        detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
        codes = exc.get_codes() if isinstance(exc, exceptions.APIException) else "error"
        body = {
            "detail": _first_message(_flatten(detail)) or str(detail),
            "code": codes if isinstance(codes, str) else "error",
        }
    response.data = body
    return response


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state."
    default_code = "conflict"


def error_response(detail: str, *, code: str = "invalid", status_code: int = 400, errors=None):
    body = {"detail": detail, "code": code}
    if errors is not None:
        body["errors"] = errors
    return Response(body, status=status_code)
