"""The members page: roles, removal and invitations, with the services' rules shown inline."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from django.test import Client
from django_scopes import scope

from accounts import services
from accounts.models import Membership, Role, Tenant
from accounts.selectors import invitation_list_pending, membership_get, membership_list

pytestmark = pytest.mark.django_db


def _role(tenant: Tenant, membership_id: int) -> str:
    with scope(tenant=tenant):
        return membership_get(membership_id=membership_id).role


def test_owner_changes_a_role(
    owner_client: Client, tenant: Tenant, make_member: Callable[..., Membership]
) -> None:
    agent = make_member(tenant, Role.AGENT)
    response = owner_client.post(f"/members/{agent.pk}/role/", {"role": Role.ADMIN})
    assert response.status_code == 302
    assert _role(tenant, agent.pk) == Role.ADMIN
    assert b"is now Admin" in owner_client.get(response["Location"]).content


def test_role_change_by_htmx_returns_the_row(
    owner_client: Client, tenant: Tenant, make_member: Callable[..., Membership]
) -> None:
    agent = make_member(tenant, Role.AGENT)
    response = owner_client.post(
        f"/members/{agent.pk}/role/", {"role": Role.VIEWER}, headers={"HX-Request": "true"}
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert body.strip().startswith("<tr")
    assert "Saved" in body
    assert _role(tenant, agent.pk) == Role.VIEWER


def test_the_last_owner_cannot_step_down_and_the_reason_is_shown_inline(
    owner_client: Client, owner: Membership, tenant: Tenant
) -> None:
    response = owner_client.post(f"/members/{owner.pk}/role/", {"role": Role.AGENT})
    assert response.status_code == 400
    assert b"A workspace needs at least one owner." in response.content
    assert b'class="has-error"' in response.content
    assert _role(tenant, owner.pk) == Role.OWNER

    htmx = owner_client.post(
        f"/members/{owner.pk}/role/", {"role": Role.AGENT}, headers={"HX-Request": "true"}
    )
    assert htmx.status_code == 200
    assert b"A workspace needs at least one owner." in htmx.content


def test_an_admin_cannot_touch_an_owner(
    admin_client: Client, owner: Membership, tenant: Tenant
) -> None:
    page = admin_client.get("/members/").content.decode()
    assert f"/members/{owner.pk}/remove/" not in page
    response = admin_client.post(f"/members/{owner.pk}/role/", {"role": Role.VIEWER})
    assert response.status_code == 400
    assert b"Your role cannot make that change." in response.content
    response = admin_client.post(f"/members/{owner.pk}/remove/")
    assert response.status_code == 400
    assert b"Only an owner can remove an owner." in response.content
    assert _role(tenant, owner.pk) == Role.OWNER


def test_an_admin_cannot_make_an_owner(
    admin_client: Client, tenant: Tenant, make_member: Callable[..., Membership]
) -> None:
    agent = make_member(tenant, Role.AGENT)
    response = admin_client.post(f"/members/{agent.pk}/role/", {"role": Role.OWNER})
    assert response.status_code == 400
    assert _role(tenant, agent.pk) == Role.AGENT


def test_unknown_role_is_refused(
    owner_client: Client, tenant: Tenant, make_member: Callable[..., Membership]
) -> None:
    agent = make_member(tenant, Role.AGENT)
    response = owner_client.post(f"/members/{agent.pk}/role/", {"role": "emperor"})
    assert response.status_code == 400
    assert _role(tenant, agent.pk) == Role.AGENT


def test_owner_removes_a_member(
    owner_client: Client, tenant: Tenant, make_member: Callable[..., Membership]
) -> None:
    agent = make_member(tenant, Role.AGENT)
    response = owner_client.post(f"/members/{agent.pk}/remove/")
    assert response.status_code == 302
    with scope(tenant=tenant):
        assert not membership_list().filter(pk=agent.pk).exists()


def test_invitation_link_is_shown_once(owner_client: Client, tenant: Tenant) -> None:
    response = owner_client.post(
        "/members/invitations/", {"email": "New.Person@Example.com", "role": Role.AGENT}
    )
    assert response.status_code == 200
    assert response["Cache-Control"].startswith("max-age=0")
    body = response.content.decode()
    match = re.search(r'value="(http://testserver/invitations/[^"/]+/)"', body)
    assert match, body
    link = match.group(1)
    assert "data-copy" in body
    with scope(tenant=tenant):
        assert [i.email for i in invitation_list_pending()] == ["new.person@example.com"]

    later = owner_client.get("/members/").content.decode()
    assert "new.person@example.com" in later
    assert link not in later


def test_invitation_form_errors_are_inline(owner_client: Client, tenant: Tenant) -> None:
    response = owner_client.post("/members/invitations/", {"email": "nope", "role": Role.AGENT})
    assert response.status_code == 400
    assert b"field--invalid" in response.content
    assert b"Enter a valid email address." in response.content
    with scope(tenant=tenant):
        assert not invitation_list_pending().exists()


def test_admin_cannot_invite_an_owner(admin_client: Client, tenant: Tenant) -> None:
    page = admin_client.get("/members/").content.decode()
    assert '<option value="owner"' not in page
    response = admin_client.post("/members/invitations/", {"email": "a@b.co", "role": Role.OWNER})
    assert response.status_code == 400
    with scope(tenant=tenant):
        assert not invitation_list_pending().exists()


def test_revoking_an_invitation_removes_it_from_the_list(
    owner_client: Client, owner: Membership, tenant: Tenant
) -> None:
    with scope(tenant=tenant):
        invitation, token = services.invitation_create(
            tenant=tenant,
            email="gone@example.com",
            role=Role.AGENT,
            invited_by=owner.user,
            acting_role=Role.OWNER,
        )
    assert b"gone@example.com" in owner_client.get("/members/").content
    response = owner_client.post(f"/members/invitations/{invitation.pk}/revoke/")
    assert response.status_code == 302
    assert b"gone@example.com</span>" not in owner_client.get("/members/").content
    response = Client().get(f"/invitations/{token}/")
    assert response.status_code == 410
    assert b"This invitation was withdrawn." in response.content


def test_viewer_sees_members_read_only(
    viewer_client: Client, owner: Membership, tenant: Tenant
) -> None:
    page = viewer_client.get("/members/").content.decode()
    assert owner.user.email in page
    assert "<select" not in page
    assert "Pending invitations" not in page
