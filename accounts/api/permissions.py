from __future__ import annotations

from typing import Any

from rest_framework import permissions
from rest_framework.request import Request

from accounts.models import ApiKey


class HasApiKeyScope(permissions.BasePermission):
    """The key must carry the view's ``required_scopes`` (per method, or for every method)."""

    message = "The API key lacks the scope this call needs."
    code = "missing_scope"

    def has_permission(self, request: Request, view: Any) -> bool:
        api_key = request.auth
        if not isinstance(api_key, ApiKey):
            return False
        required = getattr(view, "required_scopes", None)
        if isinstance(required, dict):
            required = required.get(request.method or "GET", required.get("*"))
        if required is None:
            return False  # a view that declares no scope is closed, not open
        missing = sorted(set(required) - set(api_key.scopes))
        if missing:
            # Permissions are made per request, so naming the scope here is safe.
            self.message = f"The API key lacks the scope this call needs: {', '.join(missing)}."
        return not missing
