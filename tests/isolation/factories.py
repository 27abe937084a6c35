"""Factories for tenant-owned models that tests/factories.py does not cover yet.

A child's tenant comes from its parent, as in tests/factories.py."""

from __future__ import annotations

import secrets

import factory
from django.utils import timezone

from accounts import tenancy
from accounts.models import ApiKey, ApiScope
from messaging.models import Comment, Contact, Conversation, Message, Reaction
from tests.factories import InstagramAccountFactory, ScopedFactory, TenantFactory


class ApiKeyFactory(ScopedFactory[ApiKey]):
    """A key row; its secret is not kept (use services.api_key_create to call the API)."""

    class Meta:
        model = ApiKey

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"partner key {n}")
    prefix = factory.LazyFunction(lambda: "igk_" + secrets.token_hex(6))
    key_hash = factory.LazyFunction(lambda: tenancy.secret_hash(secrets.token_urlsafe(32)))
    scopes = factory.LazyFunction(lambda: [ApiScope.MEMBERS_READ.value])


def _meta_id() -> str:
    return str(10**15 + secrets.randbelow(10**15))


class ContactFactory(ScopedFactory[Contact]):
    class Meta:
        model = Contact

    account = factory.SubFactory(InstagramAccountFactory)
    tenant = factory.LazyAttribute(lambda o: o.account.tenant)
    igsid = factory.LazyFunction(_meta_id)
    username = factory.Sequence(lambda n: f"customer_{n}")


class ConversationFactory(ScopedFactory[Conversation]):
    class Meta:
        model = Conversation

    contact = factory.SubFactory(ContactFactory)
    account = factory.LazyAttribute(lambda o: o.contact.account)
    tenant = factory.LazyAttribute(lambda o: o.contact.tenant)


class MessageFactory(ScopedFactory[Message]):
    class Meta:
        model = Message

    conversation = factory.SubFactory(ConversationFactory)
    account = factory.LazyAttribute(lambda o: o.conversation.account)
    tenant = factory.LazyAttribute(lambda o: o.conversation.tenant)
    mid = factory.LazyFunction(lambda: "aWdfZAG1" + secrets.token_urlsafe(24))
    direction = Message.Direction.INBOUND
    sender_kind = Message.SenderKind.CUSTOMER
    text = factory.Sequence(lambda n: f"Hello, is the order {n} shipped?")
    sent_at = factory.LazyFunction(timezone.now)


class ReactionFactory(ScopedFactory[Reaction]):
    class Meta:
        model = Reaction

    account = factory.SubFactory(InstagramAccountFactory)
    tenant = factory.LazyAttribute(lambda o: o.account.tenant)
    message_mid = factory.LazyFunction(lambda: "aWdfZAG1" + secrets.token_urlsafe(24))
    actor = Reaction.Actor.CUSTOMER
    emoji = "\u2764"
    reacted_at = factory.LazyFunction(timezone.now)


class CommentFactory(ScopedFactory[Comment]):
    class Meta:
        model = Comment

    account = factory.SubFactory(InstagramAccountFactory)
    tenant = factory.LazyAttribute(lambda o: o.account.tenant)
    comment_id = factory.LazyFunction(_meta_id)
    text = factory.Sequence(lambda n: f"Love this, comment {n}")
    commented_at = factory.LazyFunction(timezone.now)
