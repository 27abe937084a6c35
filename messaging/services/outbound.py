"""Sending: every send from the inbox, the partner API and automations starts here.

Each function decides the send with ``messaging.policy`` first (a refusal raises
``SendRefused`` and nothing is written or sent), then writes the queued message and its outbox
row in one transaction. The outbox relay and the outbound workers take it from there
(``messaging.outbox``).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from accounts.models import InstagramAccount, User
from integrations.meta.client import MAX_TEXT_BYTES
from messaging import policy
from messaging.models import (
    Comment,
    Conversation,
    Message,
    MessagingSettings,
    OutboundJob,
    Reaction,
)
from messaging.policy import MessageKind, SenderKind, SendRefused
from messaging.services.common import clean_text

logger = logging.getLogger(__name__)

MAX_QUICK_REPLIES = 13
MAX_QUICK_REPLY_TITLE = 20
MAX_ELEMENTS = 10
MAX_BUTTONS = 3
MAX_TITLE = 80
MEDIA_KINDS = frozenset({MessageKind.IMAGE, MessageKind.VIDEO, MessageKind.AUDIO, MessageKind.FILE})
# REFERENCE.md §4.9: formats and sizes Meta accepts for an uploaded attachment.
UPLOAD_LIMITS: dict[str, tuple[frozenset[str], int]] = {
    "image": (frozenset({"image/png", "image/jpeg", "image/gif"}), 8 * 1024 * 1024),
    "video": (
        frozenset({"video/mp4", "video/ogg", "video/x-msvideo", "video/quicktime", "video/webm"}),
        25 * 1024 * 1024,
    ),
    "audio": (
        frozenset({"audio/aac", "audio/mp4", "audio/x-m4a", "audio/wav", "audio/x-wav"}),
        25 * 1024 * 1024,
    ),
    "file": (frozenset({"application/pdf"}), 25 * 1024 * 1024),
}
REACTIONS = frozenset({"love"})

_STORED_KIND = {
    MessageKind.TEXT: Message.Kind.TEXT,
    MessageKind.QUICK_REPLIES: Message.Kind.TEXT,
    MessageKind.IMAGE: Message.Kind.IMAGE,
    MessageKind.VIDEO: Message.Kind.VIDEO,
    MessageKind.AUDIO: Message.Kind.AUDIO,
    MessageKind.FILE: Message.Kind.FILE,
    MessageKind.LIKE_HEART: Message.Kind.STICKER,
    MessageKind.POST_SHARE: Message.Kind.POST_SHARE,
    MessageKind.GENERIC_TEMPLATE: Message.Kind.TEMPLATE,
}
_MESSAGE_SENDER_KIND = {
    SenderKind.HUMAN_AGENT: Message.SenderKind.AGENT,
    SenderKind.AUTOMATION: Message.SenderKind.AUTOMATION,
    SenderKind.PARTNER_HUMAN: Message.SenderKind.PARTNER,
    SenderKind.PARTNER_BOT: Message.SenderKind.PARTNER,
}


class OutboundContentInvalid(ValueError):
    """The content can never be sent (too long, a missing field...): fix it and try again."""

    def __init__(self, code: str, message: str, field_name: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field_name


class IdempotencyKeyReused(ValueError):
    """The same Idempotency-Key came with a different request."""

    code = "idempotency_key_reused"
    message = "This Idempotency-Key was already used for a different request."


@dataclass(frozen=True)
class Sender:
    """Who sends: a person, an automation, or a partner app for a person or as a bot."""

    kind: SenderKind
    user: User | None = None
    label: str = ""  # the automation's or partner's name

    @classmethod
    def agent(cls, user: User) -> Sender:
        return cls(kind=SenderKind.HUMAN_AGENT, user=user)

    @classmethod
    def automation(cls, name: str) -> Sender:
        return cls(kind=SenderKind.AUTOMATION, label=name)

    @classmethod
    def partner(cls, name: str, *, on_behalf_of: User | None = None, bot: bool = False) -> Sender:
        kind = SenderKind.PARTNER_BOT if bot else SenderKind.PARTNER_HUMAN
        return cls(kind=kind, user=None if bot else on_behalf_of, label=name)


@dataclass(frozen=True)
class QuickReplyOption:
    title: str
    payload: str


@dataclass(frozen=True)
class TemplateButton:
    type: str  # web_url or postback
    title: str
    url: str = ""
    payload: str = ""


@dataclass(frozen=True)
class TemplateCard:
    title: str
    subtitle: str = ""
    image_url: str = ""
    default_action_url: str = ""
    buttons: tuple[TemplateButton, ...] = ()


@dataclass(frozen=True)
class OutboundContent:
    """What to send. ``kind`` is one of the message kinds of ``policy.MessageKind``."""

    kind: str
    text: str = ""
    url: str = ""  # image, video, audio, file by public https URL...
    attachment_id: str = ""  # ...or by an id from the attachment upload API
    media_id: str = ""  # post_share: one of the account's own posts
    quick_replies: tuple[QuickReplyOption, ...] = ()
    elements: tuple[TemplateCard, ...] = ()
    reply_to_mid: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def policy_kind(self) -> MessageKind:
        kind = MessageKind(self.kind)
        if kind == MessageKind.TEXT and self.quick_replies:
            return MessageKind.QUICK_REPLIES
        return kind

    def validate(self) -> None:
        try:
            kind = MessageKind(self.kind)
        except ValueError:
            raise OutboundContentInvalid(
                "invalid_kind", f"Unknown message kind {self.kind!r}.", "kind"
            ) from None
        if kind not in _STORED_KIND:
            raise OutboundContentInvalid(
                "invalid_kind", f"{self.kind!r} is not a message kind.", "kind"
            )
        if kind in (MessageKind.TEXT, MessageKind.QUICK_REPLIES):
            _check_text(self.text)
            if len(self.quick_replies) > MAX_QUICK_REPLIES:
                raise OutboundContentInvalid(
                    "too_many_quick_replies",
                    f"At most {MAX_QUICK_REPLIES} quick replies.",
                    "quick_replies",
                )
            for option in self.quick_replies:
                if not 0 < len(option.title) <= MAX_QUICK_REPLY_TITLE or not option.payload:
                    raise OutboundContentInvalid(
                        "invalid_quick_reply",
                        "Each quick reply needs a title of 1 to 20 characters and a payload.",
                        "quick_replies",
                    )
        elif kind in MEDIA_KINDS:
            if bool(self.url) == bool(self.attachment_id):
                raise OutboundContentInvalid(
                    "invalid_attachment",
                    "Give either the attachment's https URL or an uploaded attachment id.",
                    "url",
                )
            if self.url and not self.url.lower().startswith("https://"):
                raise OutboundContentInvalid(
                    "invalid_attachment", "Attachment URLs must be https URLs.", "url"
                )
        elif kind == MessageKind.POST_SHARE:
            if not self.media_id:
                raise OutboundContentInvalid(
                    "invalid_post", "Name the post to share (media_id).", "media_id"
                )
        elif kind == MessageKind.GENERIC_TEMPLATE:
            _check_elements(self.elements)

    def payload(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("extra", None)
        return {k: v for k, v in data.items() if v not in ("", (), [], None)}

    def fingerprint(self) -> str:
        return hashlib.sha256(
            json.dumps(self.payload(), sort_keys=True, default=str).encode()
        ).hexdigest()


def _check_text(text: str) -> None:
    if not text.strip():
        raise OutboundContentInvalid("text_required", "The message text is empty.", "text")
    size = len(text.encode("utf-8"))
    if size > MAX_TEXT_BYTES:
        raise OutboundContentInvalid(
            "text_too_long",
            f"Instagram accepts at most {MAX_TEXT_BYTES} bytes of text; this one has {size} "
            "(emoji and accented letters take more than one byte).",
            "text",
        )


def _check_elements(elements: tuple[TemplateCard, ...]) -> None:
    if not 0 < len(elements) <= MAX_ELEMENTS:
        raise OutboundContentInvalid(
            "invalid_template", f"A template has 1 to {MAX_ELEMENTS} cards.", "elements"
        )
    for card in elements:
        if not 0 < len(card.title) <= MAX_TITLE or len(card.subtitle) > MAX_TITLE:
            raise OutboundContentInvalid(
                "invalid_template",
                "Each card needs a title of at most 80 characters (subtitle at most 80).",
                "elements",
            )
        if len(card.buttons) > MAX_BUTTONS:
            raise OutboundContentInvalid(
                "invalid_template", "At most 3 buttons per card.", "elements"
            )
        for button in card.buttons:
            ok = button.title and (
                (button.type == "web_url" and button.url.startswith("https://"))
                or (button.type == "postback" and button.payload)
            )
            if not ok:
                raise OutboundContentInvalid(
                    "invalid_template",
                    "Buttons are web_url (with an https url) or postback (with a payload), "
                    "each with a title.",
                    "elements",
                )


def content_from_payload(payload: dict[str, Any]) -> OutboundContent:
    """The content stored in an outbox row, back as an ``OutboundContent``."""
    values = dict(payload)
    values["quick_replies"] = tuple(QuickReplyOption(**q) for q in values.get("quick_replies", ()))
    values["elements"] = tuple(
        TemplateCard(
            **{
                **card,
                "buttons": tuple(TemplateButton(**b) for b in card.get("buttons", ())),
            }
        )
        for card in values.get("elements", ())
    )
    return OutboundContent(**values)


def _attachments_for_display(content: OutboundContent) -> list[dict[str, Any]]:
    kind = content.policy_kind
    if kind in MEDIA_KINDS:
        item: dict[str, Any] = {"type": str(kind)}
        if content.url:
            item["url"] = content.url
        if content.attachment_id:
            item["attachment_id"] = content.attachment_id
        return [item]
    if kind == MessageKind.POST_SHARE:
        return [{"type": "post_share", "media_id": content.media_id}]
    if kind == MessageKind.LIKE_HEART:
        return [{"type": "like_heart"}]
    if kind == MessageKind.GENERIC_TEMPLATE:
        return [{"type": "template", "title": content.elements[0].title}]
    return []


# -- the outbox ------------------------------------------------------------------------------


def _wake_relay() -> None:
    """Tell the outbox relay at commit that rows wait (PostgreSQL); elsewhere it polls."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("NOTIFY outbound_jobs")


def _initial_status(account: InstagramAccount) -> str:
    if account.status == InstagramAccount.Status.NEEDS_REAUTH:
        return OutboundJob.Status.HELD
    return OutboundJob.Status.PENDING


def _sender_fields(sender: Sender) -> dict[str, Any]:
    return {
        "sender_kind": _MESSAGE_SENDER_KIND[sender.kind],
        "sender_user": sender.user,
        "sender_label": clean_text(sender.label, max_length=120),
    }


def _queue_message(
    *,
    conversation: Conversation,
    sender: Sender,
    content: OutboundContent,
    decision: policy.Decision,
    now: Any,
) -> Message:
    account = conversation.account
    payload = content.payload()
    message = Message.objects.create(
        tenant_id=conversation.tenant_id,
        account=account,
        conversation=conversation,
        direction=Message.Direction.OUTBOUND,
        kind=_STORED_KIND[content.policy_kind],
        text=clean_text(content.text),
        attachments=_attachments_for_display(content),
        reply_to_mid=clean_text(content.reply_to_mid, max_length=1024),
        sent_at=now,
        status=Message.Status.QUEUED,
        **_sender_fields(sender),
    )
    job = OutboundJob.objects.create(
        tenant_id=conversation.tenant_id,
        account=account,
        conversation=conversation,
        message=message,
        action=OutboundJob.Action.MESSAGE,
        sender_kind=sender.kind,
        payload=payload,
        human_agent=decision.human_agent,
        take_control=decision.take_control,
        status=_initial_status(account),
    )
    if job.status == OutboundJob.Status.PENDING:
        transaction.on_commit(lambda: _hand_on(job))
    return message


def _hand_on(job: OutboundJob) -> None:
    """Right after the commit, hand the thread's next row to the outbound queue when its
    account has room: a reply leaves without waiting for the relay's round. Anything that
    cannot be handed on now (the broker down, the account at its share) is left to the relay."""
    from messaging import outbox

    try:
        outbox.pump_next(job)
    except Exception:
        logger.warning("outbound %s: left to the relay", job.pk, exc_info=True)


def _with_disclosure(
    content: OutboundContent, disclosure: str
) -> tuple[OutboundContent, OutboundContent | None]:
    """The disclosure goes in front of a text when it fits, else in a message of its own."""
    if not disclosure:
        return content, None
    if content.policy_kind in (MessageKind.TEXT, MessageKind.QUICK_REPLIES):
        joined = f"{disclosure}\n\n{content.text}"
        if len(joined.encode("utf-8")) <= MAX_TEXT_BYTES:
            return OutboundContent(**{**content.__dict__, "text": joined}), None
    return content, OutboundContent(kind=MessageKind.TEXT, text=disclosure)


def _reserve_idempotency_key(
    conversation: Conversation, key: str, fingerprint: str
) -> tuple[Any, Message | None]:
    """Claim ``key`` for this request, or find the message its first use created."""
    from messaging.models import IdempotencyKey

    try:
        with transaction.atomic():
            row = IdempotencyKey.objects.create(
                tenant_id=conversation.tenant_id, key=key, fingerprint=fingerprint
            )
        return row, None
    except IntegrityError:
        row = IdempotencyKey.objects.select_related("message").get(key=key)
        if row.fingerprint != fingerprint:
            raise IdempotencyKeyReused() from None
        return row, row.message


def message_send(
    *,
    conversation: Conversation,
    sender: Sender,
    content: OutboundContent,
    idempotency_key: str | None = None,
) -> Message:
    """Queue a message to the conversation's customer; the queued ``Message``.

    Raises ``SendRefused`` when the policy refuses (nothing is written, Meta is not called),
    ``OutboundContentInvalid`` for content Instagram can never take, and
    ``IdempotencyKeyReused`` when ``idempotency_key`` came before with another request. A key
    seen before with the same request answers the message its first use created.
    """
    content.validate()
    fingerprint = hashlib.sha256(
        f"{conversation.pk}:{sender.kind}:{content.fingerprint()}".encode()
    ).hexdigest()
    with transaction.atomic():
        key_row = None
        if idempotency_key:
            key_row, first = _reserve_idempotency_key(conversation, idempotency_key, fingerprint)
            if first is not None:
                return first
        locked = (
            Conversation.objects.select_for_update(of=("self",))
            .select_related("account", "contact")
            .get(pk=conversation.pk)
        )
        decision = policy.check(conversation=locked, sender=sender.kind, kind=content.policy_kind)
        if not decision.allowed:
            raise SendRefused.from_decision(decision)
        now = timezone.now()
        content, disclosure = _with_disclosure(content, decision.disclosure)
        if disclosure is not None:
            _queue_message(
                conversation=locked, sender=sender, content=disclosure, decision=decision, now=now
            )
        message = _queue_message(
            conversation=locked, sender=sender, content=content, decision=decision, now=now
        )
        if key_row is not None:
            key_row.message = message
            key_row.save(update_fields=["message"])
        if sender.kind in policy.HUMAN_SENDERS and locked.mode != Conversation.Mode.HUMAN:
            # A person answered: automation steps back in this conversation (handover).
            from messaging.services import handover

            handover.conversation_mode_set(
                conversation=locked,
                mode=Conversation.Mode.HUMAN,
                actor=sender.user,
                reason="agent_reply",
            )
        locked.last_message_at = now
        locked.save(update_fields=["last_message_at", "updated_at"])
        _wake_relay()
    return message


def private_reply_send(*, comment: Comment, sender: Sender, text: str) -> OutboundJob:
    """Queue the one private reply a comment allows; its outbox row.

    The reply lands in the commenter's Direct inbox; the comment shows it once Meta accepts it
    (``Comment.private_reply_at``), and the customer's answer opens a normal conversation.
    """
    _check_text(text)
    with transaction.atomic():
        locked = Comment.objects.select_for_update().select_related("account").get(pk=comment.pk)
        waiting = OutboundJob.objects.filter(
            comment=locked,
            action=OutboundJob.Action.PRIVATE_REPLY,
            status__in=[*OutboundJob.ACTIVE, OutboundJob.Status.SENT],
        ).exists()
        decision = policy.check(
            conversation=None,
            sender=sender.kind,
            kind=MessageKind.PRIVATE_REPLY,
            account=locked.account,
            comment=locked,
            comment_answered=waiting,
        )
        if not decision.allowed:
            raise SendRefused.from_decision(decision)
        if decision.disclosure:
            joined = f"{decision.disclosure}\n\n{text}"
            if len(joined.encode("utf-8")) <= MAX_TEXT_BYTES:
                text = joined
        job = OutboundJob.objects.create(
            tenant_id=locked.tenant_id,
            account=locked.account,
            comment=locked,
            action=OutboundJob.Action.PRIVATE_REPLY,
            sender_kind=sender.kind,
            payload={
                "kind": MessageKind.TEXT,
                "text": clean_text(text),
                "sender_user_id": sender.user.pk if sender.user else None,
                "sender_label": sender.label,
            },
            status=_initial_status(locked.account),
        )
        _wake_relay()
    return job


def reaction_send(*, message: Message, sender: Sender, reaction: str | None) -> OutboundJob:
    """React to a customer's message (``reaction=None`` removes the business's reaction)."""
    if reaction is not None and reaction not in REACTIONS:
        raise OutboundContentInvalid(
            "invalid_reaction", "Instagram accepts the reaction 'love' only.", "reaction"
        )
    if message.direction != Message.Direction.INBOUND or not message.mid or message.is_unsent:
        raise OutboundContentInvalid(
            "not_reactable", "Only a customer's message that is still there can get a reaction."
        )
    return _sender_action(
        conversation=message.conversation,
        sender=sender,
        action=OutboundJob.Action.REACT if reaction else OutboundJob.Action.UNREACT,
        payload={"message_mid": message.mid, "reaction": reaction or ""},
    )


def sender_action_send(*, conversation: Conversation, sender: Sender, action: str) -> OutboundJob:
    """Show the typing indicator (``typing_on``/``typing_off``) or mark the thread seen."""
    if action not in (
        OutboundJob.Action.TYPING_ON,
        OutboundJob.Action.TYPING_OFF,
        OutboundJob.Action.MARK_SEEN,
    ):
        raise OutboundContentInvalid("invalid_action", f"Unknown sender action {action!r}.")
    return _sender_action(conversation=conversation, sender=sender, action=action, payload={})


def _sender_action(
    *, conversation: Conversation, sender: Sender, action: str, payload: dict[str, Any]
) -> OutboundJob:
    kinds: dict[str, MessageKind] = {
        OutboundJob.Action.REACT: MessageKind.REACTION,
        OutboundJob.Action.UNREACT: MessageKind.REACTION,
        OutboundJob.Action.MARK_SEEN: MessageKind.MARK_SEEN,
    }
    kind = kinds.get(action, MessageKind.TYPING)
    with transaction.atomic():
        locked = (
            Conversation.objects.select_for_update(of=("self",))
            .select_related("account")
            .get(pk=conversation.pk)
        )
        decision = policy.check(conversation=locked, sender=sender.kind, kind=kind)
        if not decision.allowed:
            raise SendRefused.from_decision(decision)
        job = OutboundJob.objects.create(
            tenant_id=locked.tenant_id,
            account=locked.account,
            conversation=locked,
            action=action,
            sender_kind=sender.kind,
            payload=payload,
            take_control=decision.take_control,
            status=_initial_status(locked.account),
        )
        _wake_relay()
    return job


def job_replay(*, job: OutboundJob) -> OutboundJob:
    """Send a dead or failed row again (an operator's decision); sent at most once more."""
    with transaction.atomic():
        locked = OutboundJob.objects.select_for_update().get(pk=job.pk)
        if locked.status not in (OutboundJob.Status.DEAD, OutboundJob.Status.FAILED):
            return locked
        locked.status = _initial_status(locked.account)
        locked.attempts = 0
        locked.crashes = 0
        locked.next_attempt_at = None
        locked.error_code = ""
        locked.error_message = ""
        locked.finished_at = None
        locked.save()
        if locked.message_id is not None:
            Message.objects.filter(pk=locked.message_id).update(
                status=Message.Status.QUEUED, error_code="", error_message=""
            )
        _wake_relay()
    return locked


def reaction_record(*, job: OutboundJob, at: Any) -> Reaction | None:
    """Meta accepted the business's reaction: the message shows it."""
    from messaging.services import inbound

    mid = job.payload.get("message_mid")
    if not mid:
        return None
    removed = job.action == OutboundJob.Action.UNREACT
    reaction = job.payload.get("reaction") or "love"
    return inbound.reaction_apply(
        account=job.account,
        mid=mid,
        actor=Reaction.Actor.BUSINESS,
        emoji=None if removed else "\u2764\ufe0f",
        reaction=None if removed else reaction,
        removed=removed,
        at=at,
    )


def messaging_settings_update(
    *, tenant_id: int, account: InstagramAccount | None = None, **values: Any
) -> MessagingSettings:
    """Change the workspace's (or one account's) sending settings; unnamed fields stay."""
    allowed = {
        "human_agent_enabled",
        "disclosure_mode",
        "disclosure_text",
        "disclosure_silence",
        "take_control_allowed",
    }
    unknown = set(values) - allowed
    if unknown:
        raise ValueError(f"unknown settings: {sorted(unknown)}")
    with transaction.atomic():
        row, _ = MessagingSettings.objects.select_for_update().get_or_create(
            tenant_id=tenant_id, account=account
        )
        for name, value in values.items():
            setattr(row, name, value)
        row.save()
    policy.forget_settings(tenant_id)
    return row


def attachment_upload(
    *, account: InstagramAccount, kind: str, filename: str, content: bytes, content_type: str
) -> str:
    """Upload a file a person picked to Meta's attachment upload API; the attachment id.

    Checked against Meta's formats and sizes first (REFERENCE.md §4.9); the id then goes in
    ``OutboundContent(kind=..., attachment_id=...)``.
    """
    from accounts import onboarding as accounts_onboarding
    from integrations.meta.client import client_from_settings

    if kind not in UPLOAD_LIMITS:
        raise OutboundContentInvalid("invalid_attachment", f"Cannot upload a {kind!r}.", "kind")
    types, limit = UPLOAD_LIMITS[kind]
    if content_type not in types:
        raise OutboundContentInvalid(
            "invalid_attachment",
            f"Instagram does not take {content_type or 'this type'} as {kind}.",
            "file",
        )
    if len(content) > limit:
        raise OutboundContentInvalid(
            "attachment_too_large",
            f"Instagram takes {kind} files of at most {limit // (1024 * 1024)} MB.",
            "file",
        )
    client = accounts_onboarding.account_client(client_from_settings(), account)
    upload = client.upload_attachment_file(
        kind,  # type: ignore[arg-type]
        filename=filename,
        content=content,
        content_type=content_type,
    )
    return upload.attachment_id
