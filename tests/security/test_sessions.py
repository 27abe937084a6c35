"""S3: session cookies are hardened, and old session ids stop working at each change of hands."""

from __future__ import annotations

import uuid
from importlib import import_module
from typing import Any

import pytest
from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib import auth
from django.http import HttpRequest
from django.test import Client, override_settings

from accounts.models import User
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"  # the factories' password
NEW_PASSWORD = "a different, longer passphrase"
LOGIN_URL = "/accounts/login/"
PRODUCTION_COOKIES = override_settings(
    SESSION_COOKIE_SECURE=True, CSRF_COOKIE_SECURE=True, CSRF_COOKIE_HTTPONLY=True
)
SessionStore = import_module(settings.SESSION_ENGINE).SessionStore


@pytest.fixture(autouse=True)
def _private_cache(settings: Any) -> None:
    # Login rate limits live in the cache; other test runs on the machine flush the shared Redis.
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": f"sessions-{uuid.uuid4()}",
        }
    }


@pytest.fixture
def person() -> User:
    user = UserFactory()
    EmailAddress.objects.create(user=user, email=user.email, primary=True, verified=True)
    return user


def _log_in(client: Client, user: User, password: str = PASSWORD) -> str:
    response = client.post(LOGIN_URL, {"login": user.email, "password": password})
    assert response.status_code == 302, response.content[:500]
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def _user_behind(session_key: str) -> object:
    """Who a request presenting this session id would be."""
    request = HttpRequest()
    request.session = SessionStore(session_key)
    return auth.get_user(request)


def test_session_and_csrf_cookies_carry_production_flags(person: User) -> None:
    client = Client()
    with PRODUCTION_COOKIES:
        csrf = client.get(LOGIN_URL).cookies[settings.CSRF_COOKIE_NAME]
        response = client.post(LOGIN_URL, {"login": person.email, "password": PASSWORD})

    session = response.cookies[settings.SESSION_COOKIE_NAME]
    assert session["secure"] is True
    assert session["httponly"] is True
    assert session["samesite"] == "Lax"
    assert csrf["secure"] is True
    assert csrf["samesite"] == "Lax"


def test_login_rotates_the_session_key(person: User) -> None:
    client = Client()
    before = client.session  # an anonymous session, as a visitor has before signing in
    before["seen_pricing"] = True
    before.save()
    anonymous_key = before.session_key

    key = _log_in(client, person)

    assert key != anonymous_key
    assert not SessionStore().exists(anonymous_key)
    assert _user_behind(key) == person


def test_logout_invalidates_the_old_session_id(person: User) -> None:
    client = Client()
    key = _log_in(client, person)

    client.post("/accounts/logout/")

    assert not SessionStore().exists(key)
    assert not _user_behind(key).is_authenticated
    replay = Client()
    replay.cookies[settings.SESSION_COOKIE_NAME] = key
    assert replay.get("/accounts/password/change/").status_code == 302  # sent to sign in


def test_password_change_signs_out_every_other_session(person: User) -> None:
    laptop, phone = Client(), Client()
    laptop_key = _log_in(laptop, person)
    phone_key = _log_in(phone, person)
    assert laptop_key != phone_key

    response = laptop.post(
        "/accounts/password/change/",
        {"oldpassword": PASSWORD, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )

    assert response.status_code == 302
    assert not _user_behind(phone_key).is_authenticated
    assert not _user_behind(laptop_key).is_authenticated  # ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE
    assert _user_behind(_log_in(Client(), person, NEW_PASSWORD)) == person


def test_sixth_wrong_password_is_refused_as_too_many_attempts(person: User) -> None:
    client = Client()
    for _ in range(5):
        response = client.post(LOGIN_URL, {"login": person.email, "password": "wrong guess"})
        assert response.status_code == 200
        assert b"Too many failed login attempts" not in response.content

    blocked = client.post(LOGIN_URL, {"login": person.email, "password": "wrong guess"})
    assert blocked.status_code in (200, 429)
    assert b"Too many failed login attempts" in blocked.content

    # Even the right password waits until the window has passed.
    right = client.post(LOGIN_URL, {"login": person.email, "password": PASSWORD})
    assert b"Too many failed login attempts" in right.content
    assert settings.SESSION_COOKIE_NAME not in right.cookies
    assert "_auth_user_id" not in client.session
