"""Partner API: ``expand`` embeds a conversation's contact, last message and assignee in full,
in a fixed number of queries whatever the page size."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_scopes import scope
from rest_framework.test import APIClient

from accounts.models import Tenant
from messaging.models import ConversationLabel, Label
from tests.factories import InstagramAccountFactory, UserFactory
from tests.messaging.factories import (
    ConversationFactory,
    MessageFactory,
    ReactionFactory,
    hours_ago,
)

pytestmark = pytest.mark.django_db

EXPAND_ALL = "contact,last_message,assignee"


@pytest.fixture
def account(tenant: Tenant) -> Any:
    return InstagramAccountFactory(tenant=tenant, username="acme.store")


def _threads(tenant: Tenant, account: Any, count: int) -> None:
    with scope(tenant=tenant):
        label, _ = Label.objects.get_or_create(tenant=tenant, name="VIP")
    for i in range(count):
        conversation = ConversationFactory(
            account=account, last_message_at=hours_ago(i + 1), assignee=UserFactory()
        )
        quoted = MessageFactory(conversation=conversation, sent_at=hours_ago(i + 2))
        latest = MessageFactory(
            conversation=conversation, sent_at=hours_ago(i + 1), reply_to_mid=quoted.mid
        )
        ReactionFactory(message=latest)
        with scope(tenant=tenant):
            ConversationLabel.objects.create(tenant=tenant, conversation=conversation, label=label)


def test_expand_embeds_the_whole_contact_and_last_message(
    api_client: APIClient, tenant: Tenant, account: Any
) -> None:
    _threads(tenant, account, 1)

    short = api_client.get("/api/v1/conversations").json()["results"][0]
    full = api_client.get(f"/api/v1/conversations?expand={EXPAND_ALL}").json()["results"][0]

    assert "follower_count" not in short["contact"]
    assert "reactions" not in short["last_message"]
    assert isinstance(short["assignee"], int)
    assert full["contact"]["id"] == short["contact"]["id"]
    assert full["contact"]["conversation"] == full["id"]
    assert {"follower_count", "follows_business", "is_verified"} <= set(full["contact"])
    assert full["last_message"]["id"] == short["last_message"]["id"]
    assert len(full["last_message"]["reactions"]) == 1
    assert full["last_message"]["reply_to"]["message"] is not None
    assert full["assignee"]["id"] == short["assignee"]
    assert "@" in full["assignee"]["email"]
    assert [label["name"] for label in full["labels"]] == ["VIP"]
    one = api_client.get(f"/api/v1/conversations/{full['id']}?expand=last_message,contact")
    assert one.status_code == 200
    assert one.json()["last_message"] == full["last_message"]
    assert one.json()["contact"] == full["contact"]


@pytest.mark.parametrize("expand", ["", EXPAND_ALL])
def test_a_page_costs_the_same_queries_for_3_or_40_conversations(
    api_client: APIClient,
    tenant: Tenant,
    account: Any,
    expand: str,
    django_assert_num_queries: Any,
) -> None:
    url = f"/api/v1/conversations?page_size=100&expand={expand}"
    _threads(tenant, account, 3)
    api_client.get(url)  # the key's first use writes its last-used time

    with CaptureQueriesContext(connection) as few:
        assert len(api_client.get(url).json()["results"]) == 3
    _threads(tenant, account, 37)
    with django_assert_num_queries(len(few.captured_queries)):
        assert len(api_client.get(url).json()["results"]) == 40


@pytest.mark.parametrize("expand", ["contacts", "contact,everything", "messages"])
def test_an_unknown_expand_answers_400_naming_the_choices(
    api_client: APIClient, account: Any, expand: str
) -> None:
    conversation = ConversationFactory(account=account)
    for url in ["/api/v1/conversations", f"/api/v1/conversations/{conversation.pk}"]:
        response = api_client.get(f"{url}?expand={expand}")
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["code"] == "invalid"
        assert "last_message" in error["detail"]["expand"][0]


def test_the_schema_documents_expand_with_an_example(client: Any) -> None:
    schema = client.get("/api/v1/schema/", HTTP_ACCEPT="application/json").json()
    for path in ["/api/v1/conversations", "/api/v1/conversations/{id}"]:
        parameters = {p["name"]: p for p in schema["paths"][path]["get"]["parameters"]}
        assert "last_message" in parameters["expand"]["description"]
        assert parameters["expand"]["examples"]
    components = schema["components"]["schemas"]
    assert {"ConversationContact", "ConversationLastMessage"} <= set(components)
