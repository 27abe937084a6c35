"""Conventions shared by the whole partner API: one error shape, cursor pages, per-key limits.

Every answer to a partner key carries ``RateLimit-Limit``, ``RateLimit-Remaining`` and
``RateLimit-Reset`` (seconds until the budget is whole again); a refused one is a 429 with
``Retry-After``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
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


class ApiError(exceptions.APIException):
    """A refusal with its own stable code, raised by views for a service's refusal."""

    def __init__(self, code: str, message: str, status: int = 400, detail: Any = None) -> None:
        super().__init__(message, code)
        self.status_code = status
        self.error_code = code
        self.error_message = message
        self.error_detail = detail


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Every API error as ``{"error": {"code", "message", "detail"}}`` with a stable code."""
    # Imported here: ``rest_framework.views`` reads the throttle and pagination classes of this
    # module while it loads, so a module-level import is circular whenever DRF loads us first.
    from rest_framework.views import exception_handler as drf_exception_handler

    if isinstance(exc, AccountsError):
        return Response(error_body(exc.code, exc.message), status=400)
    if isinstance(exc, ApiError):
        body = error_body(exc.error_code, exc.error_message, exc.error_detail)
        return Response(body, status=exc.status_code)
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
    if isinstance(exc, exceptions.PermissionDenied) and exc.get_codes() == "missing_scope":
        code = "missing_scope"
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

    def allow_request(self, request: Request, view: Any) -> bool:
        self.key = None
        allowed = super().allow_request(request, view)
        if self.key is not None and self.num_requests is not None and self.duration:
            history = self.history
            reset = self.duration - (self.now - history[-1]) if history else self.duration
            # Read by ``RateLimitHeadersMiddleware`` once the response is made.
            request._request.rate_limit = (  # type: ignore[attr-defined]
                self.num_requests,
                max(self.num_requests - len(history), 0),
                max(math.ceil(reset), 0),
            )
        return allowed


class RateLimitHeadersMiddleware:
    """Adds the key's request budget to every partner API response it was counted against."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        budget = getattr(request, "rate_limit", None)
        if budget is not None:
            limit, remaining, reset = budget
            response["RateLimit-Limit"] = str(limit)
            response["RateLimit-Remaining"] = str(remaining)
            response["RateLimit-Reset"] = str(reset)
        return response
