"""Conventions shared by the whole partner API: one error shape, cursor pages, per-key limits."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions, pagination, throttling
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.exceptions import AccountsError

logger = logging.getLogger(__name__)

_CODES: dict[type[Exception], str] = {
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "rate_limited",
    exceptions.ParseError: "malformed_request",
    exceptions.ValidationError: "invalid",
}


def error_body(code: str, message: str, detail: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "detail": detail}}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Every API error as ``{"error": {"code", "message", "detail"}}`` with a stable code."""
    # Imported here: ``rest_framework.views`` reads the throttle and pagination classes of this
    # module while it loads, so a module-level import is circular whenever DRF loads us first.
    from rest_framework.views import exception_handler as drf_exception_handler

    if isinstance(exc, AccountsError):
        return Response(error_body(exc.code, exc.message), status=400)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if not isinstance(exc, exceptions.APIException):
        return response
    code = next((c for t, c in _CODES.items() if isinstance(exc, t)), "error")
    if isinstance(exc, exceptions.ValidationError):
        message, detail = "The request is not valid.", exc.detail
    elif isinstance(exc, exceptions.NotFound):
        message, detail = "Not found.", None
    else:
        message, detail = str(exc.detail), None
    response.data = error_body(code, message, detail)
    return response


class CursorPagination(pagination.CursorPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
    ordering = "-pk"


class ApiKeyRateThrottle(throttling.SimpleRateThrottle):
    """A request budget per partner key, shared by every web process through the cache."""

    scope = "api_key"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        api_key = getattr(request, "auth", None)
        ident = getattr(api_key, "pk", None)
        if ident is None:
            return None
        return self.cache_format % {"scope": self.scope, "ident": ident}
