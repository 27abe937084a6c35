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
from django.db.models.functions import Lower
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

    class Mode(models.TextChoices):
        AUTOMATION = "automation", "Automation"
        HUMAN = "human", "Human"

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
    # Handover: automation answers while in AUTOMATION; a person's reply (or a rule's hand-to-
    # human action) moves the thread to HUMAN, where automation stays quiet.
    mode = models.CharField(max_length=16, choices=Mode.choices, default=Mode.AUTOMATION)
    mode_changed_at = models.DateTimeField(null=True, blank=True)
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

    class ErasedReason(models.TextChoices):
        UNSENT = "unsent", "Unsent"
        RETENTION = "retention", "Removed by the retention policy"

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
    # Why the content was erased when it was not unsent (blank: unsent, or not erased).
    erased_reason = models.CharField(max_length=16, choices=ErasedReason.choices, blank=True)

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

    @property
    def erasure(self) -> str | None:
        """Why the content is gone: ``"unsent"``, ``"retention"``, or None while it is there."""
        if self.deleted_at is None:
            return None
        return self.erased_reason or self.ErasedReason.UNSENT.value


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


# -- Team work -------------------------------------------------------------------------------


class Label(models.Model):
    """A workspace's tag for conversations ("VIP", "Refund", …)."""

    class Color(models.TextChoices):
        GRAY = "gray", "Gray"
        RED = "red", "Red"
        ORANGE = "orange", "Orange"
        GREEN = "green", "Green"
        BLUE = "blue", "Blue"
        VIOLET = "violet", "Violet"
        PINK = "pink", "Pink"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=40)
    color = models.CharField(max_length=12, choices=Color.choices, default=Color.BLUE)
    created_at = models.DateTimeField(auto_now_add=True)

    objects: ClassVar[models.Manager[Self]] = ScopedManager(tenant="tenant")

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(Lower("name"), "tenant", name="label_unique_name_per_tenant")
        ]

    def __str__(self) -> str:
        return self.name


class ConversationLabel(models.Model):
    """A label on a conversation: who put it there and when."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="label_links"
    )
    label = models.ForeignKey(Label, on_delete=models.CASCADE, related_name="conversation_links")
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    added_at = models.DateTimeField(auto_now_add=True)

    objects: ClassVar[models.Manager[Self]] = ScopedManager(tenant="tenant")

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["conversation", "label"], name="conversation_label_once"
            )
        ]
        indexes: ClassVar = [models.Index(fields=["label", "conversation"], name="label_convs")]

    def __str__(self) -> str:
        return f"{self.label_id} on {self.conversation_id}"


class Note(models.Model):
    """An internal note on a conversation: seen by the team, never by the customer."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    body = models.TextField(max_length=4000)
    # Ids of the members the note @mentions (people, so a removed member's mention stays).
    mentions = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects: ClassVar[models.Manager[Self]] = ScopedManager(tenant="tenant")

    class Meta:
        indexes: ClassVar = [
            models.Index(fields=["conversation", "created_at"], name="note_by_conversation")
        ]

    def __str__(self) -> str:
        return f"note {self.pk} on {self.conversation_id}"


class CannedReply(models.Model):
    """A saved answer agents insert by typing ``/shortcut`` in the composer."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    shortcut = models.SlugField(max_length=40)
    body = models.TextField(max_length=1000)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects: ClassVar[models.Manager[Self]] = ScopedManager(tenant="tenant")

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["tenant", "shortcut"], name="canned_reply_unique_shortcut"
            )
        ]

    def __str__(self) -> str:
        return f"/{self.shortcut}"


# -- Outbound --------------------------------------------------------------------------------


class MessagingSettings(models.Model):
    """How a workspace (``account`` empty) or one of its accounts sends.

    An account's row overrides the workspace's row field by field; an empty field (None or
    "") inherits. The defaults live in ``messaging.policy.DEFAULT_SETTINGS``.
    """

    class Disclosure(models.TextChoices):
        ALWAYS = "always", "Always tell customers they are talking to automation"
        NEVER = "never", "Never add the disclosure"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    account = models.ForeignKey(
        InstagramAccount, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    # Replies by people up to 7 days after the customer's message (Meta's HUMAN_AGENT tag).
    human_agent_enabled = models.BooleanField(null=True, blank=True)
    disclosure_mode = models.CharField(max_length=8, choices=Disclosure.choices, blank=True)
    disclosure_text = models.CharField(max_length=300, blank=True)
    # Automation speaking again after this long says again that it is automation.
    disclosure_silence = models.DurationField(null=True, blank=True)
    # When another app (such as Meta's Inbox) owns a thread, take it over to answer.
    take_control_allowed = models.BooleanField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects: ClassVar[models.Manager[Self]] = ScopedManager(tenant="tenant")

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["tenant"],
                condition=models.Q(account__isnull=True),
                name="messaging_settings_one_per_tenant",
            ),
            models.UniqueConstraint(
                fields=["account"],
                condition=models.Q(account__isnull=False),
                name="messaging_settings_one_per_account",
            ),
        ]

    def __str__(self) -> str:
        return f"messaging settings of {self.account_id or f'tenant {self.tenant_id}'}"


class OutboundJob(models.Model):
    """One thing to send to Meta: the outbox row, written with its message in one transaction.

    The row is the truth; the broker only carries wake-ups. ``pending`` rows wait to be handed
    to the outbound queue (``published``); a worker claims one (``sending``) for a lease, calls
    Meta and finishes it. A row left in ``sending`` past its lease is reconciled with Meta
    before it is ever sent again. Within a conversation rows go out strictly in id order.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting"
        PUBLISHED = "published", "Queued for sending"
        SENDING = "sending", "Sending"
        HELD = "held", "Held until the account is reconnected"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        DEAD = "dead", "Gave up after retries"

    class Action(models.TextChoices):
        MESSAGE = "message", "Message"
        PRIVATE_REPLY = "private_reply", "Private reply to a comment"
        REACT = "react", "Reaction"
        UNREACT = "unreact", "Reaction removed"
        TYPING_ON = "typing_on", "Typing indicator"
        TYPING_OFF = "typing_off", "Typing indicator off"
        MARK_SEEN = "mark_seen", "Mark seen"

    ACTIVE = ("pending", "published", "sending", "held")
    FINISHED = ("sent", "failed", "dead")

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    account = models.ForeignKey(InstagramAccount, on_delete=models.CASCADE, related_name="+")
    # Empty for a private reply: Meta names the commenter's thread only once it is sent.
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    message = models.ForeignKey(
        Message, on_delete=models.CASCADE, null=True, blank=True, related_name="outbound_jobs"
    )
    comment = models.ForeignKey(
        Comment, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    action = models.CharField(max_length=16, choices=Action.choices, default=Action.MESSAGE)
    # Who sends, as the policy knows them: agent, automation, partner_human, partner_bot.
    sender_kind = models.CharField(max_length=16)
    # What goes to Meta (kind, text, attachment, quick replies, template, reaction...).
    payload = models.JSONField(default=dict)
    human_agent = models.BooleanField(default=False)
    take_control = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    # Calls to Meta made for this row (rate-limited calls are not counted).
    attempts = models.PositiveSmallIntegerField(default=0)
    # Times a worker stopped (killed, crashed) while holding the row.
    crashes = models.PositiveSmallIntegerField(default=0)
    # A call may have reached Meta without us learning its answer: look before sending again.
    uncertain = models.BooleanField(default=False)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    published_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    claimed_by = models.CharField(max_length=200, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    mid = models.CharField(max_length=1024, blank=True)
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects: ClassVar[models.Manager[Self]] = ScopedManager(tenant="tenant")

    class Meta:
        indexes: ClassVar = [
            models.Index(
                fields=["conversation", "id"],
                condition=models.Q(status__in=["pending", "published", "sending", "held"]),
                name="outbound_active_by_thread",
            ),
            models.Index(
                fields=["status", "next_attempt_at"],
                condition=models.Q(status__in=["pending", "published", "sending", "held"]),
                name="outbound_active_by_status",
            ),
            # An account's rows by state, oldest first: the relay's hand-on takes the oldest
            # waiting rows of an account and stops at the first few heads of threads
            # (messaging.outbox.pump), so it reads only those, not every row the account ever
            # sent; the in-flight count reads the same index.
            models.Index(fields=["account", "status", "id"], name="outbound_account_queue"),
            # Accounts with unfinished rows, counted by a skip scan (messaging.outbox
            # ._accounts_sending) in a few steps per account, not a read of every waiting row.
            models.Index(
                fields=["account"],
                condition=models.Q(status__in=["pending", "published", "sending", "held"]),
                name="outbound_active_by_account",
            ),
        ]

    def __str__(self) -> str:
        return f"outbound {self.pk} ({self.action}, {self.status})"


class SendAttempt(models.Model):
    """One call to Meta for an outbound row: when, how long, and what Meta answered."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    job = models.ForeignKey(OutboundJob, on_delete=models.CASCADE, related_name="send_attempts")
    number = models.PositiveSmallIntegerField()
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField(default=0)
    # sent, transient, rate_limited, auth, failed, reconciled
    outcome = models.CharField(max_length=16)
    error_code = models.CharField(max_length=64, blank=True)
    meta_code = models.IntegerField(null=True, blank=True)

    objects: ClassVar[models.Manager[Self]] = ScopedManager(tenant="tenant")

    class Meta:
        indexes: ClassVar = [models.Index(fields=["job", "number"], name="send_attempt_by_job")]

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.job_id}: {self.outcome}"


class IdempotencyKey(models.Model):
    """A partner's ``Idempotency-Key``: a repeated request answers with the first message."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    # A digest of what was asked, so one key cannot stand for two different sends.
    fingerprint = models.CharField(max_length=64)
    message = models.ForeignKey(
        Message, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects: ClassVar[models.Manager[Self]] = ScopedManager(tenant="tenant")

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["tenant", "key"], name="idempotency_key_once")
        ]

    def __str__(self) -> str:
        return f"idempotency key {self.key[:12]}"
