"""People whose role does not allow a change get 403, and nothing changes."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client
from django_scopes import scope

from accounts import services
from accounts.models import ApiKey, Invitation, Membership, Role, Tenant
from accounts.selectors import api_key_list, invitation_list_pending, membership_list

pytestmark = pytest.mark.django_db


@pytest.fixture
def targets(
    tenant: Tenant, owner: Membership, make_member: Callable[..., Membership]
) -> dict[str, int]:
    """Objects in the workspace someone might try to change."""
    agent = make_member(tenant, Role.AGENT)
    with scope(tenant=tenant):
        invitation, _ = services.invitation_create(
            tenant=tenant,
            email="new@example.com",
            role=Role.AGENT,
            invited_by=owner.user,
            acting_role=Role.OWNER,
        )
        key, _ = services.api_key_create(
            tenant=tenant, name="crm", scopes=["tenant:read"], created_by=owner.user
        )
    return {"member": agent.pk, "invitation": invitation.pk, "key": key.pk}


def _writes(targets: dict[str, int]) -> list[tuple[str, dict[str, str | list[str]]]]:
    return [
        (f"/members/{targets['member']}/role/", {"role": Role.OWNER}),
        (f"/members/{targets['member']}/remove/", {}),
        ("/members/invitations/", {"email": "x@example.com", "role": Role.VIEWER}),
        (f"/members/invitations/{targets['invitation']}/revoke/", {}),
        ("/api-keys/new/", {"name": "sneaky", "scopes": ["tenant:read"]}),
        (f"/api-keys/{targets['key']}/revoke/", {}),
        ("/settings/", {"name": "Renamed"}),
    ]


def _snapshot(tenant: Tenant) -> tuple[object, ...]:
    tenant.refresh_from_db()
    with scope(tenant=tenant):
        return (
            tenant.name,
            sorted(membership_list().values_list("pk", "role")),
            sorted(invitation_list_pending().values_list("pk", flat=True)),
            sorted(api_key_list().values_list("pk", "revoked_at")),
            Invitation.objects.count(),
            ApiKey.objects.count(),
        )


@pytest.mark.parametrize("role", [Role.VIEWER, Role.AGENT])
def test_viewers_and_agents_cannot_change_anything(
    client_as: Callable[[str], Client], tenant: Tenant, targets: dict[str, int], role: str
) -> None:
    client = client_as(role)
    before = _snapshot(tenant)
    for path, data in _writes(targets):
        response = client.post(path, data)
        assert response.status_code == 403, path
    assert _snapshot(tenant) == before


def test_agents_cannot_open_or_revoke_api_keys(
    agent_client: Client, targets: dict[str, int]
) -> None:
    assert agent_client.get("/api-keys/").status_code == 403
    assert agent_client.get("/api-keys/new/").status_code == 403
    assert agent_client.get(f"/api-keys/{targets['key']}/revoke/").status_code == 403
    assert agent_client.post(f"/api-keys/{targets['key']}/revoke/").status_code == 403


def test_writes_refuse_get(owner_client: Client, targets: dict[str, int]) -> None:
    assert owner_client.get(f"/members/{targets['member']}/remove/").status_code == 405
    assert owner_client.get("/workspaces/switch/").status_code == 405


def test_posts_need_a_csrf_token(owner: Membership, targets: dict[str, int]) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner.user)
    response = client.post(f"/members/{targets['member']}/remove/")
    assert response.status_code == 403
    with scope(tenant=owner.tenant):
        assert membership_list().filter(pk=targets["member"]).exists()
