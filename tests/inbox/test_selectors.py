"""Inbox reads: filters, full-text search, counts within an agent's accounts, live fingerprints."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.utils import timezone
from django_scopes import scope

from accounts import selectors as accounts_selectors
from accounts.models import Membership
from messaging import selectors_inbox
from messaging.models import Conversation, Message
from messaging.selectors_inbox import InboxFilter
from messaging.services import teamwork
from tests.inbox.seed import World
from tests.messaging.factories import MessageFactory, ReactionFactory

pytestmark = pytest.mark.django_db


def names(world: World, membership: Membership | None = None, **params: str) -> set[str]:
    membership = membership or world.agent
    with scope(tenant=world.tenant):
        rows = selectors_inbox.conversation_inbox_list(
            inbox_filter=InboxFilter.from_params(params),
            user_id=membership.user_id,
            visible_account_ids=accounts_selectors.visible_account_ids(membership),
        )
        return {c.contact.name for c in rows}


def test_boxes_statuses_and_flags(world: World) -> None:
    everyone = names(world)
    assert "Alice Martin" in everyone
    assert len(everyone) == len(world.conversations)
    assert names(world, box="mine") == {"Bob Stone"}
    assert "Bob Stone" not in names(world, box="unassigned")
    assert names(world, unread="1") == {"Alice Martin", "Dmitri Søren", "Farid Haddad"}
    assert names(world, kind="story_mentions") == {"Alice Martin", "Ines Costa"}
    assert names(world, account=str(world.bella.pk)) == {
        "Dmitri Søren",
        "Farid Haddad",
        "Hugo Brandt",
    }
    with scope(tenant=world.tenant):
        teamwork.conversation_resolve(conversation=world.closed, actor=None)
    assert names(world, status="resolved") == {"Carla Núñez"}
    assert "Carla Núñez" not in names(world)


def test_label_filter(world: World) -> None:
    with scope(tenant=world.tenant):
        vip = selectors_inbox.label_list().get(name="VIP")
    assert names(world, label=str(vip.pk)) == {"Alice Martin"}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("alice", {"Alice Martin"}),  # a name
        ("@bobstone", {"Bob Stone"}),  # a username
        ("nunez", {"Carla Núñez"}),  # part of a username
        ("fitting saturday", {"Dmitri Søren"}),  # message text, every word
        ("linen shirt", {"Alice Martin"}),  # message text
        ("cancel", set()),  # the unsent message's words are gone
        ("stock", {"Carla Núñez", "Alice Martin"}),
    ],
)
def test_search_covers_names_usernames_and_message_text(
    world: World, query: str, expected: set[str]
) -> None:
    assert names(world, q=query) == expected


def test_search_never_shows_unsent_content(world: World) -> None:
    with scope(tenant=world.tenant):
        MessageFactory(
            conversation=world.human, text="secret password hunter2", deleted_at=timezone.now()
        )
    assert names(world, q="hunter2") == set()


def test_counts_stay_within_the_agents_accounts(
    world: World, limited_agent: Callable[..., Membership]
) -> None:
    bella_only = limited_agent([world.bella])
    with scope(tenant=world.tenant):
        everything = selectors_inbox.inbox_counts(user_id=None, visible_account_ids=None)
        limited = selectors_inbox.inbox_counts(
            user_id=bella_only.user_id,
            visible_account_ids=accounts_selectors.visible_account_ids(bella_only),
        )
    assert everything["all"] == len(world.conversations)
    assert everything["unread"] == 3
    assert everything["story_mentions"] == 2
    assert limited.pop("by_account") == {world.bella.pk: 2}
    assert limited == {
        "all": 3,
        "mine": 0,
        "unassigned": 3,
        "unread": 2,
        "resolved": 0,
        "story_mentions": 0,
        "unread_messages": 2,
    }
    assert names(world, bella_only, q="alice") == set()


def test_fingerprints_change_with_what_agents_must_see(world: World) -> None:
    conversation = world.every_kind
    with scope(tenant=world.tenant):

        def tokens() -> tuple[Any, Any]:
            return (
                selectors_inbox.list_fingerprint(visible_account_ids=None),
                selectors_inbox.thread_fingerprint(
                    conversation_id=conversation.pk, visible_account_ids=None
                ),
            )

        start = tokens()
        assert tokens() == start  # stable while nothing changes

        message = MessageFactory(conversation=conversation, text="new")
        after_message = tokens()
        assert after_message[1] != start[1]

        Message.objects.filter(pk=message.pk).update(deleted_at=timezone.now(), text="")
        assert tokens()[1] != after_message[1]

        queued = Message.objects.filter(conversation=conversation, status="queued").get()
        before_status = tokens()[1]
        Message.objects.filter(pk=queued.pk).update(status="sent")
        assert tokens()[1] != before_status

        before_reaction = tokens()[1]
        ReactionFactory(message=message, emoji="🔥")
        assert tokens()[1] != before_reaction

        before_assign = tokens()
        teamwork.conversation_assign(conversation=conversation, assignee=world.agent, actor=None)
        after_assign = tokens()
        assert after_assign[0] != before_assign[0]
        assert after_assign[1] != before_assign[1]

        hidden = selectors_inbox.thread_fingerprint(
            conversation_id=conversation.pk, visible_account_ids=[world.bella.pk]
        )
        assert hidden is None
        assert Conversation.objects.filter(pk=conversation.pk).exists()
