"""Partner API: conversations, messages and contacts, read through the key's workspace."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from django_scopes import scope
from rest_framework.test import APIClient

from accounts.models import ApiKey, ApiScope, Tenant
from messaging.models import Conversation, Message, Reaction
from tests.factories import InstagramAccountFactory, UserFactory
from tests.messaging.factories import (
    ContactFactory,
    ConversationFactory,
    MessageFactory,
    ReactionFactory,
    hours_ago,
)

pytestmark = pytest.mark.django_db

MakeKey = Callable[..., tuple[ApiKey, str]]


def _client(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


@pytest.fixture
def account(tenant: Tenant) -> Any:
    return InstagramAccountFactory(tenant=tenant, username="acme.store")


@pytest.fixture
def foreign(other_tenant: Tenant) -> dict[str, Any]:
    """A conversation, message and contact of another workspace."""
    account = InstagramAccountFactory(tenant=other_tenant)
    conversation = ConversationFactory(account=account)
    message = MessageFactory(conversation=conversation)
    return {"conversation": conversation, "message": message, "contact": conversation.contact}


def _ids(response: Any) -> list[int]:
    return [item["id"] for item in response.json()["results"]]


# -- conversations --------------------------------------------------------------------------


def test_conversations_are_listed_newest_first_with_contact_preview_and_windows(
    api_client: APIClient, account: Any
) -> None:
    old = ConversationFactory(account=account, last_message_at=hours_ago(30))
    new = ConversationFactory(account=account, last_message_at=hours_ago(1))
    MessageFactory(conversation=new, text="older text", sent_at=hours_ago(2))
    MessageFactory(conversation=new, text="Do you ship to Lisbon?", sent_at=hours_ago(1))

    response = api_client.get("/api/v1/conversations")

    assert response.status_code == 200
    body = response.json()
    assert _ids(response) == [new.pk, old.pk]
    item = body["results"][0]
    assert item["account"] == account.pk
    assert item["contact"]["id"] == new.contact_id
    assert item["contact"]["igsid"] == new.contact.igsid
    assert item["contact"]["display_name"] == new.contact.display_name
    assert item["last_message"]["text"] == "Do you ship to Lisbon?"
    assert item["last_message"]["unsent"] is False
    assert item["status"] == "open"
    assert item["unread_count"] == 0
    assert item["window_closes_at"].endswith("Z")
    expected = new.customer_last_message_at + timedelta(hours=24)
    assert item["window_closes_at"] == expected.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert item["human_agent_window_closes_at"] == (
        new.customer_last_message_at + timedelta(days=7)
    ).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert body["results"][1]["last_message"] is None
    assert "access_token" not in str(body)


def test_last_message_preview_never_shows_unsent_content(
    api_client: APIClient, account: Any
) -> None:
    conversation = ConversationFactory(account=account)
    MessageFactory(conversation=conversation, text="", deleted_at=timezone.now())

    item = api_client.get("/api/v1/conversations").json()["results"][0]

    assert item["last_message"]["unsent"] is True
    assert item["last_message"]["text"] is None


def test_conversations_filter_by_account_status_assignee_unread_and_updated_since(
    api_client: APIClient, tenant: Tenant, account: Any
) -> None:
    other_account = InstagramAccountFactory(tenant=tenant)
    agent = UserFactory()
    a = ConversationFactory(account=account, unread_count=2, assignee=agent)
    b = ConversationFactory(account=account, status=Conversation.Status.RESOLVED)
    c = ConversationFactory(account=other_account)
    with scope(tenant=tenant):
        Conversation.objects.filter(pk=c.pk).update(updated_at=timezone.now() - timedelta(days=3))

    def ids(query: str) -> set[int]:
        response = api_client.get(f"/api/v1/conversations?{query}")
        assert response.status_code == 200, response.json()
        return set(_ids(response))

    assert ids(f"account={account.pk}") == {a.pk, b.pk}
    assert ids(f"account={other_account.pk}") == {c.pk}
    assert ids("status=resolved") == {b.pk}
    assert ids("status=open") == {a.pk, c.pk}
    assert ids(f"assignee={agent.pk}") == {a.pk}
    assert ids("assignee=none") == {b.pk, c.pk}
    assert ids("unread=true") == {a.pk}
    assert ids("unread=false") == {b.pk, c.pk}
    since = (timezone.now() - timedelta(days=1)).isoformat()
    assert ids(f"updated_since={since.replace('+', '%2B')}") == {a.pk, b.pk}


@pytest.mark.parametrize(
    "query", ["status=closed", "account=abc", "assignee=someone", "updated_since=yesterday"]
)
def test_bad_filters_answer_400_in_the_one_error_shape(
    api_client: APIClient, account: Any, query: str
) -> None:
    response = api_client.get(f"/api/v1/conversations?{query}")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"


def test_cursor_pages_walk_every_conversation_once(api_client: APIClient, account: Any) -> None:
    made = [ConversationFactory(account=account, last_message_at=hours_ago(i)) for i in range(7)]
    # Two threads at the same instant are ordered by id.
    ConversationFactory(account=account, last_message_at=made[3].last_message_at)
    seen: list[int] = []
    url: str | None = "/api/v1/conversations?page_size=3"
    while url:
        body = api_client.get(url).json()
        seen.extend(item["id"] for item in body["results"])
        url = body["next"]

    assert len(seen) == 8
    assert len(set(seen)) == 8


def test_conversation_detail(api_client: APIClient, account: Any) -> None:
    conversation = ConversationFactory(account=account)

    response = api_client.get(f"/api/v1/conversations/{conversation.pk}")

    assert response.status_code == 200
    assert response.json()["id"] == conversation.pk
    assert response.json()["contact"]["id"] == conversation.contact_id


# -- messages -------------------------------------------------------------------------------


def test_messages_come_in_reading_order_with_reactions_quotes_and_story(
    api_client: APIClient, account: Any
) -> None:
    conversation = ConversationFactory(account=account)
    first = MessageFactory(conversation=conversation, text="Hello", sent_at=hours_ago(3))
    reply = MessageFactory(
        conversation=conversation,
        direction=Message.Direction.OUTBOUND,
        text="Hi! How can we help?",
        reply_to_mid=first.mid,
        sent_at=hours_ago(2),
        edited_at=hours_ago(1.5),
        edit_count=1,
    )
    story = MessageFactory(
        conversation=conversation,
        kind=Message.Kind.STORY_REPLY,
        text="Love it",
        reply_to_story={"id": "18000000000000001", "url": "https://cdn.example/story.jpg"},
        sent_at=hours_ago(1),
    )
    orphan_reply = MessageFactory(
        conversation=conversation, reply_to_mid="not-stored", sent_at=hours_ago(0.5)
    )
    ReactionFactory(message=reply, actor=Reaction.Actor.CUSTOMER, reaction="love")
    ReactionFactory(message=reply, actor=Reaction.Actor.BUSINESS, reaction="like", emoji="👍")
    ReactionFactory(message=first, actor=Reaction.Actor.BUSINESS, removed_at=timezone.now())

    response = api_client.get(f"/api/v1/conversations/{conversation.pk}/messages")

    assert response.status_code == 200
    items = response.json()["results"]
    assert [m["id"] for m in items] == [first.pk, reply.pk, story.pk, orphan_reply.pk]
    by_id = {m["id"]: m for m in items}
    assert by_id[first.pk]["reactions"] == []
    assert by_id[first.pk]["reply_to"] is None
    assert by_id[first.pk]["direction"] == "in"
    assert by_id[first.pk]["sender_kind"] == "customer"
    got = by_id[reply.pk]
    assert [r["reaction"] for r in got["reactions"]] == ["love", "like"]
    assert {r["actor"] for r in got["reactions"]} == {"customer", "business"}
    assert got["reply_to"]["mid"] == first.mid
    assert got["reply_to"]["message"]["id"] == first.pk
    assert got["reply_to"]["message"]["text"] == "Hello"
    assert got["edited"] is True
    assert got["unsent"] is False
    assert got["status"] == "sent"
    assert got["error"] is None
    assert got["sent_at"].endswith("Z")
    assert by_id[story.pk]["story"] == {
        "type": "reply",
        "id": "18000000000000001",
        "url": "https://cdn.example/story.jpg",
        "link_sticker_url": None,
        "expired": False,
    }
    assert by_id[orphan_reply.pk]["reply_to"] == {"mid": "not-stored", "message": None}


def test_unsent_message_keeps_its_place_without_content(
    api_client: APIClient, account: Any
) -> None:
    conversation = ConversationFactory(account=account)
    unsent = MessageFactory(
        conversation=conversation,
        kind=Message.Kind.IMAGE,
        text="secret",
        attachments=[{"type": "image", "url": "https://cdn.example/x.jpg"}],
        deleted_at=timezone.now(),
    )
    quoting = MessageFactory(
        conversation=conversation,
        direction=Message.Direction.OUTBOUND,
        reply_to_mid=unsent.mid,
        sent_at=timezone.now() + timedelta(seconds=1),
    )

    items = api_client.get(f"/api/v1/conversations/{conversation.pk}/messages").json()["results"]

    got = next(m for m in items if m["id"] == unsent.pk)
    assert got["unsent"] is True
    assert got["text"] is None
    assert got["attachments"] is None
    quoted = next(m for m in items if m["id"] == quoting.pk)["reply_to"]["message"]
    assert quoted["unsent"] is True
    assert quoted["text"] is None
    assert "secret" not in str(items)


def test_failed_message_carries_its_error(api_client: APIClient, account: Any) -> None:
    conversation = ConversationFactory(account=account)
    MessageFactory(
        conversation=conversation,
        direction=Message.Direction.OUTBOUND,
        mid="",
        status=Message.Status.FAILED,
        error_code="window_closed",
        error_message="This message can't be sent because the customer hasn't written.",
    )

    got = api_client.get(f"/api/v1/conversations/{conversation.pk}/messages").json()["results"][0]

    assert got["mid"] is None
    assert got["status"] == "failed"
    assert got["error"]["code"] == "window_closed"


# -- contacts -------------------------------------------------------------------------------


def test_contact_detail(api_client: APIClient, account: Any) -> None:
    conversation = ConversationFactory(account=account)
    lonely = ContactFactory(account=account)

    got = api_client.get(f"/api/v1/contacts/{conversation.contact_id}").json()

    assert got["id"] == conversation.contact_id
    assert got["account"] == account.pk
    assert got["conversation"] == conversation.pk
    assert api_client.get(f"/api/v1/contacts/{lonely.pk}").json()["conversation"] is None


# -- isolation and scopes ---------------------------------------------------------------------


def _foreign_urls(foreign: dict[str, Any]) -> list[str]:
    return [
        f"/api/v1/conversations/{foreign['conversation'].pk}",
        f"/api/v1/conversations/{foreign['conversation'].pk}/messages",
        f"/api/v1/contacts/{foreign['contact'].pk}",
    ]


def test_another_workspaces_ids_answer_404_like_missing_ones(
    api_client: APIClient, account: Any, foreign: dict[str, Any]
) -> None:
    missing = [
        "/api/v1/conversations/999999999",
        "/api/v1/conversations/999999999/messages",
        "/api/v1/contacts/999999999",
    ]
    for url, absent in zip(_foreign_urls(foreign), missing, strict=True):
        response = api_client.get(url)
        assert response.status_code == 404, url
        assert response.json() == api_client.get(absent).json()
        assert response.json()["error"]["code"] == "not_found"
    listed = api_client.get("/api/v1/conversations").json()["results"]
    assert foreign["conversation"].pk not in [c["id"] for c in listed]
    by_account = api_client.get(
        f"/api/v1/conversations?account={foreign['conversation'].account_id}"
    ).json()
    assert by_account["results"] == []


def test_key_without_conversations_scope_is_refused(
    tenant: Tenant, make_api_key: MakeKey, account: Any
) -> None:
    conversation = ConversationFactory(account=account)
    _, secret = make_api_key(tenant, scopes=[ApiScope.TENANT_READ])
    client = _client(secret)
    urls = [
        "/api/v1/conversations",
        f"/api/v1/conversations/{conversation.pk}",
        f"/api/v1/conversations/{conversation.pk}/messages",
        f"/api/v1/contacts/{conversation.contact_id}",
    ]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 403, url
        assert response.json()["error"]["code"] == "missing_scope"
        assert "conversations:read" in response.json()["error"]["message"]


def test_key_with_only_conversations_read_may_read(
    tenant: Tenant, make_api_key: MakeKey, account: Any
) -> None:
    ConversationFactory(account=account)
    _, secret = make_api_key(tenant, scopes=[ApiScope.CONVERSATIONS_READ])

    assert _client(secret).get("/api/v1/conversations").status_code == 200


def test_writes_are_not_offered(api_client: APIClient, account: Any) -> None:
    conversation = ConversationFactory(account=account)

    assert api_client.post("/api/v1/conversations", {}, format="json").status_code == 405
    response = api_client.delete(f"/api/v1/conversations/{conversation.pk}")
    assert response.status_code == 405


# -- query counts -----------------------------------------------------------------------------


@pytest.mark.parametrize("page_size", [1, 20, 100])
def test_conversation_list_costs_the_same_queries_at_any_page_size(
    api_client: APIClient, account: Any, django_assert_max_num_queries: Any, page_size: int
) -> None:
    """P5: the conversation list costs at most 8 queries at page sizes 1, 20 and 100."""
    for i in range(page_size + 1):
        conversation = ConversationFactory(account=account, last_message_at=hours_ago(i))
        MessageFactory(conversation=conversation)

    with django_assert_max_num_queries(8):
        response = api_client.get(f"/api/v1/conversations?page_size={page_size}")

    assert len(response.json()["results"]) == page_size


@pytest.mark.parametrize("page_size", [1, 20, 100])
def test_message_list_costs_the_same_queries_at_any_page_size(
    api_client: APIClient, account: Any, django_assert_max_num_queries: Any, page_size: int
) -> None:
    """P5: a conversation's message list costs at most 9 queries at page sizes 1, 20 and 100."""
    conversation = ConversationFactory(account=account)
    previous = None
    for i in range(page_size + 1):
        message = MessageFactory(
            conversation=conversation,
            sent_at=hours_ago(200 - i),
            reply_to_mid=previous.mid if previous else "",
        )
        ReactionFactory(message=message)
        previous = message

    with django_assert_max_num_queries(9):
        response = api_client.get(
            f"/api/v1/conversations/{conversation.pk}/messages?page_size={page_size}"
        )

    results = response.json()["results"]
    assert len(results) == page_size
    assert all(len(m["reactions"]) == 1 for m in results)


# -- schema -----------------------------------------------------------------------------------


def test_schema_documents_the_conversations_api(client: Any) -> None:
    schema = client.get("/api/v1/schema/", HTTP_ACCEPT="application/json").json()

    paths = schema["paths"]
    listed = paths["/api/v1/conversations"]["get"]
    names = {p["name"] for p in listed["parameters"]}
    assert {"account", "status", "assignee", "unread", "updated_since", "cursor"} <= names
    assert "/api/v1/conversations/{id}" in paths
    assert "/api/v1/conversations/{conversation_id}/messages" in paths
    assert "/api/v1/contacts/{id}" in paths
    message = schema["components"]["schemas"]["MessageOutput"]["properties"]
    assert {"reactions", "reply_to", "story", "unsent", "edited", "error"} <= set(message)
