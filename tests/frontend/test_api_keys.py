"""API keys: the secret is shown once, never again, and revoking it stops the API at once."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django_scopes import scope
from rest_framework.test import APIClient

from accounts.models import ApiKey, ApiScope, Membership, Tenant
from accounts.selectors import api_key_list

pytestmark = pytest.mark.django_db


def _create(client: Client, name: str = "HubSpot sync", scopes: list[str] | None = None) -> str:
    response = client.post(
        "/api-keys/new/", {"name": name, "scopes": scopes or ["tenant:read", "members:read"]}
    )
    assert response.status_code == 200, response.content.decode()[:3000]
    assert "no-store" in response["Cache-Control"]
    body = response.content.decode()
    assert "It will not be shown again" in body
    assert 'data-testid="api-key-secret"' in body
    secret = re.search(r'value="(igk_[^"]+)"', body)
    assert secret, body
    return secret.group(1)


def _api(secret: str) -> APIClient:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return api


def test_key_is_shown_once_and_never_again(owner_client: Client, tenant: Tenant) -> None:
    secret = _create(owner_client)
    with scope(tenant=tenant):
        key = api_key_list().get()
    assert key.name == "HubSpot sync"
    assert key.scopes == ["members:read", "tenant:read"]
    assert secret.startswith(key.prefix + "_")

    for path in ["/api-keys/", f"/api-keys/{key.pk}/revoke/", "/", "/settings/", "/members/"]:
        content = owner_client.get(path).content.decode()
        assert secret not in content, path
        assert secret.split("_", 2)[2] not in content, path

    listing = owner_client.get("/api-keys/").content.decode()
    assert key.prefix in listing
    assert "HubSpot sync" in listing
    assert "members:read" in listing


def test_created_key_works_and_revoke_makes_it_fail(
    owner_client: Client, owner: Membership, tenant: Tenant
) -> None:
    secret = _create(owner_client)
    assert _api(secret).get("/api/v1/tenant").status_code == 200
    with scope(tenant=tenant):
        key = api_key_list().get()

    confirm = owner_client.get(f"/api-keys/{key.pk}/revoke/")
    assert confirm.status_code == 200
    assert b"Revoke key" in confirm.content
    response = owner_client.post(f"/api-keys/{key.pk}/revoke/")
    assert response.status_code == 302

    assert _api(secret).get("/api/v1/tenant").status_code == 401
    listing = owner_client.get("/api-keys/").content.decode()
    assert "Revoked" in listing
    # Revoking again is harmless.
    assert owner_client.post(f"/api-keys/{key.pk}/revoke/").status_code == 302


def test_key_list_shows_creator_and_last_use(owner_client: Client, owner: Membership) -> None:
    secret = _create(owner_client)
    assert "Never" in owner_client.get("/api-keys/").content.decode()
    _api(secret).get("/api/v1/tenant")
    listing = owner_client.get("/api-keys/").content.decode()
    assert owner.user.email in listing
    assert " ago" in listing


def test_create_form_errors_are_inline_and_create_nothing(
    owner_client: Client, tenant: Tenant
) -> None:
    response = owner_client.post("/api-keys/new/", {"name": "", "scopes": []})
    assert response.status_code == 400
    body = response.content.decode()
    assert "This field is required." in body
    assert "Choose at least one scope." in body
    response = owner_client.post("/api-keys/new/", {"name": "x", "scopes": ["root:all"]})
    assert response.status_code == 400
    with scope(tenant=tenant):
        assert not ApiKey.objects.exists()


def test_create_form_offers_every_scope(owner_client: Client) -> None:
    page = owner_client.get("/api-keys/new/").content.decode()
    for value in ApiScope.values:
        assert f'value="{value}"' in page


def test_admin_manages_keys(admin_client: Client) -> None:
    secret = _create(admin_client, name="Bot")
    assert _api(secret).get("/api/v1/tenant").status_code == 200


def test_empty_state(owner_client: Client) -> None:
    assert b"No API keys yet" in owner_client.get("/api-keys/").content
