"""T1 and T8 for the partner API: every route, every method, with the other tenant's ids.

The routes come from the URL resolver and from the OpenAPI schema; each must be in API_ROUTES,
which says how to fill its path with tenant B's ids. Tenant A's partner key (every scope) then
calls each route with B's ids, and with ids no row has:

- object routes answer 404, with exactly the status and body of a nonexistent id (T8);
- list, singleton and public routes answer without any of B's data;
- afterwards every row B owns is byte-for-byte unchanged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from accounts.api.base import TenantScopedMixin
from tests.isolation.conftest import World
from tests.isolation.seed import MISSING_ID, TenantSeed, checksum
from tests.isolation.structure import route_shape, view_methods, walk_urls

API_PREFIX = "/api/"

OBJECT, COLLECTION, SINGLETON, PUBLIC = "object", "collection", "singleton", "public"


@dataclass(frozen=True)
class ApiRoute:
    kind: str
    methods: frozenset[str]
    # path parameter -> the model whose row of tenant B fills it
    ids: dict[str, str] = field(default_factory=dict)
    # request body for write methods, given the tenant whose ids to use
    body: Any = None


def _r(kind: str, *methods: str, **ids: str) -> ApiRoute:
    return ApiRoute(kind=kind, methods=frozenset(methods), ids=ids)


API_ROUTES: dict[str, ApiRoute] = {
    "/api/v1/tenant": _r(SINGLETON, "GET"),
    "/api/v1/key": _r(SINGLETON, "GET"),
    "/api/v1/members": _r(COLLECTION, "GET"),
    "/api/v1/members/{pk}": _r(OBJECT, "GET", pk="accounts.Membership"),
    "/api/v1/accounts": _r(COLLECTION, "GET"),
    "/api/v1/accounts/{pk}": _r(OBJECT, "GET", pk="accounts.InstagramAccount"),
    "/api/v1/onboarding-links": ApiRoute(
        kind=COLLECTION,
        methods=frozenset({"GET", "POST"}),
        body=lambda s: {
            "note": "for a client",
            "account_id": s.id_of("accounts.InstagramAccount") if s else MISSING_ID,
        },
    ),
    "/api/v1/webhook-endpoints": ApiRoute(
        kind=COLLECTION,
        methods=frozenset({"GET", "POST"}),
        body=lambda s: {"url": "https://hooks.example.com/relay", "events": ["message.received"]},
    ),
    "/api/v1/webhook-endpoints/{pk}": ApiRoute(
        kind=OBJECT,
        methods=frozenset({"GET", "PATCH", "DELETE"}),
        ids={"pk": "webhooks.CallbackEndpoint"},
        body=lambda s: {"enabled": True, "description": "changed"},
    ),
    "/api/v1/webhook-endpoints/{pk}/rotate-secret": ApiRoute(
        kind=OBJECT,
        methods=frozenset({"POST"}),
        ids={"pk": "webhooks.CallbackEndpoint"},
        body=lambda s: {"overlap_hours": 1},
    ),
    "/api/v1/webhook-endpoints/{pk}/deliveries": _r(OBJECT, "GET", pk="webhooks.CallbackEndpoint"),
    "/api/v1/webhook-deliveries/{pk}": _r(OBJECT, "GET", pk="webhooks.CallbackDelivery"),
    "/api/v1/webhook-deliveries/{pk}/redeliver": _r(OBJECT, "POST", pk="webhooks.CallbackDelivery"),
    # Compliance: a contact's export and erasure, the audit log.
    "/api/v1/contacts/{contact_id}/export": _r(OBJECT, "GET", contact_id="messaging.Contact"),
    "/api/v1/contacts/{contact_id}/erase": _r(OBJECT, "POST", contact_id="messaging.Contact"),
    "/api/v1/audit-log": _r(COLLECTION, "GET"),
    # Conversations, messages and contacts: reading and answering.
    "/api/v1/conversations": _r(COLLECTION, "GET"),
    "/api/v1/conversations/{pk}": _r(OBJECT, "GET", pk="messaging.Conversation"),
    "/api/v1/conversations/{conversation_id}/messages": ApiRoute(
        kind=OBJECT,
        methods=frozenset({"GET", "POST"}),
        ids={"conversation_id": "messaging.Conversation"},
        body=lambda s: {"kind": "text", "text": "Thanks for writing!", "sender": "bot"},
    ),
    "/api/v1/conversations/{conversation_id}/actions": ApiRoute(
        kind=OBJECT,
        methods=frozenset({"POST"}),
        ids={"conversation_id": "messaging.Conversation"},
        body=lambda s: {"action": "mark_seen"},
    ),
    "/api/v1/contacts/{pk}": _r(OBJECT, "GET", pk="messaging.Contact"),
    "/api/v1/comments/{comment_id}/private-reply": ApiRoute(
        kind=OBJECT,
        methods=frozenset({"POST"}),
        ids={"comment_id": "messaging.Comment"},
        body=lambda s: {"text": "Sent you the price in Direct!"},
    ),
    "/api/v1/messages/{message_id}/reactions": ApiRoute(
        kind=OBJECT,
        methods=frozenset({"POST"}),
        ids={"message_id": "messaging.Message"},
        body=lambda s: {"reaction": "love"},
    ),
    "/api/v1/outbound-jobs": _r(COLLECTION, "GET"),
    "/api/v1/outbound-jobs/{pk}": _r(OBJECT, "GET", pk="messaging.OutboundJob"),
    "/api/v1/outbound-jobs/{pk}/replay": _r(OBJECT, "POST", pk="messaging.OutboundJob"),
    # Team work: assignment, status, handover, notes and labels of a conversation.
    "/api/v1/conversations/{conversation_id}/assign": ApiRoute(
        kind=OBJECT,
        methods=frozenset({"POST"}),
        ids={"conversation_id": "messaging.Conversation"},
        body=lambda s: {"agent_email": None},
    ),
    "/api/v1/conversations/{conversation_id}/resolve": _r(
        OBJECT, "POST", conversation_id="messaging.Conversation"
    ),
    "/api/v1/conversations/{conversation_id}/reopen": _r(
        OBJECT, "POST", conversation_id="messaging.Conversation"
    ),
    "/api/v1/conversations/{conversation_id}/handover": ApiRoute(
        kind=OBJECT,
        methods=frozenset({"POST"}),
        ids={"conversation_id": "messaging.Conversation"},
        body=lambda s: {"mode": "human"},
    ),
    "/api/v1/conversations/{conversation_id}/notes": ApiRoute(
        kind=OBJECT,
        methods=frozenset({"GET", "POST"}),
        ids={"conversation_id": "messaging.Conversation"},
        body=lambda s: {"body": "Called them back."},
    ),
    "/api/v1/conversations/{conversation_id}/labels": ApiRoute(
        kind=OBJECT,
        methods=frozenset({"POST"}),
        ids={"conversation_id": "messaging.Conversation"},
        body=lambda s: {"label_id": s.id_of("messaging.Label") if s else MISSING_ID},
    ),
    "/api/v1/conversations/{conversation_id}/labels/{label_id}": ApiRoute(
        kind=OBJECT,
        methods=frozenset({"DELETE"}),
        ids={"conversation_id": "messaging.Conversation", "label_id": "messaging.Label"},
    ),
    "/api/v1/contacts/{pk}/labels": ApiRoute(
        kind=OBJECT,
        methods=frozenset({"PUT"}),
        ids={"pk": "messaging.Contact"},
        body=lambda s: {"labels": ["VIP"]},
    ),
    "/api/v1/labels": ApiRoute(
        kind=COLLECTION,
        methods=frozenset({"GET", "POST"}),
        body=lambda s: {"name": "Refund"},
    ),
    "/api/v1/labels/{pk}": ApiRoute(
        kind=OBJECT,
        methods=frozenset({"GET", "PATCH", "DELETE"}),
        ids={"pk": "messaging.Label"},
        body=lambda s: {"name": "Renamed"},
    ),
    "/api/v1/canned-replies": ApiRoute(
        kind=COLLECTION,
        methods=frozenset({"GET", "POST"}),
        body=lambda s: {"shortcut": "hours", "body": "We answer from 9 to 5."},
    ),
    "/api/v1/canned-replies/{pk}": ApiRoute(
        kind=OBJECT,
        methods=frozenset({"GET", "PATCH", "DELETE"}),
        ids={"pk": "messaging.CannedReply"},
        body=lambda s: {"body": "Changed."},
    ),
    "/api/v1/comments": _r(COLLECTION, "GET"),
    "/api/v1/comments/{pk}": _r(OBJECT, "GET", pk="messaging.Comment"),
    # Automation: an account's rules and settings, a rule and its history.
    "/api/v1/accounts/{account_id}/rules": ApiRoute(
        kind=OBJECT,
        methods=frozenset({"GET", "POST"}),
        ids={"account_id": "accounts.InstagramAccount"},
        body=lambda s: {
            "name": "Price answer",
            "trigger": "keyword",
            "keywords": ["price"],
            "actions": [{"type": "reply_text", "text": "Prices are on our site."}],
        },
    ),
    "/api/v1/accounts/{account_id}/automation": ApiRoute(
        kind=OBJECT,
        methods=frozenset({"GET", "PUT"}),
        ids={"account_id": "accounts.InstagramAccount"},
        body=lambda s: {"ice_breakers": [{"question": "Where do you ship?", "payload": "SHIP"}]},
    ),
    "/api/v1/rules/{pk}": ApiRoute(
        kind=OBJECT,
        methods=frozenset({"GET", "PATCH", "DELETE"}),
        ids={"pk": "automation.Rule"},
        body=lambda s: {"enabled": False},
    ),
    "/api/v1/rules/{pk}/runs": _r(OBJECT, "GET", pk="automation.Rule"),
    "/api/v1/schema/": _r(PUBLIC, "GET"),
    "/api/v1/docs/": _r(PUBLIC, "GET"),
}


def _api_views() -> dict[str, Any]:
    return {route: view for route, view in walk_urls() if route.startswith(API_PREFIX)}


def _schema_operations() -> set[tuple[str, str]]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return {
        (route_shape(path), method.upper())
        for path, operations in schema["paths"].items()
        for method in operations
        if method in ("get", "post", "put", "patch", "delete")
    }


# -- coverage: a new route fails until it is in the matrix --------------------------------------


def test_every_api_route_is_in_the_matrix() -> None:
    routes = _api_views()
    assert sorted(set(routes) - set(API_ROUTES)) == [], "add these routes to API_ROUTES"
    assert sorted(set(API_ROUTES) - set(routes)) == [], "these API_ROUTES no longer exist"
    wrong_methods = {
        route: sorted(view_methods(view) or [])
        for route, view in routes.items()
        if view_methods(view) != set(API_ROUTES[route].methods)
    }
    assert wrong_methods == {}, "the methods of these routes differ from API_ROUTES"


def test_every_schema_operation_is_in_the_matrix() -> None:
    matrix = {
        (route_shape(route), method)
        for route, entry in API_ROUTES.items()
        for method in entry.methods
    }
    assert _schema_operations(), "the schema lists no operation"
    assert sorted(_schema_operations() - matrix) == []


def test_every_tenant_api_view_opens_the_keys_scope() -> None:
    unscoped = [
        route
        for route, view in _api_views().items()
        if API_ROUTES.get(route, _r(OBJECT)).kind != PUBLIC
        and not issubclass(getattr(view, "cls", object), TenantScopedMixin)
    ]
    assert unscoped == []


# -- the matrix ----------------------------------------------------------------------------


def _url(route: str, entry: ApiRoute, owner: TenantSeed | None) -> str:
    values = {p: (owner.id_of(label) if owner else MISSING_ID) for p, label in entry.ids.items()}
    return route.format(**values)


def _call(client: APIClient, method: str, url: str, body: Any) -> tuple[int, Any, str]:
    if method == "GET":
        response = client.get(url)
    else:
        response = client.generic(
            method, url, json.dumps(body or {}), content_type="application/json"
        )
    text = response.content.decode(errors="replace")
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    return response.status_code, parsed, text


def _leaks(text: str, b: TenantSeed) -> list[str]:
    return sorted(value for value in b.fingerprints() if value in text)


def _key_client(seed: TenantSeed) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {seed.api_secret}")
    return client


def test_a_partner_key_of_a_cannot_reach_b(world: World) -> None:
    a, b = world.a, world.b
    client = _key_client(a)
    failures: list[str] = []
    calls = 0
    for route, entry in API_ROUTES.items():
        for method in sorted(entry.methods):
            calls += 1
            body_b = entry.body(b) if entry.body else {"tenant": b.tenant.pk}
            url_b = _url(route, entry, b)
            if entry.kind in (COLLECTION, SINGLETON) and method == "GET":
                url_b += f"?tenant={b.tenant.pk}&tenant_id={b.tenant.pk}"
            status, parsed, text = _call(client, method, url_b, body_b)
            where = f"{method} {url_b}"
            if leaked := _leaks(text, b):
                failures.append(f"{where} shows B's data: {leaked}")
            if entry.kind == OBJECT:
                body_missing = entry.body(None) if entry.body else {}
                missing = _call(client, method, _url(route, entry, None), body_missing)
                if status != 404:
                    failures.append(f"{where} answered {status}, not 404")
                if (status, parsed) != missing[:2]:
                    failures.append(f"{where} differs from a missing id: {text} vs {missing[2]}")
            elif status >= 500 or (method == "GET" and status != 200):
                failures.append(f"{where} answered {status}")
    assert calls >= len(API_ROUTES)
    assert failures == []
    assert checksum(b) == world.b_checksum


def test_lists_of_a_show_a_s_rows(world: World) -> None:
    # The matrix above proves nothing if lists are simply empty: A sees its own members.
    body = _key_client(world.a).get("/api/v1/members").json()
    emails = {row["user"]["email"] for row in body["results"]}
    assert f"owner-{world.a.tag}@example.com" in emails
    assert not any(world.b.tag in email for email in emails)


def test_a_person_s_session_does_not_open_the_partner_api(world: World, client: Any) -> None:
    client.force_login(world.a.owner.user)
    failures = []
    for route, entry in API_ROUTES.items():
        for method in sorted(entry.methods):
            url = _url(route, entry, world.b)
            status, _, text = _call(client, method, url, {})
            if entry.kind != PUBLIC and status != 401:
                failures.append(f"{method} {url} answered {status} to a session")
            if _leaks(text, world.b):
                failures.append(f"{method} {url} shows B's data")
    assert failures == []
    assert checksum(world.b) == world.b_checksum


@pytest.mark.parametrize(
    "route", [r for r, e in API_ROUTES.items() if e.kind == OBJECT and "GET" in e.methods]
)
def test_another_tenants_object_is_indistinguishable_from_a_missing_one(
    world: World, route: str
) -> None:
    entry = API_ROUTES[route]
    client = _key_client(world.a)
    # A route without GET (an action, such as an erasure) is called with its own method.
    method = "get" if "GET" in entry.methods else sorted(entry.methods)[0].lower()
    call = getattr(client, method)
    foreign = call(_url(route, entry, world.b))
    missing = call(_url(route, entry, None))
    own = call(_url(route, entry, world.a))
    assert own.status_code in (200, 201, 202)
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json() == missing.json()
    assert foreign["Content-Type"] == missing["Content-Type"]
