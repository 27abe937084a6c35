"""Workspace settings: owners and admins rename the workspace."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client

from accounts.models import Role, Tenant

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN])
def test_owners_and_admins_rename_the_workspace(
    client_as: Callable[[str], Client], tenant: Tenant, role: str
) -> None:
    client = client_as(role)
    response = client.post("/settings/", {"name": "  Northwind   Social  "})
    assert response.status_code == 302
    tenant.refresh_from_db()
    assert tenant.name == "Northwind Social"
    page = client.get("/settings/").content.decode()
    assert "Workspace name saved." in page
    assert 'value="Northwind Social"' in page


def test_blank_name_is_refused_inline(owner_client: Client, tenant: Tenant) -> None:
    response = owner_client.post("/settings/", {"name": "   "})
    assert response.status_code == 400
    assert b"field--invalid" in response.content
    tenant.refresh_from_db()
    assert tenant.name == "Agency A"


@pytest.mark.parametrize("role", [Role.AGENT, Role.VIEWER])
def test_agents_and_viewers_see_settings_read_only(
    client_as: Callable[[str], Client], tenant: Tenant, role: str
) -> None:
    client = client_as(role)
    page = client.get("/settings/").content.decode()
    assert "Only owners and admins" in page
    assert client.post("/settings/", {"name": "Mine now"}).status_code == 403
    tenant.refresh_from_db()
    assert tenant.name == "Agency A"
