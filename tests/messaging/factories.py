"""Messaging factories. Each row's tenant comes from its parent account, never on its own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import factory
from django.utils import timezone

from messaging.models import Comment, Contact, Conversation, Message, Reaction
from tests.factories import InstagramAccountFactory, ScopedFactory


class ContactFactory(ScopedFactory[Contact]):
    class Meta:
        model = Contact

    account = factory.SubFactory(InstagramAccountFactory)
    tenant = factory.SelfAttribute("account.tenant")
    igsid = factory.Sequence(lambda n: f"69{n:014d}")
    username = factory.Sequence(lambda n: f"customer_{n}")
    name = factory.Faker("name")


class ConversationFactory(ScopedFactory[Conversation]):
    class Meta:
        model = Conversation

    account = factory.SubFactory(InstagramAccountFactory)
    tenant = factory.SelfAttribute("account.tenant")
    contact = factory.SubFactory(ContactFactory, account=factory.SelfAttribute("..account"))
    last_message_at = factory.LazyFunction(timezone.now)
    customer_last_message_at = factory.SelfAttribute("last_message_at")


class MessageFactory(ScopedFactory[Message]):
    class Meta:
        model = Message

    conversation = factory.SubFactory(ConversationFactory)
    account = factory.SelfAttribute("conversation.account")
    tenant = factory.SelfAttribute("conversation.tenant")
    mid = factory.Sequence(lambda n: f"aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOj{n:010d}")
    direction = Message.Direction.INBOUND
    sender_kind = factory.LazyAttribute(
        lambda o: (
            Message.SenderKind.CUSTOMER
            if o.direction == Message.Direction.INBOUND
            else Message.SenderKind.AGENT
        )
    )
    kind = Message.Kind.TEXT
    text = factory.Faker("sentence")
    sent_at = factory.LazyFunction(timezone.now)
    status = factory.LazyAttribute(
        lambda o: (
            Message.Status.RECEIVED
            if o.direction == Message.Direction.INBOUND
            else Message.Status.SENT
        )
    )


class ReactionFactory(ScopedFactory[Reaction]):
    """A reaction on ``message`` (not a model field: it gives the account and mid)."""

    class Meta:
        model = Reaction
        exclude = ("message",)

    message = factory.SubFactory(MessageFactory)
    account = factory.SelfAttribute("message.account")
    tenant = factory.SelfAttribute("message.tenant")
    message_mid = factory.SelfAttribute("message.mid")
    actor = Reaction.Actor.CUSTOMER
    reaction = "love"
    emoji = "\u2764\ufe0f"
    reacted_at = factory.LazyFunction(timezone.now)


class CommentFactory(ScopedFactory[Comment]):
    class Meta:
        model = Comment

    account = factory.SubFactory(InstagramAccountFactory)
    tenant = factory.SelfAttribute("account.tenant")
    comment_id = factory.Sequence(lambda n: f"1795{n:011d}")
    media_id = "17900000000000001"
    from_id = factory.Sequence(lambda n: f"1784{n:011d}")
    from_username = factory.Sequence(lambda n: f"commenter_{n}")
    text = factory.Faker("sentence")
    commented_at = factory.LazyFunction(timezone.now)


def hours_ago(hours: float) -> datetime:
    return datetime.now(UTC) - timedelta(hours=hours)
