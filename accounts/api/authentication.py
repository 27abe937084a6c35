from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from accounts import services, tenancy
from accounts.models import ApiKey


class ApiKeyPrincipal:
    """The partner behind a request: authenticated, but not a person."""

    is_authenticated = True
    is_anonymous = False

    def __init__(self, api_key: ApiKey) -> None:
        self.api_key = api_key
        self.pk = None

    def __str__(self) -> str:
        return f"api key {self.api_key.prefix}"


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer <key>`` → the key, whose tenant the view then scopes to."""

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[ApiKeyPrincipal, ApiKey] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        parts = header.split()
        if len(parts) != 2 or parts[0] != self.keyword:
            raise exceptions.AuthenticationFailed("Use the header `Authorization: Bearer <key>`.")
        secret = parts[1]
        # A key reads `igk_<prefix hex>_<secret>`; the secret part may itself hold "_".
        head = secret.split("_", 2)
        prefix = f"{head[0]}_{head[1]}" if len(head) == 3 else ""
        api_key = tenancy.api_key_by_prefix(prefix) if prefix else None
        if api_key is None or not _hash_matches(api_key, secret):
            raise exceptions.AuthenticationFailed("The API key is not valid.")
        if api_key.revoked_at is not None:
            raise exceptions.AuthenticationFailed("The API key was revoked.")
        services.api_key_touch(api_key=api_key)
        return ApiKeyPrincipal(api_key), api_key

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


def _hash_matches(api_key: ApiKey, secret: str) -> bool:
    import hmac

    return hmac.compare_digest(api_key.key_hash, tenancy.secret_hash(secret))


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.api.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "A partner API key."}
