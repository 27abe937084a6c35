"""Accepting an invitation: logged out, through signup, logged in; and refused links."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone
from django_scopes import scope

from accounts import services, tenancy
from accounts.forms import PENDING_INVITATION_KEY
from accounts.models import Membership, Role, Tenant, User
from tests.frontend.conftest import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture
def invite(owner: Membership, tenant: Tenant):  # type: ignore[no-untyped-def]
    def make(role: str = Role.AGENT, email: str = "colleague@example.com") -> str:
        with scope(tenant=tenant):
            _, token = services.invitation_create(
                tenant=tenant, email=email, role=role, invited_by=owner.user, acting_role="owner"
            )
        return token

    return make


def _membership(user: User, tenant: Tenant) -> Membership | None:
    return tenancy.membership_of_user_in(user, tenant.pk)


def test_logged_out_visitor_is_offered_signup_or_login_and_the_token_is_remembered(
    client: Client,
    invite,  # type: ignore[no-untyped-def]
) -> None:
    token = invite(Role.VIEWER)
    response = client.get(f"/invitations/{token}/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "Join Agency A" in body
    assert "Viewer" in body
    assert 'href="/accounts/signup/"' in body
    assert 'href="/accounts/login/"' in body
    assert client.session[PENDING_INVITATION_KEY] == token


def test_signup_through_an_invitation_joins_with_the_invited_role(
    client: Client,
    invite,
    tenant: Tenant,  # type: ignore[no-untyped-def]
) -> None:
    token = invite(Role.ADMIN)
    client.get(f"/invitations/{token}/")

    signup = client.get("/accounts/signup/").content.decode()
    assert "Join Agency A" in signup
    assert 'name="workspace"' not in signup
    response = client.post(
        "/accounts/signup/",
        {"email": "colleague@example.com", "password1": PASSWORD, "password2": PASSWORD},
    )
    assert response.status_code == 302
    user = User.objects.get(email="colleague@example.com")
    assert tenancy.memberships_of_user(user) == []  # no workspace of their own

    link = re.search(r"https?://\S+/accounts/confirm-email/\S+/", mail.outbox[-1].body)
    assert link
    client.post(link.group(0))
    response = client.post(
        "/accounts/login/", {"login": "colleague@example.com", "password": PASSWORD}
    )
    assert response.status_code == 302
    assert response["Location"] == f"/invitations/{token}/"

    page = client.get(response["Location"])
    assert page.status_code == 200
    assert b"Accept and open workspace" in page.content
    assert b'data-testid="invitation-workspace">Agency A<' in page.content

    response = client.post(f"/invitations/{token}/")
    assert response.status_code == 302
    assert response["Location"] == "/"
    membership = _membership(user, tenant)
    assert membership is not None
    assert membership.role == Role.ADMIN
    assert PENDING_INVITATION_KEY not in client.session
    home = client.get("/").content.decode()
    assert "Welcome to Agency A" in home
    assert 'data-testid="current-workspace">Agency A<' in home


def test_logged_in_person_accepts_and_the_workspace_becomes_active(
    invite,
    tenant: Tenant,
    other_tenant: Tenant,
    make_member,
    login,  # type: ignore[no-untyped-def]
) -> None:
    elsewhere = make_member(other_tenant, Role.OWNER)
    client = login(elsewhere.user)
    token = invite(Role.AGENT)
    assert b"Agency B" in client.get("/").content
    response = client.post(f"/invitations/{token}/")
    assert response.status_code == 302
    assert _membership(elsewhere.user, tenant).role == Role.AGENT  # type: ignore[union-attr]
    assert b'data-testid="current-workspace">Agency A<' in client.get("/").content


def test_an_invitation_works_only_once(
    invite,
    make_member,
    tenant: Tenant,
    other_tenant: Tenant,
    login,  # type: ignore[no-untyped-def]
) -> None:
    token = invite()
    first = login(make_member(other_tenant).user)
    assert first.post(f"/invitations/{token}/").status_code == 302

    second_user = make_member(other_tenant).user
    second = login(second_user)
    response = second.get(f"/invitations/{token}/")
    assert response.status_code == 410
    assert b"This invitation was already used." in response.content
    response = second.post(f"/invitations/{token}/")
    assert response.status_code == 410
    assert _membership(second_user, tenant) is None


def test_an_expired_invitation_shows_a_clear_page(
    client: Client,
    invite,
    tenant: Tenant,  # type: ignore[no-untyped-def]
) -> None:
    token = invite()
    invitation = tenancy.invitation_by_token(token)
    assert invitation is not None
    with scope(tenant=tenant):
        invitation.expires_at = timezone.now() - timedelta(minutes=1)
        invitation.save(update_fields=["expires_at"])
    response = client.get(f"/invitations/{token}/")
    assert response.status_code == 410
    assert b"This invitation has expired. Ask for a new one." in response.content
    assert PENDING_INVITATION_KEY not in client.session


def test_an_unknown_token_answers_404(client: Client, owner_client: Client) -> None:
    for c in (client, owner_client):
        response = c.get("/invitations/not-a-real-token/")
        assert response.status_code == 404
        assert b"This invitation link is not valid." in response.content
        assert c.post("/invitations/not-a-real-token/").status_code == 404


def test_accepting_when_already_a_member_keeps_the_role(
    owner_client: Client,
    owner: Membership,
    invite,
    tenant: Tenant,  # type: ignore[no-untyped-def]
) -> None:
    token = invite(Role.VIEWER)
    page = owner_client.get(f"/invitations/{token}/")
    assert b"already a member" in page.content
    owner_client.post(f"/invitations/{token}/")
    assert _membership(owner.user, tenant).role == Role.OWNER  # type: ignore[union-attr]
