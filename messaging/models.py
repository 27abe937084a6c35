"""Contacts, conversations, messages, reactions and comments: the inbox's state.

Every row carries its own tenant and is reached only through scoped managers. Meta's ids are
unique where Meta makes them unique: a customer's IGSID and a message's mid within one
Instagram account, a comment id within one account.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import ClassVar, Self

from django.conf import settings
from django.db import models
from django_scopes import ScopedManager

from accounts.models import InstagramAccount, Tenant

REPLY_WINDOW = timedelta(hours=24)
HUMAN_AGENT_WINDOW = timedelta(days=7)


class Contact(models.Model):
    """One customer as seen by one Instagram account (Meta's IGSID is per business)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    account = models.ForeignKey(InstagramAccount, on_delete=models.CASCADE, related_name="contacts")
    igsid = models.CharField(max_length=64)
    username = models.CharField(max_length=64, blank=True)
    name = models.CharField(max_length=200, blank=True)
    profile_pic_url = models.URLField(max_length=2000, blank=True)
    follower_count = models.PositiveIntegerField(null=True, blank=True)
    follows_business = models.BooleanField(null=True, blank=True)
    business_follows = models.BooleanField(null=True, blank=True)
    is_verified = models.BooleanField(null=True, blank=True)
    profile_fetched_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects: ClassVar[models.Manager[Self]] = ScopedManager(tenant="tenant")

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["account", "igsid"], name="contact_unique_igsid")
        ]

    def __str__(self) -> str:
        return self.display_name

    @property
    def display_name(self) -> str:
        return self.name or (f"@{self.username}" if self.username else f"Customer {self.igsid}")


class WindowOpener(models.TextChoices):
    MESSAGE = "message", "Direct message"
    STORY_MENTION = "story_mention", "Story mention"
    STORY_REPLY = "story_reply", "Story reply"
    COMMENT = "comment", "Comment"
    REFERRAL = "referral", "Ad or link referral"
    POSTBACK = "postback", "Button tap"


class Conversation(models.Model):
    """The thread between one Instagram account and one contact."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        RESOLVED = "resolved", "Resolved"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    account = models.ForeignKey(
        InstagramAccount, on_delete=models.CASCADE, related_name="conversations"
    )
    contact = models.OneToOneField(Contact, on_delete=models.CASCADE, related_name="conversation")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    unread_count = models.PositiveIntegerField(default=0)
    last_message_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # The customer's latest message (or story mention / reply): it opens the reply windows.
    customer_last_message_at = models.DateTimeField(null=True, blank=True)
    window_opened_by = models.CharField(max_length=16, choices=WindowOpener.choices, blank=True)
    # Everything the business sent up to this moment has been seen by the customer.
    customer_read_up_to = models.DateTimeField(null=True, blank=True)
    # The customer's latest read receipt, kept until the message it names is stored.
    customer_read_mid = models.CharField(max_length=1024, blank=True)
    customer_read_at = models.DateTimeField(null=True, blank=True)
    meta_conversation_id = models.CharField(max_length=128, blank=True)
    # Another app owns the thread (conversation routing): its events arrive as standby.
    owned_by_other_app = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    objects: ClassVar[models.Manager[Self]] = ScopedManager(tenant="tenant")

    class Meta:
        indexes: ClassVar = [
            models.Index(fields=["tenant", "account", "-last_message_at"], name="conv_by_recent"),
            models.Index(fields=["tenant", "status", "-last_message_at"], name="conv_by_status"),
        ]

    def __str__(self) -> str:
        return f"conversation {self.pk} with {self.contact_id}"

    @property
    def window_closes_at(self) -> datetime | None:
        if self.customer_last_message_at is None:
            return None
        return self.customer_last_message_at + REPLY_WINDOW

    @property
    def human_agent_window_closes_at(self) -> datetime | None:
        if self.customer_last_message_at is None:
            return None
        return self.customer_last_message_at + HUMAN_AGENT_WINDOW


class Message(models.Model):
    """One Direct message, either way. Unsent messages keep a tombstone without content."""

    class Direction(models.TextChoices):
        INBOUND = "in", "From the customer"
        OUTBOUND = "out", "From the business"

    class SenderKind(models.TextChoices):
        CUSTOMER = "customer", "Customer"
        AGENT = "agent", "Agent"
        AUTOMATION = "automation", "Automation"
        PARTNER = "partner", "Partner"
        # Sent by the business outside this platform: the Instagram app or another app.
        EXTERNAL = "external", "Instagram app or another app"

    class Kind(models.TextChoices):
        TEXT = "text", "Text"
        IMAGE = "image", "Image"
        VIDEO = "video", "Video"
        AUDIO = "audio", "Audio"
        FILE = "file", "File"
        STORY_MENTION = "story_mention", "Story mention"
        STORY_REPLY = "story_reply", "Story reply"
        POST_SHARE = "post_share", "Shared post"
        REEL_SHARE = "reel_share", "Shared reel"
        STORY_SHARE = "story_share", "Shared story"
        STICKER = "sticker", "Sticker"
        TEMPLATE = "template", "Template"
        POSTBACK = "postback", "Button tap"
        REFERRAL = "referral", "Referral"
        UNSUPPORTED = "unsupported", "Unsupported content"
        UNKNOWN = "unknown", "Not yet received"

    class Status(models.TextChoices):
        RECEIVED = "received", "Received"
        QUEUED = "queued", "Queued"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    account = models.ForeignKey(InstagramAccount, on_delete=models.CASCADE, related_name="+")
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    # Meta's message id; empty until an outbound message is accepted by Meta.
    mid = models.CharField(max_length=1024, blank=True)
    direction = models.CharField(max_length=3, choices=Direction.choices)
    sender_kind = models.CharField(max_length=16, choices=SenderKind.choices)
    sender_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    sender_label = models.CharField(max_length=120, blank=True)  # automation or partner name
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.TEXT)
    text = models.TextField(blank=True)
    # [{"type", "url", "title", "media_id", "expires_at"}]: Meta's CDN links, never downloaded.
    attachments = models.JSONField(default=list, blank=True)
    reply_to_mid = models.CharField(max_length=1024, blank=True)
    reply_to_story = models.JSONField(null=True, blank=True)  # {"id", "url", "link_sticker_url"}
    quick_reply_payload = models.CharField(max_length=1000, blank=True)
    postback = models.JSONField(null=True, blank=True)  # {"title", "payload"}
    referral = models.JSONField(null=True, blank=True)
    sent_at = models.DateTimeField(db_index=True)  # Meta's timestamp; threads order by it
    created_at = models.DateTimeField(auto_now_add=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RECEIVED)
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.TextField(blank=True)
    app_id = models.CharField(max_length=64, blank=True)  # the app that sent an echo
    is_standby = models.BooleanField(default=False)
    edited_at = models.DateTimeField(null=True, blank=True)
    edit_count = models.PositiveSmallIntegerField(default=0)
    deleted_at = models.DateTimeField(null=True, blank=True)  # unsent: content erased

    objects: ClassVar[models.Manager[Self]] = ScopedManager(tenant="tenant")

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["account", "mid"],
                condition=~models.Q(mid=""),
                name="message_unique_mid_per_account",
            )
        ]
        indexes: ClassVar = [
            models.Index(fields=["conversation", "sent_at", "id"], name="message_thread_order"),
        ]

    def __str__(self) -> str:
        return f"message {self.pk} ({self.kind}, {self.direction})"

    @property
    def is_unsent(self) -> bool:
        return self.deleted_at is not None


class Reaction(models.Model):
    """An emoji reaction on a message, by the customer or by the business.

    Keyed by the message's mid so a reaction that arrives before its message is kept and
    shows up once the message does.
    """

    class Actor(models.TextChoices):
        CUSTOMER = "customer", "Customer"
        BUSINESS = "business", "Business"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    account = models.ForeignKey(InstagramAccount, on_delete=models.CASCADE, related_name="+")
    message_mid = models.CharField(max_length=1024)
    actor = models.CharField(max_length=16, choices=Actor.choices)
    emoji = models.CharField(max_length=32, blank=True)
    reaction = models.CharField(max_length=32, blank=True)  # Meta's name, e.g. "love"
    reacted_at = models.DateTimeField()  # when it was last set or removed
    removed_at = models.DateTimeField(null=True, blank=True)  # unreacted: not shown

    objects: ClassVar[models.Manager[Self]] = ScopedManager(tenant="tenant")

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["account", "message_mid", "actor"], name="reaction_unique_per_actor"
            )
        ]

    def __str__(self) -> str:
        return f"{self.emoji or self.reaction} on {self.message_mid[:12]}"


class Comment(models.Model):
    """A comment on one of the account's posts or reels: the door to a private reply."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    account = models.ForeignKey(InstagramAccount, on_delete=models.CASCADE, related_name="comments")
    comment_id = models.CharField(max_length=64)
    media_id = models.CharField(max_length=64, blank=True)
    media_product_type = models.CharField(max_length=16, blank=True)
    parent_id = models.CharField(max_length=64, blank=True)
    from_id = models.CharField(max_length=64, blank=True)
    from_username = models.CharField(max_length=64, blank=True)
    text = models.TextField(blank=True)
    is_live = models.BooleanField(default=False)
    commented_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    private_reply_at = models.DateTimeField(null=True, blank=True)
    private_reply = models.ForeignKey(
        Message, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    objects: ClassVar[models.Manager[Self]] = ScopedManager(tenant="tenant")

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["account", "comment_id"], name="comment_unique_per_account"
            )
        ]

    def __str__(self) -> str:
        return f"comment {self.comment_id}"


# -- Backfill --------------------------------------------------------------------------------


class BackfillJob(models.Model):
    """One import of an account's history through the Conversations API, resumable by cursor.

    ``cursor`` is Meta's ``after`` cursor of the last page of conversations fully imported, so
    a run that stops anywhere picks up at the next page; the counts grow with that cursor.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    account = models.ForeignKey(
        InstagramAccount, on_delete=models.CASCADE, related_name="backfill_jobs"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    conversations_done = models.PositiveIntegerField(default=0)
    # A running estimate of how many conversations the account has (exact once done).
    conversations_estimate = models.PositiveIntegerField(null=True, blank=True)
    messages_done = models.PositiveIntegerField(default=0)
    cursor = models.CharField(max_length=2000, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects: ClassVar[models.Manager[Self]] = ScopedManager(tenant="tenant")

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["account"],
                condition=models.Q(status__in=["queued", "running"]),
                name="backfill_one_active_per_account",
            )
        ]
        indexes: ClassVar = [
            models.Index(fields=["account", "-created_at"], name="backfill_latest"),
        ]

    def __str__(self) -> str:
        return f"backfill {self.pk} of {self.account_id} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in (self.Status.QUEUED, self.Status.RUNNING)
