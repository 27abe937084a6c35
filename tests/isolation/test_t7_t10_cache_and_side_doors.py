"""T7 and T10: shared caches, live updates and the side doors (exports, audit log, admin).

- T7: the same page with the same parameters for A and B uses distinct cache keys, dropping
  A's keys leaves B's, and the live-update poll answers for B's conversation exactly as for one
  that does not exist.
- T10: A's contact export, audit log (page and API) and the platform admin show 0 of B's rows,
  even when the same customer (one Instagram user id) wrote to both workspaces.
"""

from __future__ import annotations

import json
import re

import pytest
import redis
from django.conf import settings
from django.test import Client
from django.utils import timezone
from django_scopes import scopes_disabled
from rest_framework.test import APIClient

from messaging.models import Comment, Contact, Conversation
from tests.isolation.conftest import World
from tests.isolation.seed import MISSING_ID, TenantSeed, checksum


def _member_client(seed: TenantSeed) -> Client:
    client = Client()
    client.force_login(seed.owner.user)
    return client


def _key_client(seed: TenantSeed) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {seed.api_secret}")
    return client


def _leaks(text: str, b: TenantSeed) -> list[str]:
    return sorted(value for value in b.fingerprints() if value in text)


@pytest.fixture
def listed(world: World) -> World:
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


# -- T7: cache and live updates ------------------------------------------------------------------


def _cache_keys() -> set[bytes]:
    prefix = settings.CACHES["default"].get("KEY_PREFIX", "")
    client = redis.Redis.from_url(settings.REDIS_URL)
    return set(client.scan_iter(match=f"{prefix}:*", count=1000))


def _unread(html: str) -> int:
    found = re.search(r'data-testid="count-unread">(\d+)<', html)
    return int(found.group(1)) if found else 0


def test_t7_the_same_page_for_a_and_b_uses_distinct_cache_keys(listed: World) -> None:
    a, b = listed.a, listed.b
    # A has one more unread conversation than B: a shared key would show A's count to B.
    with scopes_disabled():
        extra = Conversation.objects.get(pk=a.id_of("messaging.Conversation"))
        contact = Contact.objects.create(
            tenant=a.tenant, account=extra.account, igsid="1790000000000001", username="second"
        )
        Conversation.objects.create(
            tenant=a.tenant,
            account=extra.account,
            contact=contact,
            last_message_at=timezone.now(),
            unread_count=1,
        )
    client_a, client_b = _member_client(a), _member_client(b)
    client_a.get("/")
    client_b.get("/")
    start = _cache_keys()
    assert _unread(client_a.get("/inbox/").content.decode()) == 2
    keys_a = _cache_keys() - start
    assert _unread(client_b.get("/inbox/").content.decode()) == 1
    keys_b = _cache_keys() - start - keys_a
    assert keys_a, "the inbox counts are cached"
    assert keys_b, "B's page computed and stored its own counts instead of reading A's"
    assert not any(b"inbox-counts" in k for k in keys_a & keys_b)
    # Dropping A's cached values leaves B's.
    redis.Redis.from_url(settings.REDIS_URL).delete(*keys_a)
    assert keys_b <= _cache_keys()
    assert _unread(client_b.get("/inbox/").content.decode()) == 1
    assert _unread(client_a.get("/inbox/").content.decode()) == 2


def test_t7_live_updates_refuse_another_workspaces_conversation(listed: World) -> None:
    a, b = listed.a, listed.b
    client = _member_client(a)
    foreign = client.get(f"/inbox/poll/?conversation={b.id_of('messaging.Conversation')}")
    missing = client.get(f"/inbox/poll/?conversation={MISSING_ID}")
    own = client.get(f"/inbox/poll/?conversation={a.id_of('messaging.Conversation')}")
    assert foreign.status_code == missing.status_code == own.status_code == 200
    assert foreign.json()["thread"] is None
    assert foreign.json() == missing.json()
    assert own.json()["thread"] is not None
    assert foreign.json()["unread"] == 1  # A's own unread messages, not B's as well
    # The thread fragment a poll would fetch next is not found either.
    assert client.get(f"/inbox/{b.id_of('messaging.Conversation')}/thread/").status_code == 404
    assert checksum(b) == listed.b_checksum


# -- T10: side doors -----------------------------------------------------------------------------


@pytest.fixture
def same_customer(listed: World) -> World:
    """B's contact is the same Instagram user as A's, and commented on B's post under A's id."""
    a_contact = listed.a.objects["messaging.Contact"]
    with scopes_disabled():
        Contact.objects.filter(pk=listed.b.id_of("messaging.Contact")).update(
            igsid=a_contact.igsid  # type: ignore[attr-defined]
        )
        Comment.objects.filter(pk=listed.b.id_of("messaging.Comment")).update(
            from_id=a_contact.igsid  # type: ignore[attr-defined]
        )
    listed.b_checksum = checksum(listed.b)
    return listed


def test_t10_contact_export_holds_only_the_workspace_s_rows(same_customer: World) -> None:
    a, b = same_customer.a, same_customer.b
    contact_id = a.id_of("messaging.Contact")
    page = _member_client(a).get(f"/compliance/contacts/{contact_id}/export/")
    api = _key_client(a).get(f"/api/v1/contacts/{contact_id}/export")
    for response in (page, api):
        assert response.status_code == 200
        text = response.content.decode()
        assert a.tag in text  # A's own messages are in it
        assert _leaks(text, b) == []
        json.loads(text)
    assert checksum(b) == same_customer.b_checksum


def test_t10_audit_log_shows_only_the_workspace_s_entries(same_customer: World) -> None:
    a, b = same_customer.a, same_customer.b
    page_urls = [
        "/compliance/audit-log/",
        "/compliance/audit-log/?action=contact.",
        f"/compliance/audit-log/?actor={b.owner.user_id}",
        "/compliance/audit-log/?since=2000-01-01&page=1",
    ]
    client = _member_client(a)
    for url in page_urls:
        response = client.get(url)
        assert response.status_code == 200, url
        assert _leaks(response.content.decode(), b) == [], url
    api = _key_client(a)
    own = api.get("/api/v1/audit-log", {"page_size": 200})
    assert own.status_code == 200
    assert f"auditor {a.tag}" in own.content.decode()
    for params in ({"actor": str(b.owner.user_id)}, {"action": "contact."}, {"page_size": 200}):
        response = api.get("/api/v1/audit-log", params)
        assert response.status_code == 200
        assert _leaks(response.content.decode(), b) == [], params


def test_t10_members_never_reach_the_platform_admin(same_customer: World) -> None:
    a, b = same_customer.a, same_customer.b
    client = _member_client(a)
    for path in (
        "/platform-admin/",
        "/platform-admin/messaging/message/",
        f"/platform-admin/messaging/conversation/{b.id_of('messaging.Conversation')}/change/",
        "/platform-admin/accounts/auditentry/",
    ):
        response = client.get(path)
        assert response.status_code == 302, path
        assert response["Location"].startswith("/platform-admin/login/")
        assert _leaks(response.content.decode(), b) == []
