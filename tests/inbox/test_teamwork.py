"""Team-work services: assignment, resolve and reopen, notes with mentions, labels, saved
replies. Each is one transaction and keeps to the workspace's rules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django_scopes import scope

from accounts.models import Membership
from messaging.models import CannedReply, Conversation, ConversationLabel, Label, Note
from messaging.services import teamwork
from tests.inbox.seed import World

pytestmark = pytest.mark.django_db


def test_assign_to_a_member_and_unassign(world: World) -> None:
    with scope(tenant=world.tenant):
        before = Conversation.objects.get(pk=world.open_.pk).updated_at
        teamwork.conversation_assign(
            conversation=world.open_, assignee=world.agent, actor=world.owner.user
        )
        row = Conversation.objects.get(pk=world.open_.pk)
        assert row.assignee_id == world.agent.user_id
        assert row.updated_at > before  # live updates see it

        teamwork.conversation_assign(conversation=world.open_, assignee=None, actor=None)
        assert Conversation.objects.get(pk=world.open_.pk).assignee_id is None


def test_viewers_and_agents_without_the_account_cannot_be_assigned(
    world: World, limited_agent: Callable[..., Membership]
) -> None:
    outsider = limited_agent([world.bella])
    with scope(tenant=world.tenant):
        for who in (world.viewer, outsider):
            with pytest.raises(teamwork.TeamworkError):
                teamwork.conversation_assign(
                    conversation=world.every_kind, assignee=who, actor=world.owner.user
                )
        assert Conversation.objects.get(pk=world.every_kind.pk).assignee_id is None
        # The same agent may take a conversation of the account they see.
        teamwork.conversation_assign(
            conversation=world.open_, assignee=outsider, actor=outsider.user
        )


def test_resolve_clears_unread_and_reopen_brings_it_back(world: World) -> None:
    with scope(tenant=world.tenant):
        teamwork.conversation_resolve(conversation=world.every_kind, actor=world.agent.user)
        row = Conversation.objects.get(pk=world.every_kind.pk)
        assert (row.status, row.unread_count) == ("resolved", 0)
        teamwork.conversation_reopen(conversation=world.every_kind, actor=world.agent.user)
        assert Conversation.objects.get(pk=world.every_kind.pk).status == "open"


def test_note_mentions_members_by_email_name_or_first_name(world: World) -> None:
    with scope(tenant=world.tenant):
        note = teamwork.note_add(
            conversation=world.human,
            author=world.owner.user,
            body="@sam can you check? cc @Maya and @nobody, mail@example.com is not a mention",
        )
        maya = Membership.objects.get(user__email="maya@northwind.example")
        assert sorted(note.mentions) == sorted([world.agent.user_id, maya.user_id])
        assert Note.objects.filter(conversation=world.human).count() == 1
        with pytest.raises(teamwork.TeamworkError):
            teamwork.note_add(conversation=world.human, author=None, body="   ")


def test_labels_are_unique_per_workspace_whatever_the_case(world: World) -> None:
    with scope(tenant=world.tenant):
        with pytest.raises(teamwork.TeamworkError) as refused:
            teamwork.label_create(tenant_id=world.tenant.pk, name="vip", color="red", actor=None)
        assert refused.value.code == "label_exists"
        label = teamwork.label_apply_by_name(
            conversation=world.human, name="  Refund  ", actor=None
        )
        assert label.name == "Refund"
        assert Label.objects.filter(name__iexact="refund").count() == 1
        fresh = teamwork.label_apply_by_name(conversation=world.human, name="Urgent", actor=None)
        assert fresh.pk
        assert fresh.color == "blue"
        assert not teamwork.label_apply(conversation=world.human, label=fresh, actor=None)
        assert teamwork.label_remove(conversation=world.human, label=fresh, actor=None)
        assert not teamwork.label_remove(conversation=world.human, label=fresh, actor=None)
        assert set(
            ConversationLabel.objects.filter(conversation=world.human).values_list(
                "label__name", flat=True
            )
        ) == {"Refund"}


@pytest.mark.parametrize(
    ("shortcut", "body", "code"),
    [
        ("Has Space", "x", "shortcut_invalid"),
        ("ok", "", "canned_empty"),
        ("ok", "é" * 501, "canned_too_long"),
        ("shipping", "again", "shortcut_taken"),
    ],
)
def test_saved_replies_are_checked(world: World, shortcut: str, body: str, code: str) -> None:
    with scope(tenant=world.tenant), pytest.raises(teamwork.TeamworkError) as refused:
        teamwork.canned_reply_create(
            tenant_id=world.tenant.pk, shortcut=shortcut, body=body, actor=None
        )
    assert refused.value.code == code


def test_saved_reply_create_update_delete(world: World) -> None:
    with scope(tenant=world.tenant):
        reply = teamwork.canned_reply_create(
            tenant_id=world.tenant.pk, shortcut="/Hours", body="9 to 5", actor=None
        )
        assert reply.shortcut == "hours"
        teamwork.canned_reply_update(reply=reply, shortcut="open", body="9-17", actor=None)
        assert CannedReply.objects.get(pk=reply.pk).body == "9-17"
        teamwork.canned_reply_delete(reply=reply, actor=None)
        assert not CannedReply.objects.filter(shortcut="open").exists()


def test_mark_seen_only_touches_unread_conversations(world: World) -> None:
    with scope(tenant=world.tenant):
        before: Any = Conversation.objects.get(pk=world.closed.pk).updated_at
        teamwork.conversation_mark_seen(conversation=world.closed, actor=None)
        assert Conversation.objects.get(pk=world.closed.pk).updated_at == before
        teamwork.conversation_mark_seen(conversation=world.every_kind, actor=None)
        assert Conversation.objects.get(pk=world.every_kind.pk).unread_count == 0
