"""Every page renders for every role, and shows only what the role allows."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client

from accounts.models import Role, Tenant
from tests.factories import InstagramAccountFactory, UserFactory

pytestmark = pytest.mark.django_db

EVERYONE = ["/", "/instagram-accounts/", "/members/", "/settings/", "/workspaces/new/"]
MANAGERS_ONLY = ["/api-keys/", "/api-keys/new/"]


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("path", EVERYONE)
def test_page_renders_for_every_role(
    client_as: Callable[[str], Client], role: str, path: str
) -> None:
    response = client_as(role).get(path)
    assert response.status_code == 200
    assert b"Agency A" in response.content


@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN])
@pytest.mark.parametrize("path", MANAGERS_ONLY)
def test_api_key_pages_render_for_owners_and_admins(
    client_as: Callable[[str], Client], role: str, path: str
) -> None:
    assert client_as(role).get(path).status_code == 200


@pytest.mark.parametrize("role", [Role.AGENT, Role.VIEWER])
@pytest.mark.parametrize("path", MANAGERS_ONLY)
def test_api_key_pages_answer_403_to_agents_and_viewers(
    client_as: Callable[[str], Client], role: str, path: str
) -> None:
    response = client_as(role).get(path)
    assert response.status_code == 403
    assert b"do that here" in response.content


@pytest.mark.parametrize(
    ("role", "sees_keys", "manages_members"),
    [
        (Role.OWNER, True, True),
        (Role.ADMIN, True, True),
        (Role.AGENT, False, False),
        (Role.VIEWER, False, False),
    ],
)
def test_navigation_and_controls_follow_the_role(
    client_as: Callable[[str], Client], role: str, sees_keys: bool, manages_members: bool
) -> None:
    client = client_as(role)
    home = client.get("/").content.decode()
    assert ('href="/api-keys/"' in home) is sees_keys
    for label in ("Inbox", "Accounts", "Members", "Settings"):
        assert f"<span>{label}</span>" in home
    members = client.get("/members/").content.decode()
    assert ("Invite someone" in members) is manages_members
    assert ("/remove/" in members) is manages_members
    settings = client.get("/settings/").content.decode()
    assert ("Save changes" in settings) is manages_members


def test_home_shows_an_empty_state_without_instagram_accounts(owner_client: Client) -> None:
    response = owner_client.get("/")
    assert b"No Instagram accounts connected yet" in response.content


def test_home_lists_connected_accounts_with_their_status(
    owner_client: Client, tenant: Tenant, other_tenant: Tenant
) -> None:
    InstagramAccountFactory(tenant=tenant, username="brand_one")
    InstagramAccountFactory(tenant=tenant, username="brand_two", status="needs_reauth")
    InstagramAccountFactory(tenant=other_tenant, username="not_ours")
    content = owner_client.get("/").content.decode()
    assert "@brand_one" in content
    assert "@brand_two" in content
    assert "status--needs_reauth" in content
    assert "not_ours" not in content
    assert "No Instagram accounts connected yet" not in content
    accounts = owner_client.get("/instagram-accounts/").content.decode()
    assert "@brand_one" in accounts
    assert "not_ours" not in accounts


def test_home_counts_members(owner_client: Client, tenant: Tenant, make_member) -> None:  # type: ignore[no-untyped-def]
    make_member(tenant, Role.AGENT)
    make_member(tenant, Role.VIEWER)
    response = owner_client.get("/")
    assert b'data-testid="stat-members">3<' in response.content


def test_a_person_without_a_workspace_is_offered_to_create_one(login) -> None:  # type: ignore[no-untyped-def]
    client = login(UserFactory())
    response = client.get("/")
    assert response.status_code == 200
    assert b"not in a workspace yet" in response.content
    assert client.get("/members/").status_code == 302
    response = client.post("/workspaces/new/", {"name": "Fresh Agency"})
    assert response.status_code == 302
    assert b"Fresh Agency" in client.get("/").content


def test_home_page_is_fixed_query_count(
    owner_client: Client,
    tenant: Tenant,
    django_assert_max_num_queries,  # type: ignore[no-untyped-def]
) -> None:
    for _ in range(5):
        InstagramAccountFactory(tenant=tenant)
    with django_assert_max_num_queries(12):
        assert owner_client.get("/").status_code == 200


def test_members_page_is_fixed_query_count(
    owner_client: Client,
    tenant: Tenant,
    make_member,  # type: ignore[no-untyped-def]
    django_assert_max_num_queries,  # type: ignore[no-untyped-def]
) -> None:
    for _ in range(6):
        make_member(tenant, Role.AGENT)
    with django_assert_max_num_queries(12):
        assert owner_client.get("/members/").status_code == 200
