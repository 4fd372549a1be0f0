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

from integrations.base import Outcome, VendorError


class VendorUnavailable(exceptions.APIException):
    """A vendor call needed to answer failed. Says what happened and whether it may have acted."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "vendor_unavailable"


class VendorRejected(exceptions.APIException):
    status_code = status.HTTP_502_BAD_GATEWAY
    default_code = "vendor_rejected"


def _vendor_error_as_api_exception(exc: VendorError) -> exceptions.APIException:
    system = exc.system or "the vendor"
    if exc.outcome == Outcome.NOT_EXECUTED:
        detail = f"{system} is not available right now ({exc}); nothing was done. Try again later."
    elif exc.outcome == Outcome.REJECTED:
        return VendorRejected(f"{system} refused the request: {exc}")
    else:
        detail = f"{system} did not answer ({exc}); the outcome is being reconciled, do not repeat the request."
    return VendorUnavailable(detail)


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
    if isinstance(exc, VendorError):
        # A vendor failure that no service turned into a domain answer: never a 500.
        exc = _vendor_error_as_api_exception(exc)
    elif isinstance(exc, DjangoValidationError):
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
