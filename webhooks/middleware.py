"""Meta's deliveries go straight to their view, past the middleware made for people.

A delivery carries no session, no signed-in person and no tenant: it is verified by its
signature and stored in one INSERT. The middleware below this one in ``MIDDLEWARE`` (sessions,
CSRF, authentication, messages, allauth, htmx, the tenant scope, the partner API's headers) and
URL resolution cost about a fifth of the web tier's CPU per acknowledgement, and the tenant
scope would even read a session and its person when a cookie came along. The middleware above
this one (security headers, static files, the input guard) still applies.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.urls import reverse

from webhooks import views


class MetaWebhookMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self._path: str | None = None

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if self._path is None:
            self._path = reverse("webhooks:meta")
        if request.path == self._path:
            return views.meta_webhook(request)
        return self.get_response(request)
