"""Signing up, verifying the email address and logging in."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.test import Client
from django_scopes import scope

from accounts import selectors
from accounts.models import Role, Tenant, User
from tests.frontend.conftest import PASSWORD

pytestmark = pytest.mark.django_db

SIGNUP = "/accounts/signup/"
LOGIN = "/accounts/login/"


def _sign_up(client: Client, email: str, workspace: str = "Northwind Social") -> None:
    response = client.post(
        SIGNUP,
        {"email": email, "workspace": workspace, "password1": PASSWORD, "password2": PASSWORD},
    )
    assert response.status_code == 302, response.content.decode()[:2000]


def _confirmation_link(email: str) -> str:
    message = next(m for m in reversed(mail.outbox) if email in m.to)
    match = re.search(r"https?://[^\s]+/accounts/confirm-email/[^\s]+/", message.body)
    assert match, message.body
    return match.group(0)


def test_signup_creates_the_workspace_with_the_person_as_owner_and_sends_a_verification_email(
    client: Client,
) -> None:
    _sign_up(client, "founder@example.com", workspace="Northwind Social")

    user = User.objects.get(email="founder@example.com")
    tenant = Tenant.objects.get(name="Northwind Social")
    with scope(tenant=tenant):
        memberships = list(selectors.membership_list())
    assert [(m.user_id, m.role) for m in memberships] == [(user.pk, Role.OWNER)]
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["founder@example.com"]
    assert "/accounts/confirm-email/" in mail.outbox[0].body


def test_login_is_refused_until_the_email_is_verified_then_works(client: Client) -> None:
    _sign_up(client, "founder@example.com")
    link = _confirmation_link("founder@example.com")

    fresh = Client()
    response = fresh.post(LOGIN, {"login": "founder@example.com", "password": PASSWORD})
    assert response.status_code == 302
    assert "confirm-email" in response["Location"]
    assert fresh.get("/").status_code == 302  # still not logged in

    response = fresh.get(link)
    assert response.status_code == 200
    assert b"Confirm email address" in response.content
    response = fresh.post(link)
    assert response.status_code == 302

    response = fresh.post(LOGIN, {"login": "founder@example.com", "password": PASSWORD})
    assert response.status_code == 302
    home = fresh.get("/")
    assert home.status_code == 200
    assert b"Northwind Social" in home.content


def test_wrong_password_shows_an_inline_error(client: Client, verified_user: User) -> None:
    response = client.post(LOGIN, {"login": verified_user.email, "password": "not it"})
    assert response.status_code == 200
    assert b'class="alert alert--danger"' in response.content


def test_signup_errors_are_shown_next_to_the_fields(client: Client) -> None:
    response = client.post(
        SIGNUP, {"email": "not-an-email", "password1": "x", "password2": "y", "workspace": "W"}
    )
    assert response.status_code == 200
    assert b"field--invalid" in response.content
    assert not User.objects.filter(email="not-an-email").exists()


@pytest.mark.parametrize(
    "path",
    [LOGIN, SIGNUP, "/accounts/password/reset/", "/accounts/confirm-email/", "/accounts/logout/"],
)
def test_auth_pages_render_with_the_product_layout(client: Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code in (200, 302)
    if response.status_code == 200:
        assert b"frontend/app.css" in response.content
        assert b"Relay" in response.content


def test_signup_page_asks_for_the_workspace_name(client: Client) -> None:
    response = client.get(SIGNUP)
    assert b'name="workspace"' in response.content


def test_password_reset_sends_a_link(client: Client, verified_user: User) -> None:
    response = client.post("/accounts/password/reset/", {"email": verified_user.email})
    assert response.status_code == 302
    assert any("/accounts/password/reset/key/" in m.body for m in mail.outbox)
    assert client.get(response["Location"]).status_code == 200


def test_logout_ends_the_session(owner_client: Client) -> None:
    assert owner_client.get("/").status_code == 200
    response = owner_client.post("/accounts/logout/")
    assert response.status_code == 302
    assert owner_client.get("/").status_code == 302


def test_pages_send_logged_out_people_to_login(client: Client) -> None:
    for path in ["/", "/members/", "/api-keys/", "/settings/", "/instagram-accounts/"]:
        response = client.get(path)
        assert response.status_code == 302
        assert response["Location"].startswith(LOGIN)
