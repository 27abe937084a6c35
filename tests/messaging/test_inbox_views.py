"""The read-only web inbox: the list, a thread with every kind of message, and isolation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from django_scopes import scope

from accounts.models import AccountAccess, Membership, Role, Tenant
from integrations.meta.client import INSTAGRAM_INBOX_APP_ID
from messaging.models import BackfillJob, Message, Reaction
from tests.factories import InstagramAccountFactory, ScopedFactory
from tests.messaging.factories import (
    ConversationFactory,
    MessageFactory,
    ReactionFactory,
    hours_ago,
)

pytestmark = pytest.mark.django_db

CDN = "https://scontent.cdninstagram.com/v/t51/"


class BackfillJobFactory(ScopedFactory[BackfillJob]):
    class Meta:
        model = BackfillJob


@pytest.fixture
def account(tenant: Tenant) -> Any:
    return InstagramAccountFactory(tenant=tenant, username="acme.store")


def _client_for(
    tenant: Tenant, role: str, make_member: Callable[..., Membership], login: Any
) -> Client:
    return login(make_member(tenant, role).user)


# -- the list --------------------------------------------------------------------------------


def test_list_shows_the_workspaces_conversations_with_previews(
    agent_client: Client, account: Any, other_tenant: Tenant
) -> None:
    mine = ConversationFactory(account=account, contact__name="Alice Martin", unread_count=2)
    MessageFactory(conversation=mine, text="Do you ship to Lisbon?")
    unsent = ConversationFactory(account=account, contact__name="Bob Stone")
    MessageFactory(conversation=unsent, text="private words", deleted_at=timezone.now())
    theirs = ConversationFactory(
        account=InstagramAccountFactory(tenant=other_tenant), contact__name="Zed Other"
    )

    response = agent_client.get("/inbox/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "Alice Martin" in html
    assert "Do you ship to Lisbon?" in html
    assert f"/inbox/{mine.pk}/" in html
    assert "Message unsent" in html
    assert "private words" not in html
    assert "Zed Other" not in html
    assert f"/inbox/{theirs.pk}/" not in html
    assert "inbox.css" in html


def test_list_filters_by_account(agent_client: Client, tenant: Tenant, account: Any) -> None:
    other_account = InstagramAccountFactory(tenant=tenant, username="bella.boutique")
    ConversationFactory(account=account, contact__name="Alice Martin")
    ConversationFactory(account=other_account, contact__name="Carla Nunez")

    html = agent_client.get(f"/inbox/?account={other_account.pk}").content.decode()

    assert "Carla Nunez" in html
    assert "Alice Martin" not in html


def test_list_header_shows_history_import_progress_and_failures(
    agent_client: Client, tenant: Tenant, account: Any
) -> None:
    fresh = InstagramAccountFactory(tenant=tenant, username="fresh.start")
    BackfillJobFactory(
        tenant=tenant,
        account=account,
        status=BackfillJob.Status.RUNNING,
        conversations_done=120,
        conversations_estimate=200,
    )
    BackfillJobFactory(
        tenant=tenant,
        account=fresh,
        status=BackfillJob.Status.FAILED,
        error="messaging not available for this account yet",
    )

    html = agent_client.get("/inbox/").content.decode()
    assert "History import: 120 of ~200 conversations" in html
    assert "messaging not available for this account yet" in html

    only_acme = agent_client.get(f"/inbox/?account={account.pk}").content.decode()
    assert "120 of ~200" in only_acme
    assert "messaging not available" not in only_acme


def test_list_costs_the_same_queries_for_more_conversations(
    agent_client: Client, account: Any, django_assert_max_num_queries: Any
) -> None:
    """P5: the inbox list with 30 conversations stays within 20 queries."""
    for i in range(30):
        conversation = ConversationFactory(account=account, last_message_at=hours_ago(i))
        MessageFactory(conversation=conversation)

    with django_assert_max_num_queries(20):
        assert agent_client.get("/inbox/").status_code == 200


# -- a thread ---------------------------------------------------------------------------------


@pytest.fixture
def thread(account: Any) -> dict[str, Any]:
    conversation = ConversationFactory(account=account, contact__name="Alice Martin")
    at = iter(hours_ago(h) for h in range(60, 0, -1))

    def make(**kwargs: Any) -> Message:
        return MessageFactory(conversation=conversation, sent_at=next(at), **kwargs)

    made = {
        "text": make(text="Hello there"),
        "image": make(kind="image", text="", attachments=[{"type": "image", "url": CDN + "i.jpg"}]),
        "video": make(kind="video", text="", attachments=[{"type": "video", "url": CDN + "v.mp4"}]),
        "audio": make(kind="audio", text="", attachments=[{"type": "audio", "url": CDN + "a.m4a"}]),
        "file": make(
            kind="file",
            text="",
            attachments=[{"type": "file", "url": CDN + "f.pdf", "title": "invoice.pdf"}],
        ),
        "old_story": make(
            kind="story_mention",
            text="",
            attachments=[{"type": "story_mention", "url": CDN + "old-story.jpg"}],
        ),
        "post": make(
            kind="post_share",
            text="",
            attachments=[{"type": "post_share", "url": CDN + "post.jpg", "title": "New drop"}],
        ),
        "reel": make(
            kind="reel_share", text="", attachments=[{"type": "reel_share", "url": CDN + "r.mp4"}]
        ),
        "unsupported": make(kind="unsupported", text=""),
        "unsent": make(text="regret this", deleted_at=timezone.now()),
        "echo": make(
            direction="out",
            sender_kind="external",
            app_id=INSTAGRAM_INBOX_APP_ID,
            text="Answered from the phone",
        ),
        "edited": make(text="Fixed typo", edited_at=timezone.now(), edit_count=1),
    }
    made["reply"] = make(
        direction="out", sender_kind="agent", text="Yes we do!", reply_to_mid=made["text"].mid
    )
    made["story"] = MessageFactory(
        conversation=conversation,
        kind="story_mention",
        text="",
        attachments=[{"type": "story_mention", "url": CDN + "fresh-story.jpg"}],
        sent_at=hours_ago(0.5),
    )
    made["story_reply"] = MessageFactory(
        conversation=conversation,
        kind="story_reply",
        text="Love this!",
        reply_to_story={"id": "1", "url": CDN + "replied-story.jpg"},
        sent_at=hours_ago(0.25),
    )
    ReactionFactory(message=made["reply"], actor=Reaction.Actor.CUSTOMER, emoji="😍")
    return {"conversation": conversation, **made}


def test_thread_renders_every_kind_as_a_person_expects(
    agent_client: Client, thread: dict[str, Any]
) -> None:
    response = agent_client.get(f"/inbox/{thread['conversation'].pk}/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "Alice Martin" in html
    assert "Hello there" in html
    assert f'<img class="msg__media" src="{CDN}i.jpg"' in html
    assert f'<video class="msg__media" controls preload="metadata" src="{CDN}v.mp4"' in html
    assert f'src="{CDN}a.m4a"' in html
    assert "<audio" in html
    assert f'href="{CDN}f.pdf"' in html
    assert "invoice.pdf" in html
    # Stories disappear after 24 hours: the old one is a placeholder, the fresh one a link.
    assert "Story no longer available" in html
    assert CDN + "old-story.jpg" not in html
    assert f'href="{CDN}fresh-story.jpg"' in html
    assert "Mentioned you in their story" in html
    assert "Replied to your story" in html
    assert f'href="{CDN}replied-story.jpg"' in html
    assert "Shared a post" in html
    assert "New drop" in html
    assert "Shared a reel" in html
    assert "This message can't be shown here" in html
    assert "This message was unsent" in html
    assert "regret this" not in html
    assert "Sent from the Instagram app" in html
    assert 'data-testid="edited"' in html
    assert 'data-testid="quote"' in html
    assert html.index('data-testid="quote"') < html.index("Yes we do!")
    assert "😍" in html


def test_thread_of_another_workspace_is_not_found(
    agent_client: Client, other_tenant: Tenant
) -> None:
    theirs = ConversationFactory(account=InstagramAccountFactory(tenant=other_tenant))
    MessageFactory(conversation=theirs, text="not for you")

    response = agent_client.get(f"/inbox/{theirs.pk}/")

    assert response.status_code == 404
    assert "not for you" not in response.content.decode()
    assert agent_client.get("/inbox/999999999/").status_code == 404


@pytest.mark.parametrize("role", [Role.VIEWER, Role.AGENT, Role.ADMIN, Role.OWNER])
def test_every_role_can_read(
    role: str,
    tenant: Tenant,
    make_member: Callable[..., Membership],
    login: Any,
    thread: dict[str, Any],
) -> None:
    client = _client_for(tenant, role, make_member, login)

    assert client.get("/inbox/").status_code == 200
    assert client.get(f"/inbox/{thread['conversation'].pk}/").status_code == 200


def test_signed_out_people_are_sent_to_log_in(client: Client, thread: dict[str, Any]) -> None:
    response = client.get(f"/inbox/{thread['conversation'].pk}/")

    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


def test_thread_costs_the_same_queries_for_more_messages(
    agent_client: Client, thread: dict[str, Any], django_assert_max_num_queries: Any
) -> None:
    """P5: a thread with 40 more messages and reactions stays within 30 queries."""
    for _ in range(40):
        ReactionFactory(message=MessageFactory(conversation=thread["conversation"]))

    with django_assert_max_num_queries(30):
        assert agent_client.get(f"/inbox/{thread['conversation'].pk}/").status_code == 200


def test_agent_limited_to_some_accounts_sees_only_their_conversations(
    tenant: Tenant, make_member: Callable[..., Membership], login: Any, account: Any
) -> None:
    other_account = InstagramAccountFactory(tenant=tenant, username="bella.boutique")
    allowed = ConversationFactory(account=account, contact__name="Alice Martin")
    hidden = ConversationFactory(account=other_account, contact__name="Carla Nunez")
    membership = make_member(tenant, Role.AGENT)
    membership.accounts_limited = True
    with scope(tenant=tenant):
        membership.save(update_fields=["accounts_limited"])
        AccountAccess.objects.create(tenant=tenant, membership=membership, account=account)
    client = login(membership.user)

    html = client.get("/inbox/").content.decode()

    assert "Alice Martin" in html
    assert "Carla Nunez" not in html
    assert client.get(f"/inbox/{allowed.pk}/").status_code == 200
    assert client.get(f"/inbox/{hidden.pk}/").status_code == 404
    assert "Carla Nunez" not in client.get(f"/inbox/?account={other_account.pk}").content.decode()
