"""Handover: a person's reply moves a conversation to human mode; resolving can hand it back."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django_scopes import scope

from accounts.models import InstagramAccount, Tenant
from automation.models import AccountAutomation
from messaging.models import Conversation
from messaging.services import teamwork
from messaging.services.outbound import OutboundContent, Sender, message_send
from tests.factories import InstagramAccountFactory, MembershipFactory
from tests.outbound.conftest import add_conversation

pytestmark = pytest.mark.django_db


@pytest.fixture
def account(tenant: Tenant) -> InstagramAccount:
    return InstagramAccountFactory(tenant=tenant)


def _conversation(account: InstagramAccount) -> Conversation:
    return add_conversation(account, "6000000000100001", timedelta(minutes=5))


def _text(text: str) -> OutboundContent:
    return OutboundContent(kind="text", text=text)


def test_an_agent_reply_moves_the_conversation_to_human_mode(
    tenant: Tenant, account: InstagramAccount
) -> None:
    agent = MembershipFactory(tenant=tenant)
    with scope(tenant=tenant):
        conversation = _conversation(account)
        message_send(conversation=conversation, sender=Sender.automation("Hi"), content=_text("Hi"))
        conversation.refresh_from_db()
        assert conversation.mode == Conversation.Mode.AUTOMATION
        message_send(
            conversation=conversation, sender=Sender.agent(agent.user), content=_text("Me")
        )
        conversation.refresh_from_db()
        assert conversation.mode == Conversation.Mode.HUMAN
        assert conversation.mode_changed_at is not None


def test_a_partner_relaying_a_person_moves_it_to_human_mode_but_a_bot_does_not(
    tenant: Tenant, account: InstagramAccount
) -> None:
    with scope(tenant=tenant):
        conversation = _conversation(account)
        message_send(
            conversation=conversation, sender=Sender.partner("CRM", bot=True), content=_text("A")
        )
        conversation.refresh_from_db()
        assert conversation.mode == Conversation.Mode.AUTOMATION
        message_send(conversation=conversation, sender=Sender.partner("CRM"), content=_text("B"))
        conversation.refresh_from_db()
        assert conversation.mode == Conversation.Mode.HUMAN


def test_resolving_hands_the_conversation_back_to_automation_by_default(
    tenant: Tenant, account: InstagramAccount
) -> None:
    agent = MembershipFactory(tenant=tenant)
    with scope(tenant=tenant):
        conversation = _conversation(account)
        message_send(conversation=conversation, sender=Sender.agent(agent.user), content=_text("X"))
        resolved = teamwork.conversation_resolve(conversation=conversation, actor=agent.user)
        assert resolved.mode == Conversation.Mode.AUTOMATION
        conversation.refresh_from_db()
        assert conversation.mode == Conversation.Mode.AUTOMATION


def test_resolving_keeps_human_mode_when_the_account_says_so(
    tenant: Tenant, account: InstagramAccount
) -> None:
    agent = MembershipFactory(tenant=tenant)
    with scope(tenant=tenant):
        AccountAutomation.objects.create(
            tenant=tenant, account=account, resolve_returns_to_automation=False
        )
        conversation = _conversation(account)
        message_send(conversation=conversation, sender=Sender.agent(agent.user), content=_text("X"))
        teamwork.conversation_resolve(conversation=conversation, actor=agent.user)
        conversation.refresh_from_db()
        assert conversation.status == Conversation.Status.RESOLVED
        assert conversation.mode == Conversation.Mode.HUMAN
