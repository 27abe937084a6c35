from __future__ import annotations

from collections.abc import Callable

import pytest
from django_scopes import scope
from rest_framework.test import APIClient

from accounts import services
from accounts.models import ApiKey, ApiScope, Tenant

pytestmark = pytest.mark.django_db


def _client(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def test_valid_key_reads_its_tenant_and_is_marked_used(
    tenant: Tenant, make_api_key: Callable[..., tuple[ApiKey, str]]
) -> None:
    key, secret = make_api_key(tenant)
    response = _client(secret).get("/api/v1/tenant")
    assert response.status_code == 200
    assert response.json()["name"] == tenant.name
    with scope(tenant=tenant):
        key.refresh_from_db()
    assert key.last_used_at is not None


def test_key_is_stored_hashed_with_a_visible_prefix(
    tenant: Tenant, make_api_key: Callable[..., tuple[ApiKey, str]]
) -> None:
    key, secret = make_api_key(tenant)
    assert secret.startswith(key.prefix + "_")
    assert secret not in key.key_hash
    assert len(key.key_hash) == 64


def test_revoked_key_is_refused(
    tenant: Tenant, make_api_key: Callable[..., tuple[ApiKey, str]]
) -> None:
    key, secret = make_api_key(tenant)
    with scope(tenant=tenant):
        services.api_key_revoke(api_key=key)
    response = _client(secret).get("/api/v1/tenant")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


def test_wrong_secret_with_a_real_prefix_is_refused(
    tenant: Tenant, make_api_key: Callable[..., tuple[ApiKey, str]]
) -> None:
    key, _ = make_api_key(tenant)
    response = _client(f"{key.prefix}_not-the-secret").get("/api/v1/tenant")
    assert response.status_code == 401


@pytest.mark.parametrize("header", ["", "Bearer", "Token abc", "Bearer a b", "Bearer x_y_z"])
def test_missing_or_malformed_authorization_is_401(header: str, db: None) -> None:
    client = APIClient()
    if header:
        client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/api/v1/tenant")
    assert response.status_code == 401
    assert set(response.json()["error"]) == {"code", "message", "detail"}


def test_key_without_the_scope_gets_403(
    tenant: Tenant, make_api_key: Callable[..., tuple[ApiKey, str]]
) -> None:
    _, secret = make_api_key(tenant, [ApiScope.ACCOUNTS_READ])
    response = _client(secret).get("/api/v1/members")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "missing_scope"
    assert "members:read" in response.json()["error"]["message"]


def test_key_endpoint_names_tenant_and_scopes_without_secrets(
    tenant: Tenant, make_api_key: Callable[..., tuple[ApiKey, str]]
) -> None:
    _, secret = make_api_key(tenant, [ApiScope.MEMBERS_READ])
    body = _client(secret).get("/api/v1/key").json()
    assert body["tenant"]["id"] == tenant.pk
    assert body["scopes"] == [ApiScope.MEMBERS_READ]
    assert secret not in str(body)
    assert "key_hash" not in body


def test_every_generated_key_authenticates(
    tenant: Tenant, make_api_key: Callable[..., tuple[ApiKey, str]]
) -> None:
    # Secrets are url-safe base64 and often contain "_": the prefix must still be found.
    for _ in range(40):
        _, secret = make_api_key(tenant)
        assert _client(secret).get("/api/v1/key").status_code == 200
