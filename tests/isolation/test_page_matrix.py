"""T1 and T8 for the web pages: every page, as A's owner and A's agent, with B's ids.

Every non-API URL pattern (walked from the resolver at test time) is either in PAGES, which
says how to fill its parameters with tenant B's ids, or under an excluded prefix with a reason.
Then, as A's owner and as A's agent:

- a page with an object in its path answers 404 for GET and POST with B's id, exactly as for
  an id no row has (a 403 or 405 is accepted only when the page answers it for every id: the
  person lacks the capability, or the page takes no such method);
- a page without an object answers 200 or a redirect (never a 5xx), POSTs carrying B's ids in
  the body change nothing of B's, and no response shows any of B's data;
- afterwards every row B owns is byte-for-byte unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import User
from accounts.tenancy import SESSION_TENANT_KEY
from tests.isolation.conftest import World
from tests.isolation.seed import MISSING_ID, TenantSeed, checksum
from tests.isolation.structure import walk_urls

# Prefixes that are not a member's pages, each with its reason (and its own test below).
EXCLUDED = {
    "/accounts/": "sign-in, sign-up and a person's own account (allauth)",
    "/static/": "static files",
    "/platform-admin/": "platform staff only: members are sent to its login",
    "/healthz": "readiness probe, no tenant data",
    "/livez": "liveness probe, no tenant data",
    "/readyz": "web readiness probe, no tenant data",
    "/api/": "the partner API: test_api_matrix.py",
    "/webhooks/": "Meta's signed deliveries, no person's session",
}

MISSING_TOKEN = "no-such-invitation-token-0000000000000000000"


@dataclass(frozen=True)
class Page:
    # path parameter -> the model whose row of tenant B fills it
    ids: dict[str, str] = field(default_factory=dict)
    # path parameter -> a secret-like value of B's that must not work (tokens in links)
    tokens: dict[str, Callable[[TenantSeed], str]] = field(default_factory=dict)
    # POST body given the tenant whose ids to use (None: a missing object's ids)
    post: Callable[[TenantSeed | None], dict[str, Any]] | None = None


def _b_ids(seed: TenantSeed | None) -> dict[str, Any]:
    tenant_id = seed.tenant.pk if seed else MISSING_ID
    return {"tenant": tenant_id, "tenant_id": tenant_id}


PAGES: dict[str, Page] = {
    # Pages about one object of the workspace.
    "/members/{membership_id}/role/": Page(
        ids={"membership_id": "accounts.Membership"}, post=lambda s: {"role": "admin"}
    ),
    "/members/{membership_id}/remove/": Page(ids={"membership_id": "accounts.Membership"}),
    "/members/invitations/{invitation_id}/revoke/": Page(
        ids={"invitation_id": "accounts.Invitation"}
    ),
    "/api-keys/{api_key_id}/revoke/": Page(ids={"api_key_id": "accounts.ApiKey"}),
    # The invitation link: its token is the key. B's stored hash is not a token.
    "/invitations/{token}/": Page(
        tokens={"token": lambda s: s.objects["accounts.Invitation"].token_hash}  # type: ignore[attr-defined]
    ),
    # Pages without an object in the path; POSTs carry B's ids in the body.
    "/": Page(),
    "/instagram-accounts/": Page(),
    "/workspaces/switch/": Page(post=_b_ids),
    "/workspaces/new/": Page(post=lambda s: {"name": "Side project", **_b_ids(s)}),
    "/members/": Page(),
    "/members/invitations/": Page(
        post=lambda s: {"email": "someone@example.com", "role": "agent", **_b_ids(s)}
    ),
    "/api-keys/": Page(),
    "/api-keys/new/": Page(
        post=lambda s: {"name": "Helpdesk", "scopes": ["members:read"], **_b_ids(s)}
    ),
    "/settings/": Page(post=lambda s: {"name": "Agency A renamed", **_b_ids(s)}),
    # Instagram accounts: connecting, health, client links, agents' account access.
    "/instagram-accounts/{account_id}/": Page(ids={"account_id": "accounts.InstagramAccount"}),
    "/instagram-accounts/{account_id}/check/": Page(
        ids={"account_id": "accounts.InstagramAccount"}
    ),
    "/instagram-accounts/{account_id}/disconnect/": Page(
        ids={"account_id": "accounts.InstagramAccount"}, post=lambda s: {"conversations": "erase"}
    ),
    "/instagram-accounts/{account_id}/reconnect-link/": Page(
        ids={"account_id": "accounts.InstagramAccount"}
    ),
    "/instagram-accounts/links/{link_id}/revoke/": Page(ids={"link_id": "accounts.OnboardingLink"}),
    "/members/{membership_id}/accounts/": Page(
        ids={"membership_id": "accounts.Membership"},
        post=lambda s: {
            "limited": "yes",
            "account": [s.id_of("accounts.InstagramAccount") if s else MISSING_ID],
        },
    ),
    "/instagram-accounts/connect/": Page(post=lambda s: {"login_kind": "facebook", **_b_ids(s)}),
    "/instagram-accounts/connect/pick/": Page(
        post=lambda s: {"account": ["17841400000000009"], **_b_ids(s)}
    ),
    "/instagram-accounts/links/": Page(post=lambda s: {"note": "for a client", **_b_ids(s)}),
    # Compliance: contact export and erasure, retention, audit log, workspace deletion.
    "/compliance/contacts/{contact_id}/export/": Page(ids={"contact_id": "messaging.Contact"}),
    "/compliance/contacts/{contact_id}/erase/": Page(ids={"contact_id": "messaging.Contact"}),
    "/compliance/": Page(post=lambda s: {"days": "400", **_b_ids(s)}),
    "/compliance/audit-log/": Page(),
    # The typed confirmation names B: refused, and A's workspace is not deleted either.
    "/compliance/delete-workspace/": Page(
        post=lambda s: {"confirm": s.tenant.name if s else "missing", **_b_ids(s)}
    ),
    # Shown only to the person who asked (the job outlives its workspace).
    "/compliance/workspace-deletions/{job_id}/": Page(ids={"job_id": "accounts.TenantDeletionJob"}),
    # Meta's data deletion status page: its code is the key; a workspace's tag is no code.
    "/data-deletion/{code}/": Page(tokens={"code": lambda s: s.tag}),
    "/onboarding/callback/facebook/": Page(),
    "/onboarding/callback/instagram/": Page(),
    # A client's link: its token is the key. B's stored hash is not a token.
    "/connect/{token}/": Page(
        tokens={"token": lambda s: s.objects["accounts.OnboardingLink"].token_hash}  # type: ignore[attr-defined]
    ),
    "/connect/{token}/accounts/": Page(
        tokens={"token": lambda s: s.objects["accounts.OnboardingLink"].token_hash}  # type: ignore[attr-defined]
    ),
    # The inbox: a conversation, its fragments and team-work actions, comments.
    "/inbox/": Page(),
    "/inbox/list/": Page(),
    "/inbox/poll/": Page(),
    "/inbox/{conversation_id}/": Page(ids={"conversation_id": "messaging.Conversation"}),
    "/inbox/{conversation_id}/thread/": Page(ids={"conversation_id": "messaging.Conversation"}),
    "/inbox/{conversation_id}/earlier/": Page(ids={"conversation_id": "messaging.Conversation"}),
    "/inbox/{conversation_id}/assign/": Page(
        ids={"conversation_id": "messaging.Conversation"}, post=lambda s: {"member": "me"}
    ),
    "/inbox/{conversation_id}/status/": Page(
        ids={"conversation_id": "messaging.Conversation"}, post=lambda s: {"status": "resolved"}
    ),
    "/inbox/{conversation_id}/notes/": Page(
        ids={"conversation_id": "messaging.Conversation"}, post=lambda s: {"body": "a note"}
    ),
    "/inbox/{conversation_id}/labels/": Page(
        ids={"conversation_id": "messaging.Conversation"},
        post=lambda s: {"label": s.id_of("messaging.Label") if s else MISSING_ID},
    ),
    "/inbox/{conversation_id}/labels/{label_id}/remove/": Page(
        ids={"conversation_id": "messaging.Conversation", "label_id": "messaging.Label"}
    ),
    "/inbox/{conversation_id}/send/": Page(
        ids={"conversation_id": "messaging.Conversation"}, post=lambda s: {"text": "Hello"}
    ),
    "/inbox/{conversation_id}/messages/{message_id}/retry/": Page(
        ids={"conversation_id": "messaging.Conversation", "message_id": "messaging.Message"}
    ),
    "/inbox/accounts/{account_id}/comments/": Page(ids={"account_id": "accounts.InstagramAccount"}),
    "/inbox/comments/{comment_id}/reply/": Page(
        ids={"comment_id": "messaging.Comment"}, post=lambda s: {"text": "Sent you a DM"}
    ),
    "/inbox/{conversation_id}/mode/": Page(
        ids={"conversation_id": "messaging.Conversation"}, post=lambda s: {"mode": "human"}
    ),
    # Automation: an account's rules, business hours, ice breakers and menu; a rule's pages.
    "/automation/": Page(),
    "/automation/accounts/{account_id}/": Page(ids={"account_id": "accounts.InstagramAccount"}),
    "/automation/accounts/{account_id}/rules/new/": Page(
        ids={"account_id": "accounts.InstagramAccount"},
        post=lambda s: {
            "name": "Price answer",
            "trigger": "keyword",
            "keywords": "price",
            "cooldown_minutes": "60",
            "action-0-type": "reply_text",
            "action-0-text": "Prices are on our site.",
        },
    ),
    "/automation/accounts/{account_id}/hours/": Page(
        ids={"account_id": "accounts.InstagramAccount"},
        post=lambda s: {"timezone": "Europe/Lisbon", "hours-mon": "09:00-17:00"},
    ),
    "/automation/accounts/{account_id}/profile/": Page(
        ids={"account_id": "accounts.InstagramAccount"},
        post=lambda s: {"ice-0-question": "Where do you ship?", "ice-0-payload": "SHIP"},
    ),
    "/automation/rules/{rule_id}/": Page(
        ids={"rule_id": "automation.Rule"},
        post=lambda s: {
            "name": "Renamed",
            "trigger": "keyword",
            "keywords": "price",
            "cooldown_minutes": "60",
            "action-0-type": "reply_text",
            "action-0-text": "Prices are on our site.",
        },
    ),
    "/automation/rules/{rule_id}/toggle/": Page(ids={"rule_id": "automation.Rule"}),
    "/automation/rules/{rule_id}/move/": Page(
        ids={"rule_id": "automation.Rule"}, post=lambda s: {"direction": "up"}
    ),
    "/automation/rules/{rule_id}/delete/": Page(ids={"rule_id": "automation.Rule"}),
    "/automation/rules/{rule_id}/history/": Page(ids={"rule_id": "automation.Rule"}),
    # Inbox settings: saved replies, labels, messaging (bot disclosure).
    "/settings/replies/": Page(post=lambda s: {"shortcut": "hours", "body": "9 to 5"}),
    "/settings/replies/{reply_id}/": Page(
        ids={"reply_id": "messaging.CannedReply"}, post=lambda s: {"shortcut": "x", "body": "y"}
    ),
    "/settings/replies/{reply_id}/delete/": Page(ids={"reply_id": "messaging.CannedReply"}),
    "/settings/labels/": Page(post=lambda s: {"name": "Urgent", "color": "red"}),
    "/settings/labels/{label_id}/delete/": Page(ids={"label_id": "messaging.Label"}),
    "/settings/messaging/": Page(
        post=lambda s: {
            "disclosure_text": "Automated assistant",
            "account": s.id_of("accounts.InstagramAccount") if s else MISSING_ID,
        }
    ),
}

CSRF = re.compile(r"[A-Za-z0-9]{64}")


def _pages() -> list[str]:
    return sorted(route for route, _ in walk_urls() if not route.startswith(tuple(EXCLUDED)))


def _has_object(page: Page) -> bool:
    return bool(page.ids or page.tokens)


def _url(route: str, page: Page, seed: TenantSeed | None) -> str:
    values: dict[str, Any] = {}
    for param, label in page.ids.items():
        values[param] = seed.id_of(label) if seed else MISSING_ID
    for param, make in page.tokens.items():
        values[param] = make(seed) if seed else MISSING_TOKEN
    return route.format(**values)


def _client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _request(user: User, method: str, url: str, data: dict[str, Any]) -> tuple[int, str, Client]:
    client = _client(user)
    response = client.get(url) if method == "GET" else client.post(url, data)
    return response.status_code, CSRF.sub("-", response.content.decode(errors="replace")), client


def _leaks(text: str, b: TenantSeed) -> list[str]:
    return sorted(value for value in b.fingerprints() if value in text)


# -- coverage ------------------------------------------------------------------------------


def test_every_page_is_in_the_matrix() -> None:
    pages = _pages()
    assert "/" in pages
    assert sorted(set(pages) - set(PAGES)) == [], "add these pages to PAGES"
    assert sorted(set(PAGES) - set(pages)) == [], "these PAGES no longer exist"


def test_every_path_parameter_is_filled() -> None:
    unfilled = {
        route: sorted(set(re.findall(r"\{(\w+)\}", route)) - set(page.ids) - set(page.tokens))
        for route, page in PAGES.items()
    }
    assert {route: params for route, params in unfilled.items() if params} == {}


# -- the matrix ----------------------------------------------------------------------------


def _check_object_page(route: str, page: Page, world: World) -> list[str]:
    failures = []
    for role, member in (("owner", world.a.owner), ("agent", world.a.agent)):
        for method in ("GET", "POST"):
            url_b, url_missing = _url(route, page, world.b), _url(route, page, None)
            body_b = page.post(world.b) if page.post else _b_ids(world.b)
            body_missing = page.post(None) if page.post else _b_ids(None)
            status, text, _ = _request(member.user, method, url_b, body_b)
            missing_status, missing_text, _ = _request(
                member.user, method, url_missing, body_missing
            )
            where = f"{role} {method} {url_b}"
            if leaked := _leaks(text, world.b):
                failures.append(f"{where} shows B's data: {leaked}")
            if (status, text) != (missing_status, missing_text):
                failures.append(f"{where} answered {status}, a missing id {missing_status}")
            allowed = {404, 405} if role == "owner" else {403, 404, 405}
            if status not in allowed:
                failures.append(f"{where} answered {status}")
    return failures


def _check_plain_page(route: str, page: Page, world: World) -> list[str]:
    failures = []
    for role, member in (("owner", world.a.owner), ("agent", world.a.agent)):
        status, text, _ = _request(member.user, "GET", route, {})
        if leaked := _leaks(text, world.b):
            failures.append(f"{role} GET {route} shows B's data: {leaked}")
        allowed = {200, 302, 405} if role == "owner" else {200, 302, 403, 405}
        if status not in allowed:
            failures.append(f"{role} GET {route} answered {status}")
        if page.post is None:
            continue
        status, text, client = _request(member.user, "POST", route, page.post(world.b))
        if leaked := _leaks(text, world.b):
            failures.append(f"{role} POST {route} shows B's data: {leaked}")
        if status >= 500:
            failures.append(f"{role} POST {route} answered {status}")
        if client.session.get(SESSION_TENANT_KEY) == world.b.tenant.pk:
            failures.append(f"{role} POST {route} made B the active workspace")
    return failures


def test_members_of_a_cannot_reach_b_through_any_page(world: World) -> None:
    failures: list[str] = []
    for route in _pages():
        page = PAGES.get(route)
        if page is None:
            continue  # reported by test_every_page_is_in_the_matrix
        check = _check_object_page if _has_object(page) else _check_plain_page
        failures += check(route, page, world)
    assert failures == []
    assert checksum(world.b) == world.b_checksum


@pytest.mark.parametrize(
    ("route", "label"),
    [(route, label) for route, page in PAGES.items() for label in page.ids.values()],
)
def test_own_objects_are_reachable_so_the_404s_mean_something(
    world: World, route: str, label: str
) -> None:
    page = PAGES[route]
    url = _url(route, page, world.a)
    status, _, _ = _request(world.a.owner.user, "GET", url, {})
    if status == 405:  # an action page: it takes a POST
        status, _, _ = _request(
            world.a.owner.user, "POST", url, page.post(world.a) if page.post else {}
        )
    assert status in (200, 302)


def test_switching_to_another_tenant_is_refused(world: World) -> None:
    client = _client(world.a.owner.user)
    client.get("/")
    response = client.post(reverse("frontend:tenant_switch"), {"tenant_id": world.b.tenant.pk})
    assert response.status_code in (403, 404)
    assert client.session.get(SESSION_TENANT_KEY) == world.a.tenant.pk


# -- excluded prefixes ---------------------------------------------------------------------


def test_platform_admin_sends_members_to_its_login(world: World) -> None:
    for member in (world.a.owner, world.a.agent):
        response = _client(member.user).get("/platform-admin/")
        assert response.status_code == 302
        assert response["Location"].startswith("/platform-admin/login/")


def test_meta_webhook_refuses_unsigned_deliveries(world: World) -> None:
    client = _client(world.a.owner.user)
    body = f'{{"object": "instagram", "entry": [{{"id": "{world.b.tenant.pk}"}}]}}'
    assert client.post("/webhooks/meta", body, content_type="application/json").status_code in (
        400,
        401,
        403,
    )
    assert client.get("/webhooks/meta").status_code in (400, 403)
    assert checksum(world.b) == world.b_checksum
