"""The workspace switcher lists the person's workspaces and switches only to those."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.models import Membership, Role, Tenant
from tests.factories import TenantFactory

pytestmark = pytest.mark.django_db


def test_switcher_lists_only_the_persons_workspaces(
    owner: Membership,
    other_tenant: Tenant,
    make_member,
    login,  # type: ignore[no-untyped-def]
) -> None:
    make_member(other_tenant, Role.VIEWER, user=owner.user)
    TenantFactory(name="Agency Elsewhere")
    page = login(owner.user).get("/").content.decode()
    assert "Agency A" in page
    assert "Agency B" in page
    assert "Agency Elsewhere" not in page


def test_switching_to_a_workspace_of_the_person(
    owner: Membership,
    other_tenant: Tenant,
    make_member,
    login,  # type: ignore[no-untyped-def]
) -> None:
    make_member(other_tenant, Role.VIEWER, user=owner.user)
    client = login(owner.user)
    client.post("/workspaces/switch/", {"tenant_id": owner.tenant_id})
    assert b'data-testid="current-workspace">Agency A<' in client.get("/").content

    response = client.post("/workspaces/switch/", {"tenant_id": other_tenant.pk})
    assert response.status_code == 302
    home = client.get("/")
    assert b'data-testid="current-workspace">Agency B<' in home.content
    assert b"<span>API keys</span>" not in home.content  # a viewer there
    assert client.get("/api-keys/").status_code == 403


def test_switching_to_a_foreign_workspace_answers_404_and_changes_nothing(
    owner_client: Client, other_tenant: Tenant
) -> None:
    response = owner_client.post("/workspaces/switch/", {"tenant_id": other_tenant.pk})
    assert response.status_code == 404
    assert b'data-testid="current-workspace">Agency A<' in owner_client.get("/").content


@pytest.mark.parametrize("value", ["", "abc", "0", "-1", "99999999"])
def test_switching_with_a_bad_id_answers_404(owner_client: Client, value: str) -> None:
    assert owner_client.post("/workspaces/switch/", {"tenant_id": value}).status_code == 404


def test_switching_needs_a_login(client: Client, tenant: Tenant) -> None:
    response = client.post("/workspaces/switch/", {"tenant_id": tenant.pk})
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
