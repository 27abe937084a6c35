"""Onboarding pages, links and the accounts API across tenants, and agents limited to accounts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django_scopes import scope
from rest_framework.test import APIClient

from accounts import onboarding
from accounts.models import ApiKey, ApiScope, Membership, OnboardingAttempt, Role, Tenant
from tests.factories import InstagramAccountFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def b_objects(other_tenant: Tenant) -> dict[str, Any]:
    account = InstagramAccountFactory.create(tenant=other_tenant, username="b_brand")
    with scope(tenant=other_tenant):
        link, token = onboarding.onboarding_link_create(
            tenant=other_tenant, created_by=None, note="b note"
        )
        attempt = OnboardingAttempt.objects.create(
            tenant=other_tenant,
            login_kind="facebook",
            expires_at=link.expires_at,
            candidates=[{"ig_user_id": "1", "username": "b_candidate"}],
        )
    return {"account": account, "link": link, "token": token, "attempt": attempt}


def _b_urls(b: dict[str, Any], member: Membership) -> list[tuple[str, str]]:
    account, link = b["account"].pk, b["link"].pk
    return [
        ("GET", reverse("frontend:onboarding_account", args=[account])),
        ("POST", reverse("frontend:onboarding_account_check", args=[account])),
        ("GET", reverse("frontend:onboarding_account_disconnect", args=[account])),
        ("POST", reverse("frontend:onboarding_account_disconnect", args=[account])),
        ("POST", reverse("frontend:onboarding_reconnect_link", args=[account])),
        ("POST", reverse("frontend:onboarding_link_revoke", args=[link])),
        ("GET", reverse("frontend:onboarding_member_accounts", args=[member.pk])),
    ]


def test_every_onboarding_page_answers_404_for_another_tenants_ids(
    owner_client: Client,
    b_objects: dict[str, Any],
    other_tenant: Tenant,
    make_member: Callable[..., Membership],
) -> None:
    b_member = make_member(other_tenant, Role.AGENT)
    for method, url in _b_urls(b_objects, b_member):
        response = owner_client.get(url) if method == "GET" else owner_client.post(url)
        assert response.status_code == 404, (method, url, response.status_code)
    b_objects["account"].refresh_from_db()
    assert b_objects["account"].status == "active"
    with scope(tenant=other_tenant):
        b_objects["link"].refresh_from_db()
    assert b_objects["link"].revoked_at is None


def test_lists_show_nothing_of_another_tenant(
    owner_client: Client, b_objects: dict[str, Any]
) -> None:
    for name in ("frontend:instagram_accounts", "frontend:onboarding_links", "frontend:home"):
        text = owner_client.get(reverse(name)).content.decode()
        assert "b_brand" not in text
        assert "b note" not in text


def test_the_pick_page_shows_only_this_sessions_attempt_in_this_tenant(
    owner_client: Client, tenant: Tenant, b_objects: dict[str, Any]
) -> None:
    with scope(tenant=tenant):
        mine = OnboardingAttempt.objects.create(
            tenant=tenant,
            login_kind="facebook",
            expires_at=onboarding.timezone.now() + timedelta(minutes=5),
            candidates=[{"ig_user_id": "2", "username": "a_candidate"}],
        )
    url = reverse("frontend:onboarding_pick")
    # Not started in this session: back to the start.
    assert owner_client.get(url).status_code == 302
    session = owner_client.session
    session["instagram_onboarding"] = {"attempt_id": b_objects["attempt"].pk, "kind": "facebook"}
    session.save()
    response = owner_client.get(url)
    assert response.status_code == 302
    assert response["Location"] == reverse("frontend:onboarding_connect")
    session["instagram_onboarding"] = {"attempt_id": mine.pk, "kind": "facebook"}
    session.save()
    assert "a_candidate" in owner_client.get(url).content.decode()


def test_a_callback_without_this_sessions_state_connects_nothing(owner_client: Client) -> None:
    url = reverse("frontend:onboarding_callback_facebook")
    response = owner_client.get(url, {"code": "AQ-forged", "state": "forged"})
    assert response.status_code == 302
    session = owner_client.session
    session["instagram_onboarding"] = {"state": "the-real-state", "kind": "facebook"}
    session.save()
    response = owner_client.get(url, {"code": "AQ-forged", "state": "forged"})
    assert response.status_code == 400
    assert "could not be matched" in response.content.decode()


def test_an_unknown_or_used_client_link_says_so(client: Client, tenant: Tenant) -> None:
    assert client.get(reverse("frontend:onboarding_client", args=["nope"])).status_code == 404
    with scope(tenant=tenant):
        link, token = onboarding.onboarding_link_create(tenant=tenant, created_by=None)
        onboarding.onboarding_link_revoke(link=link)
    response = client.get(reverse("frontend:onboarding_client", args=[token]))
    assert response.status_code == 410
    assert "withdrawn" in response.content.decode()


def test_agents_cannot_connect_or_disconnect(agent_client: Client, tenant: Tenant) -> None:
    account = InstagramAccountFactory.create(tenant=tenant)
    assert agent_client.get(reverse("frontend:onboarding_connect")).status_code == 403
    disconnect = reverse("frontend:onboarding_account_disconnect", args=[account.pk])
    assert agent_client.post(disconnect).status_code == 403
    assert agent_client.get(reverse("frontend:onboarding_links")).status_code == 403


def test_an_agent_limited_to_one_account_sees_only_it_by_page_and_count(
    tenant: Tenant, make_member: Callable[..., Membership], login: Callable[..., Client]
) -> None:
    mine = InstagramAccountFactory.create(tenant=tenant, username="visible_brand")
    hidden = InstagramAccountFactory.create(tenant=tenant, username="hidden_brand")
    agent = make_member(tenant, Role.AGENT)
    with scope(tenant=tenant):
        onboarding.membership_set_account_access(
            membership=agent, limited=True, account_ids=[mine.pk]
        )
    client = login(agent.user)
    listing = client.get(reverse("frontend:instagram_accounts")).content.decode()
    assert "visible_brand" in listing
    assert "hidden_brand" not in listing
    assert client.get(reverse("frontend:onboarding_account", args=[mine.pk])).status_code == 200
    assert client.get(reverse("frontend:onboarding_account", args=[hidden.pk])).status_code == 404
    home = client.get(reverse("frontend:home"))
    assert "hidden_brand" not in home.content.decode()
    assert home.context["accounts_active"] == 1


def test_an_admin_limits_an_agent_from_the_members_pages(
    owner_client: Client, tenant: Tenant, make_member: Callable[..., Membership]
) -> None:
    account = InstagramAccountFactory.create(tenant=tenant)
    InstagramAccountFactory.create(tenant=tenant)
    agent = make_member(tenant, Role.AGENT)
    url = reverse("frontend:onboarding_member_accounts", args=[agent.pk])
    assert owner_client.get(url).status_code == 200
    response = owner_client.post(url, {"limited": "yes", "account": [str(account.pk)]})
    assert response.status_code == 302
    with scope(tenant=tenant):
        agent.refresh_from_db()
        assert agent.accounts_limited
        assert [a.pk for a in agent.allowed_accounts.all()] == [account.pk]


@pytest.mark.parametrize("value", ["\u00b2", "\u2460", "9" * 5000])
def test_an_account_id_that_is_not_ascii_digits_is_ignored(
    owner_client: Client, tenant: Tenant, make_member: Callable[..., Membership], value: str
) -> None:
    # str.isdigit() is true for "²" and "①", which int() refuses.
    account = InstagramAccountFactory.create(tenant=tenant)
    agent = make_member(tenant, Role.AGENT)
    url = reverse("frontend:onboarding_member_accounts", args=[agent.pk])
    response = owner_client.post(url, {"limited": "yes", "account": [value, str(account.pk)]})
    assert response.status_code == 302
    with scope(tenant=tenant):
        agent.refresh_from_db()
        assert [a.pk for a in agent.allowed_accounts.all()] == [account.pk]


# -- the partner API ---------------------------------------------------------------------------


def test_the_accounts_api_lists_and_shows_health_within_the_keys_tenant(
    api_client: APIClient, tenant: Tenant, b_objects: dict[str, Any]
) -> None:
    account = InstagramAccountFactory.create(
        tenant=tenant, username="a_brand", missing_permissions=["instagram_manage_messages"]
    )
    listed = api_client.get("/api/v1/accounts").json()
    assert [a["username"] for a in listed["results"]] == ["a_brand"]
    detail = api_client.get(f"/api/v1/accounts/{account.pk}").json()
    assert detail["health"]["status"] == "active"
    assert detail["health"]["missing_permissions"] == ["instagram_manage_messages"]
    assert "access_token" not in str(detail)
    other = api_client.get(f"/api/v1/accounts/{b_objects['account'].pk}")
    missing = api_client.get("/api/v1/accounts/2147000001")
    assert other.status_code == missing.status_code == 404
    assert other.json() == missing.json()


def test_the_onboarding_links_api_creates_and_lists_links(
    api_client: APIClient, b_objects: dict[str, Any]
) -> None:
    created = api_client.post(
        "/api/v1/onboarding-links", {"note": "Acme", "expires_in_days": 3}, format="json"
    )
    assert created.status_code == 201
    body = created.json()
    assert body["state"] == "pending"
    assert "/connect/" in body["url"]
    listed = api_client.get("/api/v1/onboarding-links").json()["results"]
    assert [link["note"] for link in listed] == ["Acme"]
    assert "url" not in listed[0]
    # A reconnect link for another tenant's account is refused like a missing one.
    refused = api_client.post(
        "/api/v1/onboarding-links", {"account_id": b_objects["account"].pk}, format="json"
    )
    assert refused.status_code == 400


def test_the_onboarding_links_api_needs_the_write_scope(
    tenant: Tenant, make_api_key: Callable[..., tuple[ApiKey, str]]
) -> None:
    _, secret = make_api_key(tenant, [ApiScope.ACCOUNTS_READ])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert client.get("/api/v1/onboarding-links").status_code == 200
    assert client.post("/api/v1/onboarding-links", {}, format="json").status_code == 403


def test_the_new_endpoints_are_in_the_openapi_schema(client: Client) -> None:
    schema = client.get("/api/v1/schema/", HTTP_ACCEPT="application/json").content.decode()
    for path in ("/api/v1/accounts", "/api/v1/accounts/{id}", "/api/v1/onboarding-links"):
        assert path in schema
