"""Partner API team work: assign, resolve, reopen, hand over, notes, labels, canned replies,
contact labels and comments, with the events partners receive and the errors they see."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django_scopes import scope
from rest_framework.test import APIClient

from accounts.models import ApiKey, ApiScope, Membership, Role, Tenant
from messaging.models import CannedReply, Conversation, ConversationLabel, Label, Note
from tests.factories import InstagramAccountFactory
from tests.isolation.factories import CommentFactory
from tests.messaging.factories import ConversationFactory, MessageFactory, hours_ago
from webhooks.models import CallbackEndpoint, CallbackEvent, CallbackEventType

pytestmark = pytest.mark.django_db

MakeKey = Callable[..., tuple[ApiKey, str]]


def _post(client: APIClient, url: str, body: Any = None, key: str | None = None) -> Any:
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return client.post(url, json.dumps(body or {}), content_type="application/json", **headers)


def _send(client: APIClient, method: str, url: str, body: Any = None) -> Any:
    return client.generic(method, url, json.dumps(body or {}), content_type="application/json")


def _client(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


@pytest.fixture
def account(tenant: Tenant) -> Any:
    return InstagramAccountFactory(tenant=tenant, username="acme.store")


@pytest.fixture
def conversation(account: Any) -> Conversation:
    conversation = ConversationFactory(account=account, unread_count=2)
    MessageFactory(conversation=conversation, text="Is it in stock?", sent_at=hours_ago(1))
    return conversation


@pytest.fixture
def endpoint(tenant: Tenant) -> CallbackEndpoint:
    with scope(tenant=tenant):
        return CallbackEndpoint.objects.create(
            tenant=tenant,
            url="https://partner.example/hooks",
            events=list(CallbackEventType.values),
            secret="partner-signing-secret",
        )


def _updates(tenant: Tenant) -> list[list[str]]:
    with scope(tenant=tenant):
        return [
            event.payload["changes"]
            for event in CallbackEvent.objects.filter(
                type=CallbackEventType.CONVERSATION_UPDATED
            ).order_by("sequence")
        ]


# -- assign, resolve, reopen, hand over --------------------------------------------------------


def test_assigning_by_email_shows_the_member_and_emits_conversation_updated(
    api_client: APIClient,
    tenant: Tenant,
    conversation: Conversation,
    endpoint: CallbackEndpoint,
    make_member: Callable[..., Membership],
) -> None:
    agent = make_member(tenant, Role.AGENT)
    url = f"/api/v1/conversations/{conversation.pk}/assign"

    response = _post(api_client, url, {"agent_email": agent.user.email.upper()}, key="assign-1")

    assert response.status_code == 200
    assert response.json()["assignee"] == agent.user.pk
    expanded = api_client.get(f"/api/v1/conversations/{conversation.pk}?expand=assignee").json()
    assert expanded["assignee"] == {
        "id": agent.user.pk,
        "email": agent.user.email,
        "name": agent.user.display_name,
    }
    assert _updates(tenant) == [["assignee"]]
    unassigned = _post(api_client, url, {"agent_email": None})
    assert unassigned.json()["assignee"] is None
    assert _updates(tenant) == [["assignee"], ["assignee"]]


def test_assigning_the_same_member_again_emits_nothing_more(
    api_client: APIClient,
    tenant: Tenant,
    conversation: Conversation,
    endpoint: CallbackEndpoint,
    make_member: Callable[..., Membership],
) -> None:
    agent = make_member(tenant, Role.AGENT)
    url = f"/api/v1/conversations/{conversation.pk}/assign"
    assert _post(api_client, url, {"assignee": agent.user.pk}).status_code == 200
    assert _post(api_client, url, {"assignee": agent.user.pk}).status_code == 200
    assert _updates(tenant) == [["assignee"]]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "invalid"),
        ({"agent_email": "a@example.com", "assignee": 1}, "invalid"),
        ({"agent_email": "not-an-email"}, "invalid"),
        ({"agent_email": "nobody@example.com"}, "unknown_agent"),
        ({"assignee": 2_000_000_000}, "unknown_agent"),
    ],
)
def test_assigning_with_a_bad_body_answers_400_in_the_error_shape(
    api_client: APIClient, conversation: Conversation, body: dict[str, Any], code: str
) -> None:
    response = _post(api_client, f"/api/v1/conversations/{conversation.pk}/assign", body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code


def test_a_viewer_cannot_be_assigned(
    api_client: APIClient,
    tenant: Tenant,
    conversation: Conversation,
    make_member: Callable[..., Membership],
) -> None:
    viewer = make_member(tenant, Role.VIEWER)
    response = _post(
        api_client,
        f"/api/v1/conversations/{conversation.pk}/assign",
        {"agent_email": viewer.user.email},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "assignee_not_allowed"


def test_resolve_and_reopen_change_the_status_once_each(
    api_client: APIClient, tenant: Tenant, conversation: Conversation, endpoint: CallbackEndpoint
) -> None:
    base = f"/api/v1/conversations/{conversation.pk}"

    resolved = _post(api_client, f"{base}/resolve", key="resolve-1")
    again = _post(api_client, f"{base}/resolve")
    reopened = _post(api_client, f"{base}/reopen")

    assert resolved.status_code == again.status_code == reopened.status_code == 200
    assert resolved.json()["status"] == "resolved"
    assert resolved.json()["unread_count"] == 0
    assert reopened.json()["status"] == "open"
    assert _updates(tenant) == [["status"], ["status"]]
    with scope(tenant=tenant):
        event = CallbackEvent.objects.filter(type=CallbackEventType.CONVERSATION_UPDATED).first()
    assert event is not None
    assert event.payload["conversation"]["status"] == "resolved"


def test_handover_sets_the_mode_partners_read_on_the_conversation(
    api_client: APIClient, tenant: Tenant, conversation: Conversation, endpoint: CallbackEndpoint
) -> None:
    url = f"/api/v1/conversations/{conversation.pk}/handover"
    assert api_client.get(f"/api/v1/conversations/{conversation.pk}").json()["mode"] == (
        "automation"
    )

    response = _post(api_client, url, {"mode": "human"}, key="handover-1")

    assert response.status_code == 200
    assert response.json()["mode"] == "human"
    assert _updates(tenant) == [["mode"]]
    bad = _post(api_client, url, {"mode": "robot"})
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid"
    assert "mode" in bad.json()["error"]["detail"]


def test_a_read_only_key_cannot_change_a_conversation_and_is_told_the_scope(
    tenant: Tenant, conversation: Conversation, make_api_key: MakeKey
) -> None:
    _, secret = make_api_key(tenant, scopes=[ApiScope.CONVERSATIONS_READ])
    client = _client(secret)
    base = f"/api/v1/conversations/{conversation.pk}"
    for url, body in [
        (f"{base}/assign", {"agent_email": None}),
        (f"{base}/resolve", {}),
        (f"{base}/reopen", {}),
        (f"{base}/handover", {"mode": "human"}),
        (f"{base}/notes", {"body": "hi"}),
        (f"{base}/labels", {"name": "VIP"}),
        ("/api/v1/labels", {"name": "VIP"}),
        ("/api/v1/canned-replies", {"shortcut": "hi", "body": "Hello!"}),
    ]:
        response = _post(client, url, body)
        assert response.status_code == 403, url
        assert response.json()["error"]["code"] == "missing_scope"
        assert "conversations:write" in response.json()["error"]["message"]
    assert client.get(f"{base}/notes").status_code == 200
    assert client.get("/api/v1/labels").status_code == 200


def test_a_key_without_read_scope_cannot_list_labels_notes_or_comments(
    tenant: Tenant, conversation: Conversation, make_api_key: MakeKey
) -> None:
    _, secret = make_api_key(tenant, scopes=[ApiScope.MESSAGES_SEND])
    client = _client(secret)
    for url in [
        "/api/v1/labels",
        "/api/v1/canned-replies",
        "/api/v1/comments",
        f"/api/v1/conversations/{conversation.pk}/notes",
    ]:
        response = client.get(url)
        assert response.status_code == 403, url
        assert "conversations:read" in response.json()["error"]["message"]


# -- notes -------------------------------------------------------------------------------------


def test_notes_are_added_and_listed_oldest_first(
    api_client: APIClient,
    tenant: Tenant,
    conversation: Conversation,
    make_member: Callable[..., Membership],
) -> None:
    member = make_member(tenant, Role.AGENT)
    url = f"/api/v1/conversations/{conversation.pk}/notes"
    handle = member.user.email.split("@")[0]

    first = _post(api_client, url, {"body": "Called them back."}, key="note-1")
    replay = _post(api_client, url, {"body": "Called them back."}, key="note-1")
    second = _post(
        api_client, url, {"body": f"Over to @{handle}", "agent_email": member.user.email}
    )

    assert first.status_code == replay.status_code == second.status_code == 201
    assert replay.json() == first.json()
    assert first.json()["author"] is None
    assert second.json()["author"]["email"] == member.user.email
    assert second.json()["mentions"] == [member.user.pk]
    listed = api_client.get(url).json()
    assert [n["body"] for n in listed["results"]] == ["Called them back.", f"Over to @{handle}"]
    with scope(tenant=tenant):
        assert Note.objects.count() == 2


@pytest.mark.parametrize(
    ("body", "code"), [({}, "invalid"), ({"body": "   "}, "note_empty"), ([1], "invalid")]
)
def test_a_bad_note_answers_400(
    api_client: APIClient, conversation: Conversation, body: Any, code: str
) -> None:
    response = api_client.post(
        f"/api/v1/conversations/{conversation.pk}/notes",
        json.dumps(body),
        content_type="application/json",
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code


# -- labels ------------------------------------------------------------------------------------


def test_labels_go_on_and_off_a_conversation_and_filter_the_list(
    api_client: APIClient,
    tenant: Tenant,
    account: Any,
    conversation: Conversation,
    endpoint: CallbackEndpoint,
) -> None:
    other = ConversationFactory(account=account)
    url = f"/api/v1/conversations/{conversation.pk}/labels"

    by_name = _post(api_client, url, {"name": "VIP"}, key="label-1")
    assert by_name.status_code == 200
    labels = by_name.json()["labels"]
    assert [(label["name"], label["color"]) for label in labels] == [("VIP", "blue")]
    vip = labels[0]["id"]
    again = _post(api_client, url, {"label_id": vip})
    assert again.json()["labels"] == labels

    listed = api_client.get(f"/api/v1/conversations?label={vip}").json()["results"]
    assert [item["id"] for item in listed] == [conversation.pk]
    assert other.pk not in [item["id"] for item in listed]

    removed = api_client.delete(f"{url}/{vip}")
    assert removed.status_code == 200
    assert removed.json()["labels"] == []
    assert api_client.get(f"/api/v1/conversations?label={vip}").json()["results"] == []
    assert _updates(tenant) == [["labels"], ["labels"]]


def test_applying_an_unknown_label_id_answers_400(
    api_client: APIClient, conversation: Conversation
) -> None:
    response = _post(
        api_client, f"/api/v1/conversations/{conversation.pk}/labels", {"label_id": 99999999}
    )
    assert response.status_code == 400
    assert response.json()["error"]["detail"] == {"label_id": ["No such label."]}
    both = _post(
        api_client, f"/api/v1/conversations/{conversation.pk}/labels", {"label_id": 1, "name": "x"}
    )
    assert both.status_code == 400


def test_the_label_filter_refuses_a_non_number(api_client: APIClient, account: Any) -> None:
    response = api_client.get("/api/v1/conversations?label=vip")
    assert response.status_code == 400
    assert "label" in response.json()["error"]["detail"]


def test_workspace_labels_are_created_renamed_and_deleted(
    api_client: APIClient, tenant: Tenant, conversation: Conversation
) -> None:
    created = _post(api_client, "/api/v1/labels", {"name": "Refund", "color": "red"}, key="l-1")
    assert created.status_code == 201
    label_id = created.json()["id"]
    duplicate = _post(api_client, "/api/v1/labels", {"name": "refund"})
    assert duplicate.status_code == 400
    assert duplicate.json()["error"]["code"] == "label_exists"
    bad_color = _post(api_client, "/api/v1/labels", {"name": "X", "color": "plaid"})
    assert bad_color.status_code == 400

    renamed = _send(api_client, "PATCH", f"/api/v1/labels/{label_id}", {"name": "Refunds"})
    assert renamed.status_code == 200
    assert renamed.json() == {**created.json(), "name": "Refunds"}
    assert [x["name"] for x in api_client.get("/api/v1/labels").json()["results"]] == ["Refunds"]

    _post(api_client, f"/api/v1/conversations/{conversation.pk}/labels", {"label_id": label_id})
    assert api_client.delete(f"/api/v1/labels/{label_id}").status_code == 204
    assert api_client.get(f"/api/v1/labels/{label_id}").status_code == 404
    with scope(tenant=tenant):
        assert not ConversationLabel.objects.exists()


def test_contact_labels_are_set_by_name_in_one_change(
    api_client: APIClient, tenant: Tenant, conversation: Conversation, endpoint: CallbackEndpoint
) -> None:
    with scope(tenant=tenant):
        Label.objects.create(tenant=tenant, name="VIP", color=Label.Color.VIOLET)
    url = f"/api/v1/contacts/{conversation.contact_id}/labels"

    first = _send(api_client, "PUT", url, {"labels": ["vip", "Refund", "VIP"]})
    assert first.status_code == 200
    assert [(x["name"], x["color"]) for x in first.json()] == [
        ("Refund", "blue"),
        ("VIP", "violet"),
    ]
    contact = api_client.get(f"/api/v1/contacts/{conversation.contact_id}").json()
    assert [x["name"] for x in contact["labels"]] == ["Refund", "VIP"]
    same = _send(api_client, "PUT", url, {"labels": ["Refund", "VIP"]})
    assert same.json() == first.json()
    cleared = _send(api_client, "PUT", url, {"labels": []})
    assert cleared.json() == []
    assert _updates(tenant) == [["labels"], ["labels"]]
    assert _send(api_client, "PUT", url, {"labels": "VIP"}).status_code == 400
    empty_name = _send(api_client, "PUT", url, {"labels": [" "]})
    assert empty_name.status_code == 400


# -- canned replies ----------------------------------------------------------------------------


def test_canned_replies_are_managed_through_the_api(api_client: APIClient, tenant: Tenant) -> None:
    created = _post(
        api_client,
        "/api/v1/canned-replies",
        {"shortcut": "shipping", "body": "We ship in 2 working days."},
        key="canned-1",
    )
    assert created.status_code == 201
    reply_id = created.json()["id"]
    taken = _post(api_client, "/api/v1/canned-replies", {"shortcut": "shipping", "body": "x"})
    assert taken.json()["error"]["code"] == "shortcut_taken"
    bad = _post(api_client, "/api/v1/canned-replies", {"shortcut": "Not OK!", "body": "x"})
    assert bad.json()["error"]["code"] == "shortcut_invalid"

    changed = _send(
        api_client, "PATCH", f"/api/v1/canned-replies/{reply_id}", {"body": "Two days."}
    )
    assert changed.status_code == 200
    assert changed.json()["shortcut"] == "shipping"
    assert changed.json()["body"] == "Two days."
    listed = api_client.get("/api/v1/canned-replies").json()["results"]
    assert [r["shortcut"] for r in listed] == ["shipping"]
    assert api_client.delete(f"/api/v1/canned-replies/{reply_id}").status_code == 204
    with scope(tenant=tenant):
        assert not CannedReply.objects.exists()


# -- comments ----------------------------------------------------------------------------------


def test_comments_are_listed_newest_first_and_filter_by_account_and_pending(
    api_client: APIClient, tenant: Tenant, account: Any
) -> None:
    other_account = InstagramAccountFactory(tenant=tenant)
    old = CommentFactory(account=account, commented_at=hours_ago(5), from_username="jane")
    new = CommentFactory(account=account, commented_at=hours_ago(1))
    answered = CommentFactory(account=other_account, private_reply_at=hours_ago(1))

    def ids(query: str = "") -> list[int]:
        response = api_client.get(f"/api/v1/comments{query}")
        assert response.status_code == 200, response.json()
        return [c["id"] for c in response.json()["results"]]

    assert ids() == [answered.pk, new.pk, old.pk]
    assert ids(f"?account={account.pk}") == [new.pk, old.pk]
    assert answered.pk not in ids("?pending=true")
    one = api_client.get(f"/api/v1/comments/{old.pk}").json()
    assert one["from_username"] == "jane"
    assert one["account"] == account.pk
    assert one["private_reply"] is None
    for query in ["account=abc", f"account={2**64}", "pending=maybe"]:
        bad = api_client.get(f"/api/v1/comments?{query}")
        assert bad.status_code == 400, query
        assert bad.json()["error"]["code"] == "invalid"
    huge = api_client.get(f"/api/v1/conversations?label={2**64}")
    assert huge.status_code == 400


# -- schema ------------------------------------------------------------------------------------


def test_schema_documents_every_team_work_operation(client: Any) -> None:
    schema = client.get("/api/v1/schema/", HTTP_ACCEPT="application/json").json()
    paths = schema["paths"]
    for path, method in [
        ("/api/v1/conversations/{conversation_id}/assign", "post"),
        ("/api/v1/conversations/{conversation_id}/resolve", "post"),
        ("/api/v1/conversations/{conversation_id}/reopen", "post"),
        ("/api/v1/conversations/{conversation_id}/handover", "post"),
        ("/api/v1/conversations/{conversation_id}/notes", "get"),
        ("/api/v1/conversations/{conversation_id}/notes", "post"),
        ("/api/v1/conversations/{conversation_id}/labels", "post"),
        ("/api/v1/conversations/{conversation_id}/labels/{label_id}", "delete"),
        ("/api/v1/contacts/{id}/labels", "put"),
        ("/api/v1/labels", "post"),
        ("/api/v1/labels/{id}", "patch"),
        ("/api/v1/canned-replies", "get"),
        ("/api/v1/canned-replies/{id}", "delete"),
        ("/api/v1/comments", "get"),
        ("/api/v1/comments/{id}", "get"),
    ]:
        operation = paths[path][method]
        assert {"400", "401", "403", "429"} <= set(operation["responses"]), (path, method)
        if method == "post":
            headers = {p["name"] for p in operation["parameters"] if p["in"] == "header"}
            assert "Idempotency-Key" in headers
    listed = {p["name"] for p in paths["/api/v1/conversations"]["get"]["parameters"]}
    assert {"label", "expand"} <= listed
    conversation = schema["components"]["schemas"]["ConversationOutput"]["properties"]
    assert conversation["mode"]["readOnly"] is True
    assert "labels" in conversation
    codes = schema["components"]["schemas"]["Error"]["properties"]["error"]["properties"]
    assert "unknown_agent" in codes["code"]["description"]
