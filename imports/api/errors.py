"""The one place where errors become HTTP responses, all shaped `{"code", "detail", ...}`."""

from django.core.exceptions import PermissionDenied
from django.http import Http404, JsonResponse
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from .. import errors

HTTP_STATUS = {
    errors.ImportConflict: 409,
    errors.SourceMisconfigured: 409,
    errors.ReportMissing: 404,
    errors.ManifestInvalid: 400,
    errors.ManifestTooLarge: 413,
    errors.SourceNotAllowed: 400,
    errors.CallbackRefused: 400,
}


def status_for(exc: errors.BulkImportError) -> int:
    for kind in type(exc).__mro__:
        if kind in HTTP_STATUS:
            return HTTP_STATUS[kind]
    return 500


def exception_handler(exc, context):
    if isinstance(exc, errors.BulkImportError):
        body = {"code": exc.code, "detail": exc.detail, **exc.extra}
        return Response(body, status=status_for(exc))
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # unknown errors stay 500s
    if isinstance(exc, exceptions.ValidationError):
        response.data = {
            "code": "invalid",
            "detail": "The request is not valid: see errors.",
            "errors": response.data,
        }
    else:
        codes = exc.get_codes()
        response.data = {
            "code": codes if isinstance(codes, str) else exc.default_code,
            "detail": str(exc.detail),
        }
    return response


def bad_request(request, exception=None) -> JsonResponse:
    # Django's own refusals before any view: a Host not in ALLOWED_HOSTS, too many fields.
    return JsonResponse(
        {"code": "bad_request", "detail": "The request cannot be served: it is not valid here."},
        status=400,
    )


def permission_denied(request, exception=None) -> JsonResponse:
    return JsonResponse(
        {"code": "permission_denied", "detail": "You do not have permission to do this."},
        status=403,
    )


def not_found(request, exception=None) -> JsonResponse:
    return JsonResponse({"code": "not_found", "detail": "Not found."}, status=404)


def server_error(request) -> JsonResponse:
    return JsonResponse(
        {"code": "server_error", "detail": "The server failed; the error was logged."},
        status=500,
    )
