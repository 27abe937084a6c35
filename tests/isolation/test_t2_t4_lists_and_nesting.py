"""T2, T3 and T4: lists, writable relations and nested routes, as tenant A with B's ids.

- T2: every list (partner API and inbox) asked with B's ids as filters, B's words as search
  terms, orderings by field names and the largest page shows 0 of B's objects, and the counts
  it shows are A's alone.
- T3: writes naming B's conversation, label, assignee or account from A's side answer 400/404
  and change 0 rows in either tenant.
- T4: nested routes mixing one tenant's parent with the other's child answer 404, exactly as
  for an id no row has.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.test import Client
from django.urls import Resolver404, resolve
from django.utils import timezone
from django_scopes import scope, scopes_disabled
from rest_framework.test import APIClient

from messaging.models import Conversation
from tests.isolation.conftest import World
from tests.isolation.seed import MISSING_ID, TenantSeed, checksum

HTMX = {"HTTP_HX_REQUEST": "true"}
CSRF = re.compile(r"[A-Za-z0-9]{64}")
ORDERINGS = ["id", "-id", "created_at", "-updated_at", "tenant", "tenant_id", "account", "text"]


@pytest.fixture
def listed(world: World) -> World:
    """Both tenants' conversations have a message, an open window and one unread message, so
    they show in every list and in every count."""
    now = timezone.now()
    with scopes_disabled():
        Conversation.objects.filter(
            pk__in=[
                world.a.id_of("messaging.Conversation"),
                world.b.id_of("messaging.Conversation"),
            ]
        ).update(last_message_at=now, customer_last_message_at=now, unread_count=1)
    world.b_checksum = checksum(world.b)
    return world


def _key_client(seed: TenantSeed) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {seed.api_secret}")
    return client


def _member_client(seed: TenantSeed) -> Client:
    client = Client()
    client.force_login(seed.owner.user)
    return client


def _leaks(text: str, b: TenantSeed, asked: str = "") -> list[str]:
    """B's values in ``text``, apart from the search words A typed (a page echoes them)."""
    for word in re.findall(r"(?:q|search)=([^&]+)", asked):
        text = text.replace(word, "")
    return sorted(value for value in b.fingerprints() if value in text)


def _b_user_id(b: TenantSeed) -> int:
    return int(b.owner.user_id)


def _exists(path: str) -> bool:
    """Whether the URL names a route (lists added later join the checks as they appear)."""
    try:
        resolve(path.split("?")[0])
    except Resolver404:
        return False
    return True


# -- T2: lists and filters -----------------------------------------------------------------------


def _foreign_filters(b: TenantSeed) -> dict[str, Any]:
    """B's ids and words under every filter name a list might read."""
    return {
        "account": b.id_of("accounts.InstagramAccount"),
        "conversation": b.id_of("messaging.Conversation"),
        "contact": b.id_of("messaging.Contact"),
        "label": b.id_of("messaging.Label"),
        "tenant": b.tenant.pk,
        "tenant_id": b.tenant.pk,
        "q": b.tag,
        "search": b.tag,
    }


def _api_lists(a: TenantSeed, b: TenantSeed) -> dict[str, list[dict[str, Any]]]:
    """Every partner API list with the filters it knows, filled with B's values."""
    endpoint_a = a.id_of("webhooks.CallbackEndpoint")
    return {
        "/api/v1/conversations": [
            {"account": b.id_of("accounts.InstagramAccount")},
            {"assignee": _b_user_id(b)},
            {"updated_since": "2000-01-01T00:00:00Z", "status": "open"},
            {"unread": "true"},
        ],
        "/api/v1/members": [{}],
        "/api/v1/accounts": [{}],
        "/api/v1/onboarding-links": [{}],
        "/api/v1/webhook-endpoints": [{}],
        f"/api/v1/webhook-endpoints/{endpoint_a}/deliveries": [{"status": "delivered"}],
        "/api/v1/audit-log": [
            {"actor": _b_user_id(b)},
            {"action": "contact."},
            {"since": "2000-01-01"},
        ],
        "/api/v1/outbound-jobs": [{"status": "dead"}],
        f"/api/v1/conversations/{a.id_of('messaging.Conversation')}/messages": [{}],
        f"/api/v1/conversations/{a.id_of('messaging.Conversation')}/notes": [{}],
        "/api/v1/labels": [{}],
        "/api/v1/canned-replies": [{}],
        "/api/v1/comments": [{"account": b.id_of("accounts.InstagramAccount")}],
    }


def test_t2_partner_api_lists_show_no_foreign_rows_whatever_the_filters(listed: World) -> None:
    a, b = listed.a, listed.b
    client = _key_client(a)
    lists = _api_lists(a, b)
    common = _foreign_filters(b)
    failures: list[str] = []
    own_rows = 0
    for route, variants in lists.items():
        if not _exists(route):
            continue
        for variant in variants:
            for ordering in ORDERINGS:
                params = {**common, **variant, "ordering": ordering, "page_size": 200}
                response = client.get(route, params)
                text = response.content.decode(errors="replace")
                where = f"GET {route} {params}"
                if response.status_code != 200 and response.status_code != 400:
                    failures.append(f"{where} answered {response.status_code}")
                if leaked := _leaks(text, b, f"q={b.tag}"):
                    failures.append(f"{where} shows B's data: {leaked}")
            # Without the foreign filters, A's own rows are there: the lists are not just empty.
            response = client.get(route, {**variant, "page_size": 200})
            if response.status_code == 200:
                body = response.json()
                rows = body.get("results", body if isinstance(body, list) else [])
                own_rows += len(rows)
                if leaked := _leaks(response.content.decode(), b):
                    failures.append(f"GET {route} {variant} shows B's data: {leaked}")
    assert failures == []
    assert own_rows > 0
    assert checksum(b) == listed.b_checksum


def test_t2_conversation_list_counts_only_a_s_conversations(listed: World) -> None:
    a, b = listed.a, listed.b
    client = _key_client(a)
    body = client.get("/api/v1/conversations", {"page_size": 200}).json()
    ids = [row["id"] for row in body["results"]]
    assert ids == [a.id_of("messaging.Conversation")]
    # B's account as a filter: nothing, not B's conversation.
    foreign = client.get("/api/v1/conversations", {"account": b.id_of("accounts.InstagramAccount")})
    assert foreign.status_code in (200, 400)
    if foreign.status_code == 200:
        assert foreign.json()["results"] == []


def _count(html: str, key: str) -> int:
    found = re.search(rf'data-testid="count-{key}">(\d+)<', html)
    return int(found.group(1)) if found else 0


def test_t2_inbox_lists_search_and_counts_show_only_a(listed: World) -> None:
    a, b = listed.a, listed.b
    client = _member_client(a)
    b_conversation = b.id_of("messaging.Conversation")
    urls = [
        "/inbox/",
        f"/inbox/?q={b.tag}",
        f"/inbox/?q=customer_{b.tag}",
        f"/inbox/?account={b.id_of('accounts.InstagramAccount')}",
        f"/inbox/?label={b.id_of('messaging.Label')}",
        f"/inbox/?box=unassigned&unread=1&kind=story_mentions&q={b.tag}",
        f"/inbox/?status=resolved&q={b.tag}",
        f"/inbox/list/?q={b.tag}&current={b_conversation}",
        f"/inbox/list/?account={b.id_of('accounts.InstagramAccount')}",
        f"/inbox/accounts/{a.id_of('accounts.InstagramAccount')}/comments/?show=all",
    ]
    failures = []
    for url in urls:
        response = client.get(url)
        text = response.content.decode(errors="replace")
        if response.status_code != 200:
            failures.append(f"GET {url} answered {response.status_code}")
        if leaked := _leaks(text, b, url):
            failures.append(f"GET {url} shows B's data: {leaked}")
        if f"/inbox/{b_conversation}/" in text:
            failures.append(f"GET {url} links B's conversation")
    assert failures == []
    # The counts are A's: one open, unread, unassigned conversation (B has the same).
    html = client.get("/inbox/").content.decode()
    assert (_count(html, "all"), _count(html, "unread"), _count(html, "unassigned")) == (1, 1, 1)
    assert f"/inbox/{a.id_of('messaging.Conversation')}/" in html
    poll = client.get("/inbox/poll/").json()
    assert poll["unread"] == 1
    assert checksum(b) == listed.b_checksum


# -- T3: writable relations ----------------------------------------------------------------------


def _snapshot(world: World) -> tuple[dict[str, str], dict[str, str]]:
    return checksum(world.a), checksum(world.b)


def test_t3_inbox_writes_naming_b_s_objects_change_nothing(listed: World) -> None:
    a, b = listed.a, listed.b
    client = _member_client(a)
    client.get("/inbox/")  # the first visit settles the session before the snapshot
    a_conversation = a.id_of("messaging.Conversation")
    writes: list[tuple[str, dict[str, Any]]] = [
        (f"/inbox/{a_conversation}/labels/", {"label": b.id_of("messaging.Label")}),
        (f"/inbox/{a_conversation}/assign/", {"member": b.owner.pk}),
        (f"/inbox/{a_conversation}/assign/", {"member": b.agent.pk}),
    ]
    before = _snapshot(listed)
    failures = []
    for url, data in writes:
        for extra in ({}, HTMX):
            status = client.post(url, data, **extra).status_code  # type: ignore[arg-type]
            if status not in (400, 404):
                failures.append(f"POST {url} {data} answered {status}")
    assert failures == []
    assert _snapshot(listed) == before


def test_t3_member_and_settings_forms_refuse_b_s_account(listed: World) -> None:
    a, b = listed.a, listed.b
    client = _member_client(a)
    client.get("/")
    b_account = b.id_of("accounts.InstagramAccount")
    before = _snapshot(listed)
    failures = []
    for url, data in [
        (f"/members/{a.agent.pk}/accounts/", {"limited": "yes", "account": [b_account]}),
        ("/settings/messaging/", {"disclosure_text": "Automated", "account": b_account}),
    ]:
        response = client.post(url, data)
        text = response.content.decode(errors="replace")
        if response.status_code >= 500:
            failures.append(f"POST {url} answered {response.status_code}")
        if leaked := _leaks(text, b):
            failures.append(f"POST {url} shows B's data: {leaked}")
    assert failures == []
    after = _snapshot(listed)
    assert after[1] == before[1]
    # Nothing of A's changed to point at B: no access row or setting names B's account.
    with scope(tenant=a.tenant):
        from accounts.models import AccountAccess
        from messaging.models import MessagingSettings

        assert not AccountAccess.objects.filter(account_id=b_account).exists()
        assert not MessagingSettings.objects.filter(account_id=b_account).exists()


def test_t3_partner_api_writes_naming_b_s_objects_change_nothing(listed: World) -> None:
    a, b = listed.a, listed.b
    client = _key_client(a)
    a_conversation = a.id_of("messaging.Conversation")
    writes: list[tuple[str, dict[str, Any]]] = [
        (
            "/api/v1/onboarding-links",
            {"note": "for a client", "account_id": b.id_of("accounts.InstagramAccount")},
        ),
        (
            f"/api/v1/conversations/{a_conversation}/messages",
            {"kind": "text", "text": "Hello", "sender": "human", "agent_email": b.owner.user.email},
        ),
        (f"/api/v1/conversations/{a_conversation}/assign", {"assignee": _b_user_id(b)}),
        (
            f"/api/v1/conversations/{a_conversation}/labels",
            {"label_id": b.id_of("messaging.Label")},
        ),
    ]
    before = _snapshot(listed)
    failures = []
    for url, body in writes:
        if not _exists(url):
            continue
        response = client.post(url, json.dumps(body), content_type="application/json")
        if response.status_code not in (400, 404):
            failures.append(f"POST {url} answered {response.status_code}: {response.content!r}")
        if leaked := _leaks(response.content.decode(errors="replace"), b):
            failures.append(f"POST {url} shows B's data: {leaked}")
    assert failures == []
    after = _snapshot(listed)
    # The key records when it was last used; nothing else of A's may change.
    changed = {t for t in before[0] if before[0][t] != after[0][t]} - {"accounts_apikey"}
    assert changed == set()
    assert after[1] == before[1]


# -- T4: nested routes ---------------------------------------------------------------------------


NESTED = [
    ("/inbox/{conversation}/messages/{child}/retry/", "messaging.Message"),
    ("/inbox/{conversation}/labels/{child}/remove/", "messaging.Label"),
]


@pytest.mark.parametrize(("route", "child"), NESTED)
def test_t4_nested_routes_with_mixed_tenants_answer_404(
    listed: World, route: str, child: str
) -> None:
    a, b = listed.a, listed.b
    client = _member_client(a)
    client.get("/inbox/")
    before = _snapshot(listed)
    mixed = {
        "A parent, B child": (a.id_of("messaging.Conversation"), b.id_of(child)),
        "B parent, A child": (b.id_of("messaging.Conversation"), a.id_of(child)),
        "B parent, B child": (b.id_of("messaging.Conversation"), b.id_of(child)),
    }
    missing = client.post(
        route.format(conversation=a.id_of("messaging.Conversation"), child=MISSING_ID)
    )
    assert missing.status_code == 404
    for case, (parent, kid) in mixed.items():
        url = route.format(conversation=parent, child=kid)
        response = client.post(url)
        assert response.status_code == 404, f"{case}: POST {url}"
        assert CSRF.sub("-", response.content.decode()) == CSRF.sub(
            "-", missing.content.decode()
        ), case
        assert client.get(url).status_code == 405  # actions take a POST only
    assert _snapshot(listed) == before


def test_t4_partner_api_nested_label_route_with_mixed_tenants_answers_404(listed: World) -> None:
    a, b = listed.a, listed.b
    route = "/api/v1/conversations/{conversation}/labels/{label}"
    if not _exists(route.format(conversation=1, label=1)):
        pytest.skip("no nested label route in the partner API")
    client = _key_client(a)
    before = _snapshot(listed)
    missing = client.delete(
        route.format(conversation=a.id_of("messaging.Conversation"), label=MISSING_ID)
    )
    assert missing.status_code == 404
    for parent, label in [
        (a.id_of("messaging.Conversation"), b.id_of("messaging.Label")),
        (b.id_of("messaging.Conversation"), a.id_of("messaging.Label")),
        (b.id_of("messaging.Conversation"), b.id_of("messaging.Label")),
    ]:
        response = client.delete(route.format(conversation=parent, label=label))
        assert response.status_code == 404, (parent, label)
        assert response.json() == missing.json()
    after = _snapshot(listed)
    assert after[1] == before[1]
    assert {t for t in before[0] if before[0][t] != after[0][t]} <= {"accounts_apikey"}


def test_t4_a_s_own_nested_pair_works_so_the_404s_mean_something(listed: World) -> None:
    a = listed.a
    client = _member_client(a)
    url = f"/inbox/{a.id_of('messaging.Conversation')}/labels/{a.id_of('messaging.Label')}/remove/"
    assert client.post(url).status_code in (200, 302)
