"""P5: every partner API list costs the same number of queries whatever its size.

Each list is read at page sizes 1, 20 and 100 over a workspace holding more rows than the
largest page, after reading it over a nearly empty one; the count of queries must not move.
The conversation and message lists are in tests/messaging/test_api.py, the inbox pages in
tests/inbox/test_pages.py and tests/messaging/test_inbox_views.py (same rule).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_scopes import scope
from rest_framework.test import APIClient

from accounts.models import AuditEntry, OnboardingLink, Role, Tenant
from messaging.models import OutboundJob
from tests.factories import InstagramAccountFactory, MembershipFactory, UserFactory
from tests.messaging.factories import ConversationFactory, MessageFactory
from webhooks.models import CallbackDelivery, CallbackEndpoint, CallbackEvent

pytestmark = pytest.mark.django_db

PAGE_SIZES = (1, 20, 100)
ROWS = 110  # more than the largest page
CEILING = 10  # e.g. "conversation list ≤ 10 queries"


def _endpoint(tenant: Tenant) -> CallbackEndpoint:
    with scope(tenant=tenant):
        endpoint, _ = CallbackEndpoint.objects.get_or_create(
            tenant=tenant,
            url="https://hooks.example.com/relay",
            defaults={"events": ["message.received"], "secret": "whsec_p5"},
        )
    return endpoint


def _members(tenant: Tenant, n: int) -> None:
    for _ in range(n):
        MembershipFactory(tenant=tenant, role=Role.AGENT, user=UserFactory())


def _accounts(tenant: Tenant, n: int) -> None:
    for _ in range(n):
        InstagramAccountFactory(tenant=tenant)


def _links(tenant: Tenant, n: int) -> None:
    account = InstagramAccountFactory(tenant=tenant)
    user = UserFactory()
    with scope(tenant=tenant):
        OnboardingLink.objects.bulk_create(
            OnboardingLink(
                tenant=tenant,
                token_hash=secrets.token_hex(32),
                note="client",
                account=account,
                created_by=user,
                expires_at=timezone.now() + timedelta(days=7),
            )
            for _ in range(n)
        )


def _endpoints(tenant: Tenant, n: int) -> None:
    with scope(tenant=tenant):
        CallbackEndpoint.objects.bulk_create(
            CallbackEndpoint(
                tenant=tenant,
                url=f"https://hooks{i}.example.com/relay",
                events=["message.received"],
                secret=f"whsec_{i}",
            )
            for i in range(n)
        )


def _deliveries(tenant: Tenant, n: int) -> None:
    endpoint = _endpoint(tenant)
    with scope(tenant=tenant):
        events = CallbackEvent.objects.bulk_create(
            CallbackEvent(tenant=tenant, type="message.received", payload={"n": i})
            for i in range(n)
        )
        CallbackDelivery.objects.bulk_create(
            CallbackDelivery(
                tenant=tenant,
                endpoint=endpoint,
                event=event,
                status="delivered",
                next_attempt_at=timezone.now(),
            )
            for event in events
        )


def _audit(tenant: Tenant, n: int) -> None:
    users = [UserFactory() for _ in range(3)]
    with scope(tenant=tenant):
        AuditEntry.objects.bulk_create(
            AuditEntry(
                tenant=tenant,
                action="contact.exported",
                actor_user=users[i % 3],
                target_type="contact",
                target_id=str(i),
            )
            for i in range(n)
        )


def _jobs(tenant: Tenant, n: int) -> None:
    account = InstagramAccountFactory(tenant=tenant)
    with scope(tenant=tenant):
        for _ in range(n):
            conversation = ConversationFactory(account=account)
            message = MessageFactory(conversation=conversation)
            OutboundJob.objects.create(
                tenant=tenant,
                account=account,
                conversation=conversation,
                message=message,
                sender_kind="agent",
                payload={"text": "hi"},
                status="dead",
                error_message="gave up",
            )


LISTS: dict[str, tuple[Callable[[Tenant], str], Callable[[Tenant, int], None]]] = {
    "members": (lambda t: "/api/v1/members", _members),
    "accounts": (lambda t: "/api/v1/accounts", _accounts),
    "onboarding-links": (lambda t: "/api/v1/onboarding-links", _links),
    "webhook-endpoints": (lambda t: "/api/v1/webhook-endpoints", _endpoints),
    "deliveries": (
        lambda t: f"/api/v1/webhook-endpoints/{_endpoint(t).pk}/deliveries",
        _deliveries,
    ),
    "audit-log": (lambda t: "/api/v1/audit-log", _audit),
    "outbound-jobs": (lambda t: "/api/v1/outbound-jobs", _jobs),
}


def _queries(client: APIClient, url: str, page_size: int) -> tuple[int, int]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, {"page_size": page_size})
    assert response.status_code == 200, (url, response.content[:300])
    return len(captured), len(response.json()["results"])


@pytest.mark.parametrize("name", sorted(LISTS))
def test_p5_list_query_count_is_flat_in_rows_and_page_size(
    name: str, tenant: Tenant, api_client: APIClient
) -> None:
    path, grow = LISTS[name]
    url = path(tenant)
    grow(tenant, 2)
    api_client.get(url)  # warm: the key's first use records itself
    few = _queries(api_client, url, 20)[0]
    grow(tenant, ROWS)
    counts = {}
    for size in PAGE_SIZES:
        queries, rows = _queries(api_client, url, size)
        assert rows >= 1
        counts[size] = queries
    assert set(counts.values()) == {few}, f"{name}: {few} queries for 2 rows, then {counts}"
    print(f"\n{name}: {few} queries at every size")
    assert few <= CEILING, f"{name}: {few} queries"
