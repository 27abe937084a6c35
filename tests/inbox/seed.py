"""A believable agency inbox for the inbox tests and screenshots: accounts in every health,
conversations in every window state, a thread with every kind of message, labels, notes,
saved replies and comments."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.utils import timezone
from django_scopes import scope

from accounts.models import InstagramAccount, Membership, MessagingStatus, Role, Tenant, User
from integrations.meta.client import INSTAGRAM_INBOX_APP_ID
from messaging.models import (
    CannedReply,
    Comment,
    Conversation,
    ConversationLabel,
    Label,
    Message,
    Note,
    Reaction,
)
from tests.factories import InstagramAccountFactory, MembershipFactory, TenantFactory, UserFactory
from tests.messaging.factories import ConversationFactory, MessageFactory, ReactionFactory

CDN = "https://scontent.cdninstagram.com/v/t51/"


def photo(a: str, b: str, label: str = "") -> str:
    """A small gradient picture as a data URL, standing in for Meta's CDN in screenshots."""
    text = (
        f"<text x='50%' y='54%' font-family='sans-serif' font-size='22' font-weight='700' "
        f"fill='white' text-anchor='middle' opacity='.9'>{label}</text>"
        if label
        else ""
    )
    svg = (
        "<svg xmlns='http://www.w3.org/2000/svg' width='360' height='440'>"
        f"<defs><linearGradient id='g' x1='0' y1='0' x2='1' y2='1'><stop offset='0' "
        f"stop-color='{a}'/><stop offset='1' stop-color='{b}'/></linearGradient></defs>"
        "<rect width='360' height='440' fill='url(#g)'/>"
        "<circle cx='260' cy='120' r='56' fill='white' opacity='.25'/>"
        "<path d='M0 360 L120 250 L220 330 L300 270 L360 320 L360 440 L0 440Z' fill='white' "
        f"opacity='.22'/>{text}</svg>"
    )
    return "data:image/svg+xml," + svg.replace("#", "%23").replace("<", "%3C").replace(">", "%3E")


ACME_IG = "17841400000000001"


def ago(**delta: float) -> Any:
    return timezone.now() - timedelta(**delta)


@dataclass
class World:
    tenant: Tenant
    owner: Membership
    agent: Membership
    viewer: Membership
    acme: InstagramAccount
    bella: InstagramAccount
    quiet: InstagramAccount
    every_kind: Conversation
    open_: Conversation
    human: Conversation
    closed: Conversation
    comment: Comment
    conversations: list[Conversation] = field(default_factory=list)


def _user(email: str, first: str, last: str) -> User:
    return UserFactory(email=email, first_name=first, last_name=last)


def seed_world(
    *, acme_ig_user_id: str = "", acme_token: str = "", domain: str = "northwind.example"
) -> World:
    tenant = TenantFactory(name="Northwind Social" if domain == "northwind.example" else domain)
    owner = MembershipFactory(
        tenant=tenant, role=Role.OWNER, user=_user("olivia@" + domain, "Olivia", "Park")
    )
    agent = MembershipFactory(
        tenant=tenant, role=Role.AGENT, user=_user("sam@" + domain, "Sam", "Reyes")
    )
    viewer = MembershipFactory(
        tenant=tenant, role=Role.VIEWER, user=_user("vic@" + domain, "Vic", "Lane")
    )
    MembershipFactory(tenant=tenant, role=Role.AGENT, user=_user("maya@" + domain, "Maya", "Chen"))
    acme_kwargs: dict[str, Any] = {"username": "acme.store", "name": "Acme Store"}
    acme_kwargs["ig_user_id"] = acme_ig_user_id or f"1784149{tenant.pk:05d}0001"
    if acme_ig_user_id:
        acme_kwargs["page_id"] = "200000000000001"
    if acme_token:
        acme_kwargs["access_token"] = acme_token
    acme = InstagramAccountFactory(
        tenant=tenant, messaging_status=MessagingStatus.AVAILABLE, **acme_kwargs
    )
    bella = InstagramAccountFactory(
        tenant=tenant,
        username="bella.boutique",
        name="Bella Boutique",
        ig_user_id=f"1784149{tenant.pk:05d}0002",
        messaging_status=MessagingStatus.AVAILABLE,
    )
    quiet = InstagramAccountFactory(
        tenant=tenant,
        username="quiet.corner",
        ig_user_id=f"1784149{tenant.pk:05d}0003",
        status=InstagramAccount.Status.NEEDS_REAUTH,
    )

    with scope(tenant=tenant):
        vip = Label.objects.create(tenant=tenant, name="VIP", color=Label.Color.VIOLET)
        Label.objects.create(tenant=tenant, name="Refund", color=Label.Color.RED)
        Label.objects.create(tenant=tenant, name="Wholesale", color=Label.Color.GREEN)
        CannedReply.objects.create(
            tenant=tenant,
            shortcut="shipping",
            body="We ship worldwide in 2-4 business days. You'll get a tracking link by email.",
        )
        CannedReply.objects.create(
            tenant=tenant,
            shortcut="thanks",
            body="Thank you so much for reaching out!",
        )

    def convo(account: InstagramAccount, name: str, username: str, last: Any, **kw: Any) -> Any:
        conversation = ConversationFactory(
            account=account,
            contact__name=name,
            contact__username=username,
            contact__follower_count=kw.pop("followers", 1200),
            contact__follows_business=kw.pop("follows", True),
            last_message_at=last,
            customer_last_message_at=last,
            **kw,
        )
        return conversation

    # A thread with every kind, its window open (the customer wrote 48 minutes ago).
    every = convo(
        acme, "Alice Martin", "alice.martin", ago(minutes=48), unread_count=2, followers=18400
    )
    at = iter(
        ago(hours=h)
        for h in (
            30,
            29.9,
            29.8,
            29.5,
            29.4,
            29.3,
            29.2,
            29,
            28.9,
            28.5,
            28.4,
            28.3,
            28.2,
            28.1,
            2.2,
            2.1,
            2.0,
            1.9,
            1.5,
        )
    )

    def msg(**kwargs: Any) -> Message:
        return MessageFactory(conversation=every, sent_at=next(at), **kwargs)

    hello = msg(text="Hi! Do you ship to Lisbon?")
    msg(
        kind="image",
        text="",
        attachments=[{"type": "image", "url": photo("#f6a5c0", "#7f5af0", "")}],
    )
    msg(kind="video", text="", attachments=[{"type": "video", "url": CDN + "v.mp4"}])
    msg(kind="audio", text="", attachments=[{"type": "audio", "url": CDN + "a.m4a"}])
    msg(
        kind="file",
        text="",
        attachments=[{"type": "file", "url": CDN + "f.pdf", "title": "order-1042.pdf"}],
    )
    msg(
        kind="story_mention",
        text="",
        attachments=[{"type": "story_mention", "url": CDN + "old-story.jpg"}],
    )
    msg(
        kind="post_share",
        text="",
        attachments=[
            {
                "type": "share",
                "url": photo("#f4b183", "#c13fb2", "LINEN"),
                "title": "Autumn drop: linen shirts in five colours",
            }
        ],
    )
    msg(
        kind="reel_share",
        text="",
        attachments=[{"type": "reel", "url": photo("#2ec5b6", "#3a57e8", "")}],
    )
    msg(kind="unsupported", text="")
    msg(text="I want to cancel my order", deleted_at=timezone.now())
    reply = msg(
        direction="out",
        sender_kind="agent",
        sender_user=agent.user,
        text="Yes, we ship to Portugal in 2-4 days!",
        reply_to_mid=hello.mid,
    )
    msg(
        direction="out",
        sender_kind="external",
        app_id=INSTAGRAM_INBOX_APP_ID,
        text="Sent you the size guide from my phone",
    )
    msg(
        direction="out",
        sender_kind="automation",
        sender_label="Order bot",
        text="Your order #1042 has shipped. Track it at acme.store/t/1042",
    )
    msg(
        text="Thanks, got it — is the linen shirt true to size?",
        edited_at=ago(hours=28),
        edit_count=1,
    )
    msg(
        kind="story_reply",
        text="Love this color!",
        reply_to_story={"id": "1", "url": photo("#ffd166", "#ef476f", "NEW IN")},
    )
    msg(
        direction="out",
        sender_kind="partner",
        sender_label="HubSpot",
        text="Ticket #881 opened for your request",
    )
    msg(
        direction="out",
        sender_kind="agent",
        sender_user=agent.user,
        text="It runs a little large, so take your usual size or one down.",
        status="failed",
        error_code="551",
        error_message="This person isn't available right now.",
    )
    msg(
        direction="out",
        sender_kind="agent",
        sender_user=owner.user,
        text="Checking stock now…",
        status="queued",
        mid="",
    )
    msg(text="Perfect, thank you!")
    with scope(tenant=tenant):
        Conversation.objects.filter(pk=every.pk).update(
            customer_read_up_to=ago(hours=28), last_message_at=ago(minutes=48)
        )
        Message.objects.filter(conversation=every).order_by("-sent_at").filter(
            text="Perfect, thank you!"
        ).update(sent_at=ago(minutes=48))
        ReactionFactory(message=reply, actor=Reaction.Actor.CUSTOMER, emoji="😍")
        ConversationLabel.objects.create(tenant=tenant, conversation=every, label=vip)
        Note.objects.create(
            tenant=tenant,
            conversation=every,
            author=owner.user,
            body="Regular customer, ordered 6 times. @sam please follow up on the size.",
            mentions=[agent.user.pk],
        )

    human = convo(acme, "Bob Stone", "bobstone", ago(days=2, hours=3), assignee=agent.user)
    MessageFactory(
        conversation=human, text="Any update on the refund?", sent_at=human.last_message_at
    )
    closed = convo(acme, "Carla Núñez", "carla.nunez", ago(days=10), followers=530, follows=False)
    MessageFactory(
        conversation=closed, text="Is the blue one back in stock?", sent_at=closed.last_message_at
    )
    open_ = convo(bella, "Dmitri Søren", "dmitri.s", ago(minutes=5), unread_count=1)
    MessageFactory(
        conversation=open_, text="Can I book a fitting for Saturday?", sent_at=open_.last_message_at
    )
    others = [every, human, closed, open_]
    for i, (name, username, text) in enumerate(
        [
            ("Emma Laurent", "emma.lrt", "Do you have gift cards?"),
            ("Farid Haddad", "farid.h", "Order arrived damaged, what can I do?"),
            ("Grace Kim", "gracek", "Collab idea for your spring launch"),
            ("Hugo Brandt", "hugo.b", "What are your opening hours?"),
        ]
    ):
        c = convo(
            bella if i % 2 else acme,
            name,
            username,
            ago(hours=3 + i * 5),
            unread_count=1 if i == 1 else 0,
        )
        MessageFactory(conversation=c, text=text, sent_at=c.last_message_at)
        others.append(c)
    story = convo(acme, "Ines Costa", "ines.costa", ago(hours=1, minutes=30))
    MessageFactory(
        conversation=story,
        kind="story_mention",
        text="",
        sent_at=story.last_message_at,
        attachments=[{"type": "story_mention", "url": photo("#8ec5fc", "#e0c3fc", "")}],
    )
    others.append(story)
    quiet_c = convo(quiet, "Jon Weber", "jonweber", ago(hours=20))
    MessageFactory(conversation=quiet_c, text="Hello?", sent_at=quiet_c.last_message_at)
    others.append(quiet_c)

    with scope(tenant=tenant):
        comment = Comment.objects.create(
            tenant=tenant,
            account=acme,
            comment_id="17950000000000001",
            media_id="17900000000000001",
            media_product_type="FEED",
            from_id="6000000000100004",
            from_username="dmitri.s",
            text="How much is this?",
            commented_at=ago(hours=1),
        )
        Comment.objects.create(
            tenant=tenant,
            account=acme,
            comment_id="17950000000000009",
            media_id="17900000000000001",
            media_product_type="FEED",
            from_id="6000000000100002",
            from_username="bobstone",
            text="Need this in green",
            commented_at=ago(days=8),
        )
        Comment.objects.create(
            tenant=tenant,
            account=acme,
            comment_id="17950000000000010",
            media_id="17900000000000002",
            media_product_type="REELS",
            from_id="6000000000100001",
            from_username="alice.martin",
            text="Where was this filmed?",
            commented_at=ago(hours=5),
        )
    return World(
        tenant=tenant,
        owner=owner,
        agent=agent,
        viewer=viewer,
        acme=acme,
        bella=bella,
        quiet=quiet,
        every_kind=every,
        open_=open_,
        human=human,
        closed=closed,
        comment=comment,
        conversations=others,
    )
