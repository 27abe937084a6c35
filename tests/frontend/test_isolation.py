"""Another workspace's objects answer 404 on every page and every POST, like missing ones."""

from __future__ import annotations

import pytest
from django.test import Client
from django_scopes import scope

from accounts.models import ApiKey, Membership, Tenant
from accounts.selectors import api_key_get, invitation_get, membership_get
from tests.frontend.conftest import Foreign

pytestmark = pytest.mark.django_db


def _routes(foreign: Foreign) -> list[tuple[str, str, dict[str, str]]]:
    m, i, k = foreign.membership.pk, foreign.invitation.pk, foreign.api_key.pk
    return [
        ("post", f"/members/{m}/role/", {"role": "viewer"}),
        ("post", f"/members/{m}/remove/", {}),
        ("post", f"/members/invitations/{i}/revoke/", {}),
        ("get", f"/api-keys/{k}/revoke/", {}),
        ("post", f"/api-keys/{k}/revoke/", {}),
    ]


@pytest.mark.parametrize("index", range(5))
def test_other_workspace_ids_answer_404(
    owner_client: Client, foreign: Foreign, other_tenant: Tenant, index: int
) -> None:
    method, path, data = _routes(foreign)[index]
    response = getattr(owner_client, method)(path, data)
    assert response.status_code == 404
    assert b"Page not found" in response.content
    with scope(tenant=other_tenant):
        member = membership_get(membership_id=foreign.membership.pk)
        invitation = invitation_get(invitation_id=foreign.invitation.pk)
        key: ApiKey = api_key_get(api_key_id=foreign.api_key.pk)
    assert member.role == "agent"
    assert invitation.revoked_at is None
    assert key.revoked_at is None


@pytest.mark.parametrize("index", range(5))
def test_missing_ids_answer_the_same_404(owner_client: Client, index: int) -> None:
    method, path, data = [
        ("post", "/members/999999/role/", {"role": "viewer"}),
        ("post", "/members/999999/remove/", {}),
        ("post", "/members/invitations/999999/revoke/", {}),
        ("get", "/api-keys/999999/revoke/", {}),
        ("post", "/api-keys/999999/revoke/", {}),
    ][index]
    assert getattr(owner_client, method)(path, data).status_code == 404


def test_other_workspace_names_never_appear_on_pages(
    owner_client: Client, foreign: Foreign
) -> None:
    for path in ["/", "/members/", "/api-keys/", "/settings/", "/instagram-accounts/"]:
        content = owner_client.get(path).content.decode()
        assert "Agency B" not in content
        assert foreign.membership.user.email not in content
        assert foreign.api_key.prefix not in content
        assert "someone@example.com" not in content


def test_a_member_of_both_sees_only_the_active_workspace(
    owner: Membership,
    other_tenant: Tenant,
    make_member,
    login,  # type: ignore[no-untyped-def]
) -> None:
    make_member(other_tenant, "owner", user=owner.user)
    theirs = make_member(other_tenant, "agent")
    client = login(owner.user)
    client.post("/workspaces/switch/", {"tenant_id": owner.tenant_id})
    assert theirs.user.email not in client.get("/members/").content.decode()
    assert client.post(f"/members/{theirs.pk}/remove/").status_code == 404
    with scope(tenant=other_tenant):
        assert Membership.objects.filter(pk=theirs.pk).exists()
