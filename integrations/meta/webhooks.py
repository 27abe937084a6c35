"""Typed parsing of Instagram webhook deliveries.

``parse_webhook(payload)`` takes the decoded JSON and ``parse_webhook_body(raw)`` the raw bytes;
both return a ``WebhookBatch`` of typed events. The parser is TOTAL: it never raises, whatever
the input. Anything it cannot type (a non-object top level, invalid JSON, an unknown event
kind, a malformed item) becomes an ``UnknownEvent`` with a ``reason``, so a signed but
unprocessable delivery can be stored and acknowledged instead of failing.

Shapes accepted (reference sections 3 and 13):

- envelope ``{"object", "entry": [{"id", "time", "messaging"|"standby"|"changes": [...]}]}``;
- ``standby[]`` items parse into the same event types with ``channel == "standby"``;
- ``changes[]`` with ``comments``, ``live_comments``, ``mentions``; messaging-shaped values
  inside ``changes`` (the dashboard "Test" button) parse as messaging events;
- the flat comment shape (``entry.field``/``entry.value``, or a top-level ``field``/``value``);
- comment id under ``id`` or ``comment_id``; ``share`` and ``ig_post``; ``reel`` and
  ``ig_reel``; timestamps in seconds or milliseconds, as numbers or strings.

Every event exposes ``business_id`` (the Instagram account: ``entry.id``, else derived from
sender/recipient), ``customer_id`` (the IGSID, or the commenter), ``mid``, ``timestamp``
(aware UTC; seconds and milliseconds normalised), ``channel`` and ``dedupe_key``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from integrations.meta._coerce import (
    as_bool,
    as_dict,
    as_int,
    as_list,
    as_str,
    epoch_to_ms,
    ms_to_datetime,
)

MESSAGING = "messaging"
STANDBY = "standby"
CHANGES = "changes"

TEST_ENTRY_ID = "0"

# Attachment ``type`` values as sent, mapped to the kind the product handles.
_ATTACHMENT_KINDS: dict[str, str] = {
    "image": "image",
    "video": "video",
    "audio": "audio",
    "file": "file",
    "story_mention": "story_mention",
    "share": "share",
    "ig_post": "ig_post",
    "ig_reel": "ig_reel",
    "reel": "ig_reel",
    "ig_story": "ig_story",
    "story": "ig_story",
    "ephemeral": "ephemeral",
    "fallback": "fallback",
    "template": "template",
    "like_heart": "like_heart",
    "media_share": "media_share",
    "unsupported_type": "unsupported",
    "unsupported": "unsupported",
}

_HANDOVER_KEYS = (
    "pass_thread_control",
    "take_thread_control",
    "request_thread_control",
    "release_thread_control",
    "app_roles",
)
_MESSAGING_KEYS = ("message", "message_edit", "reaction", "read", "postback", "referral")


def _digest(*parts: Any) -> str:
    """A stable short hash of JSON-like values; never raises."""
    try:
        text = json.dumps(parts, sort_keys=True, ensure_ascii=True, default=repr)
    except (TypeError, ValueError, RecursionError):
        text = "|".join(type(p).__name__ for p in parts)
    return hashlib.sha256(text.encode("ascii", "replace")).hexdigest()[:32]


def _id(value: Any) -> str | None:
    """An id field: ``{"id": ...}`` objects or bare values, as a non-empty string."""
    obj = as_dict(value)
    raw = obj.get("id") if obj is not None else value
    text = as_str(raw)
    return text if text else None


# ---------------------------------------------------------------------------------------------
# Value types


@dataclass(frozen=True, slots=True)
class Attachment:
    """One attachment of a message. ``kind`` is normalised (``reel`` -> ``ig_reel``...)."""

    type: str
    kind: str
    url: str | None = None
    title: str | None = None
    media_id: str | None = None
    sticker_id: str | None = None
    payload: dict[str, Any] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def parse(cls, value: Any) -> Attachment | None:
        obj = as_dict(value)
        if obj is None:
            return None
        raw_type = as_str(obj.get("type")) or ""
        lowered = raw_type.lower()
        payload = as_dict(obj.get("payload"))
        p = payload or {}
        media_id = (
            as_str(p.get("ig_post_media_id"))
            or as_str(p.get("reel_video_id"))
            or as_str(p.get("story_media_id"))
            or as_str(p.get("id"))
        )
        return cls(
            type=lowered,
            kind=_ATTACHMENT_KINDS.get(lowered, "unknown"),
            url=as_str(p.get("url")) or as_str(p.get("story_media_url")),
            title=as_str(p.get("title")),
            media_id=media_id,
            sticker_id=as_str(p.get("sticker_id")),
            payload=payload,
        )


@dataclass(frozen=True, slots=True)
class StoryRef:
    """The business's story a customer replied to."""

    id: str | None
    url: str | None = None
    link_sticker_url: str | None = None


@dataclass(frozen=True, slots=True)
class Referral:
    """Where a conversation came from: an ad (``ADS``), an ig.me link, a shop product..."""

    source: str | None = None
    type: str | None = None
    ref: str | None = None
    ad_id: str | None = None
    ad_title: str | None = None
    photo_url: str | None = None
    video_url: str | None = None
    product_id: str | None = None

    @property
    def is_ad(self) -> bool:
        return self.source == "ADS" or self.ad_id is not None

    @property
    def is_link(self) -> bool:
        return self.source in {"IGME-SOURCE-LINK", "SHORTLINK"}

    @classmethod
    def parse(cls, value: Any) -> Referral | None:
        obj = as_dict(value)
        if obj is None:
            return None
        ads = as_dict(obj.get("ads_context_data")) or {}
        product = as_dict(obj.get("product")) or {}
        return cls(
            source=as_str(obj.get("source")),
            type=as_str(obj.get("type")),
            ref=as_str(obj.get("ref")),
            ad_id=as_str(obj.get("ad_id")),
            ad_title=as_str(ads.get("ad_title")),
            photo_url=as_str(ads.get("photo_url")),
            video_url=as_str(ads.get("video_url")),
            product_id=as_str(product.get("id")),
        )


# ---------------------------------------------------------------------------------------------
# Events


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookEvent:
    """Fields every event has."""

    event_type: ClassVar[str] = "event"

    object: str | None
    channel: str
    entry_id: str | None
    business_id: str | None
    customer_id: str | None = None
    sender_id: str | None = None
    recipient_id: str | None = None
    mid: str | None = None
    timestamp_ms: int | None = None
    is_from_business: bool = False
    dedupe_key: str
    raw: Any = field(default=None, compare=False, repr=False)

    @property
    def timestamp(self) -> datetime | None:
        """When the event happened (aware UTC)."""
        return ms_to_datetime(self.timestamp_ms)

    @property
    def is_standby(self) -> bool:
        return self.channel == STANDBY

    @property
    def is_test(self) -> bool:
        """Dashboard "Test" deliveries use entry id ``"0"``."""
        return self.entry_id == TEST_ENTRY_ID


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageEvent(WebhookEvent):
    """A message (inbound or echo). Subclasses say what kind; all fields are always present."""

    event_type: ClassVar[str] = "message"

    text: str | None = None
    attachments: tuple[Attachment, ...] = ()
    reply_to_mid: str | None = None
    reply_to_story: StoryRef | None = None
    quick_reply_payload: str | None = None
    referral: Referral | None = None
    is_echo: bool = False
    is_self: bool = False
    is_unsupported: bool = False
    app_id: str | None = None
    metadata: str | None = None

    @property
    def display_attachments(self) -> tuple[Attachment, ...]:
        """Attachments minus a legacy ``share`` that duplicates an ``ig_post`` of this message."""
        if any(a.kind == "ig_post" for a in self.attachments):
            return tuple(a for a in self.attachments if a.kind != "share")
        return self.attachments


@dataclass(frozen=True, slots=True, kw_only=True)
class TextMessageEvent(MessageEvent):
    event_type: ClassVar[str] = "message.text"


@dataclass(frozen=True, slots=True, kw_only=True)
class AttachmentMessageEvent(MessageEvent):
    """Image, video, audio, file, share, ig_post, ig_reel, ephemeral... (see ``attachments``)."""

    event_type: ClassVar[str] = "message.attachments"


@dataclass(frozen=True, slots=True, kw_only=True)
class StoryMentionEvent(AttachmentMessageEvent):
    """The customer mentioned the business in their story (do not persist the media)."""

    event_type: ClassVar[str] = "message.story_mention"


@dataclass(frozen=True, slots=True, kw_only=True)
class StoryReplyEvent(MessageEvent):
    """The customer replied to the business's story (``reply_to_story``)."""

    event_type: ClassVar[str] = "message.story_reply"


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageReplyEvent(MessageEvent):
    """An inline reply quoting an earlier message (``reply_to_mid``)."""

    event_type: ClassVar[str] = "message.reply"


@dataclass(frozen=True, slots=True, kw_only=True)
class QuickReplyEvent(MessageEvent):
    """A quick-reply tap (``quick_reply_payload``)."""

    event_type: ClassVar[str] = "message.quick_reply"


@dataclass(frozen=True, slots=True, kw_only=True)
class EchoEvent(MessageEvent):
    """A message sent by the business (our API, the Instagram app, another tool)."""

    event_type: ClassVar[str] = "message.echo"


@dataclass(frozen=True, slots=True, kw_only=True)
class UnsupportedMessageEvent(MessageEvent):
    """A message whose content the API cannot represent."""

    event_type: ClassVar[str] = "message.unsupported"


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageDeletedEvent(WebhookEvent):
    """The customer unsent ``mid``: erase its content (keep a tombstone)."""

    event_type: ClassVar[str] = "message.deleted"


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageEditEvent(WebhookEvent):
    event_type: ClassVar[str] = "message.edit"

    text: str | None = None
    num_edit: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ReactionEvent(WebhookEvent):
    """A reaction added (``action == "react"``) or removed (``"unreact"``) on ``mid``."""

    event_type: ClassVar[str] = "reaction"

    action: str
    reaction: str | None = None
    emoji: str | None = None

    @property
    def is_removal(self) -> bool:
        return self.action == "unreact"


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadEvent(WebhookEvent):
    """Everything up to ``mid`` (or ``watermark_ms``) was seen by the customer."""

    event_type: ClassVar[str] = "read"

    watermark_ms: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PostbackEvent(WebhookEvent):
    """Ice breaker, persistent menu or template button tap (standby postbacks lack payload)."""

    event_type: ClassVar[str] = "postback"

    title: str | None = None
    payload: str | None = None
    is_self: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ReferralEvent(WebhookEvent):
    """An ig.me link or ad opened an existing or new thread without a message."""

    event_type: ClassVar[str] = "referral"

    referral: Referral


@dataclass(frozen=True, slots=True, kw_only=True)
class HandoverEvent(WebhookEvent):
    """Conversation routing: ``action`` is the webhook key (``pass_thread_control``...)."""

    event_type: ClassVar[str] = "handover"

    action: str
    previous_owner_app_id: str | None = None
    new_owner_app_id: str | None = None
    requested_owner_app_id: str | None = None
    metadata: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CommentEvent(WebhookEvent):
    """A comment on the business's media (``comments`` field). ``mid`` is unused."""

    event_type: ClassVar[str] = "comment"

    field_name: str
    comment_id: str | None
    parent_id: str | None = None
    text: str | None = None
    from_id: str | None = None
    from_username: str | None = None
    from_self_ig_scoped_id: str | None = None
    media_id: str | None = None
    media_product_type: str | None = None
    ad_id: str | None = None
    ad_title: str | None = None
    original_media_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class LiveCommentEvent(CommentEvent):
    """A comment during a live broadcast (private reply only while live)."""

    event_type: ClassVar[str] = "comment.live"


@dataclass(frozen=True, slots=True, kw_only=True)
class MentionEvent(WebhookEvent):
    """The business was @mentioned in a caption (``comment_id`` None) or a comment."""

    event_type: ClassVar[str] = "mention"

    media_id: str | None = None
    comment_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class UnknownEvent(WebhookEvent):
    """Anything the parser could not type; ``reason`` says why. Store raw, do not act."""

    event_type: ClassVar[str] = "unknown"

    reason: str


@dataclass(frozen=True, slots=True)
class WebhookBatch:
    """All events of one delivery, in delivery order."""

    object: str | None
    events: tuple[WebhookEvent, ...]

    def __iter__(self) -> Iterator[WebhookEvent]:
        return iter(self.events)

    def __len__(self) -> int:
        return len(self.events)

    @property
    def unknown(self) -> tuple[UnknownEvent, ...]:
        return tuple(e for e in self.events if isinstance(e, UnknownEvent))

    def for_business(self, business_id: str) -> tuple[WebhookEvent, ...]:
        return tuple(e for e in self.events if e.business_id == business_id)


# ---------------------------------------------------------------------------------------------
# Parser


@dataclass(frozen=True, slots=True)
class _Context:
    object: str | None
    entry_id: str | None
    entry_time_ms: int | None
    channel: str


def _unknown(ctx: _Context, raw: Any, reason: str, **fields: Any) -> UnknownEvent:
    return UnknownEvent(
        object=ctx.object,
        channel=ctx.channel,
        entry_id=ctx.entry_id,
        business_id=fields.pop("business_id", ctx.entry_id),
        reason=reason,
        dedupe_key="unknown:" + _digest(ctx.object, ctx.entry_id, ctx.channel, raw),
        raw=raw,
        **fields,
    )


def _parse_message(message: dict[str, Any], common: dict[str, Any]) -> WebhookEvent:
    mid = as_str(message.get("mid")) or None
    key = f"message:{mid}" if mid else "message:" + _digest(common.get("raw"))
    if as_bool(message.get("is_deleted")):
        return MessageDeletedEvent(
            mid=mid, dedupe_key=f"deleted:{mid}" if mid else "deleted:" + key, **common
        )
    attachments = tuple(
        a for a in (Attachment.parse(v) for v in as_list(message.get("attachments"))) if a
    )
    single = Attachment.parse(message.get("attachment"))
    if single is not None and not attachments:
        attachments = (single,)
    reply_to = as_dict(message.get("reply_to")) or {}
    story_raw = as_dict(reply_to.get("story"))
    story = (
        StoryRef(
            id=as_str(story_raw.get("id")),
            url=as_str(story_raw.get("url")),
            link_sticker_url=as_str(story_raw.get("link_sticker_url")),
        )
        if story_raw is not None
        else None
    )
    quick_reply = as_dict(message.get("quick_reply"))
    text = message.get("text")
    is_echo = as_bool(message.get("is_echo")) or common["is_from_business"]
    fields: dict[str, Any] = {
        "mid": mid,
        "dedupe_key": key,
        "text": text if isinstance(text, str) else None,
        "attachments": attachments,
        "reply_to_mid": as_str(reply_to.get("mid")),
        "reply_to_story": story,
        "quick_reply_payload": as_str(quick_reply.get("payload")) if quick_reply else None,
        "referral": Referral.parse(message.get("referral")),
        "is_echo": is_echo,
        "is_self": as_bool(message.get("is_self")),
        "is_unsupported": as_bool(message.get("is_unsupported")),
        "app_id": as_str(message.get("app_id")),
        "metadata": as_str(message.get("metadata")),
    }
    cls: type[MessageEvent]
    if is_echo:
        cls = EchoEvent
    elif fields["is_unsupported"]:
        cls = UnsupportedMessageEvent
    elif fields["quick_reply_payload"] is not None:
        cls = QuickReplyEvent
    elif story is not None:
        cls = StoryReplyEvent
    elif any(a.kind == "story_mention" for a in attachments):
        cls = StoryMentionEvent
    elif fields["reply_to_mid"]:
        cls = MessageReplyEvent
    elif attachments:
        cls = AttachmentMessageEvent
    elif fields["text"] is not None:
        cls = TextMessageEvent
    else:
        cls = UnsupportedMessageEvent
    return cls(**fields, **common)


def _parse_messaging_item(item: Any, ctx: _Context) -> WebhookEvent:
    obj = as_dict(item)
    if obj is None:
        return _unknown(ctx, item, "item_not_an_object")
    sender_id = _id(obj.get("sender"))
    recipient_id = _id(obj.get("recipient"))
    message = as_dict(obj.get("message"))
    echo_flag = as_bool(message.get("is_echo")) if message is not None else False
    from_business = echo_flag or (
        sender_id is not None
        and ctx.entry_id not in (None, TEST_ENTRY_ID)
        and sender_id == ctx.entry_id
    )
    business_id = ctx.entry_id or (sender_id if from_business else recipient_id)
    customer_id = recipient_id if from_business else sender_id
    timestamp_ms = epoch_to_ms(obj.get("timestamp")) or ctx.entry_time_ms
    common: dict[str, Any] = {
        "object": ctx.object,
        "channel": ctx.channel,
        "entry_id": ctx.entry_id,
        "business_id": business_id,
        "customer_id": customer_id,
        "sender_id": sender_id,
        "recipient_id": recipient_id,
        "timestamp_ms": timestamp_ms,
        "is_from_business": from_business,
        "raw": obj,
    }
    who = sender_id or ""
    ts = timestamp_ms or 0

    if message is not None:
        return _parse_message(message, common)

    edit = as_dict(obj.get("message_edit"))
    if edit is not None:
        mid = as_str(edit.get("mid"))
        num_edit = as_int(edit.get("num_edit"))
        text = edit.get("text")
        return MessageEditEvent(
            mid=mid,
            text=text if isinstance(text, str) else None,
            num_edit=num_edit,
            dedupe_key=f"edit:{mid}:{num_edit if num_edit is not None else _digest(text)}",
            **common,
        )

    reaction = as_dict(obj.get("reaction"))
    if reaction is not None:
        mid = as_str(reaction.get("mid"))
        action = (as_str(reaction.get("action")) or "react").lower()
        name = as_str(reaction.get("reaction"))
        emoji = as_str(reaction.get("emoji"))
        return ReactionEvent(
            mid=mid,
            action=action,
            reaction=name,
            emoji=emoji,
            dedupe_key=f"reaction:{mid}:{action}:{emoji or name or ''}:{who}",
            **common,
        )

    read = as_dict(obj.get("read"))
    if read is not None:
        mid = as_str(read.get("mid"))
        watermark = epoch_to_ms(read.get("watermark"))
        return ReadEvent(
            mid=mid,
            watermark_ms=watermark,
            dedupe_key=f"read:{mid or watermark}:{who}",
            **common,
        )

    postback = as_dict(obj.get("postback"))
    if postback is not None:
        mid = as_str(postback.get("mid"))
        payload = as_str(postback.get("payload"))
        return PostbackEvent(
            mid=mid,
            title=as_str(postback.get("title")),
            payload=payload,
            is_self=as_bool(postback.get("is_self")) or as_bool(obj.get("is_self")),
            dedupe_key=f"postback:{mid}" if mid else f"postback:{who}:{ts}:{_digest(postback)}",
            **common,
        )

    referral_raw = as_dict(obj.get("referral"))
    referral = Referral.parse(referral_raw)
    if referral is not None:
        return ReferralEvent(
            referral=referral,
            dedupe_key=f"referral:{who}:{ts}:{_digest(referral_raw)}",
            **common,
        )

    for key in _HANDOVER_KEYS:
        if key in obj:
            data = as_dict(obj.get(key)) or {}
            return HandoverEvent(
                action=key,
                previous_owner_app_id=as_str(data.get("previous_owner_app_id")),
                new_owner_app_id=as_str(data.get("new_owner_app_id")),
                requested_owner_app_id=as_str(data.get("requested_owner_app_id")),
                metadata=as_str(data.get("metadata")),
                dedupe_key=f"handover:{key}:{who}:{ts}:{_digest(data)}",
                **common,
            )

    for key in ("optin", "delivery", "policy_enforcement", "response_feedback", "event_type"):
        if key in obj:
            reason = "legacy_test_event" if key == "event_type" else f"unsupported_kind:{key}"
            return _unknown(
                ctx,
                obj,
                reason,
                business_id=business_id,
                customer_id=customer_id,
                sender_id=sender_id,
                recipient_id=recipient_id,
                timestamp_ms=timestamp_ms,
            )
    return _unknown(
        ctx,
        obj,
        "unrecognised_messaging_item",
        business_id=business_id,
        customer_id=customer_id,
        sender_id=sender_id,
        recipient_id=recipient_id,
        timestamp_ms=timestamp_ms,
    )


def _parse_change(change: Any, ctx: _Context) -> WebhookEvent:
    obj = as_dict(change)
    if obj is None:
        return _unknown(ctx, change, "change_not_an_object")
    field_name = as_str(obj.get("field")) or ""
    value = as_dict(obj.get("value"))
    if value is None:
        return _unknown(ctx, obj, f"change_without_value:{field_name}")
    if field_name in ("comments", "live_comments"):
        return _parse_comment(field_name, value, obj, ctx)
    if field_name == "mentions":
        media_id = as_str(value.get("media_id"))
        comment_id = as_str(value.get("comment_id"))
        return MentionEvent(
            object=ctx.object,
            channel=ctx.channel,
            entry_id=ctx.entry_id,
            business_id=ctx.entry_id,
            timestamp_ms=ctx.entry_time_ms,
            media_id=media_id,
            comment_id=comment_id,
            dedupe_key=f"mention:{media_id}:{comment_id or ''}",
            raw=obj,
        )
    if "sender" in value or any(k in value for k in (*_MESSAGING_KEYS, *_HANDOVER_KEYS)):
        # Dashboard test deliveries put a messaging item inside ``changes``.
        return _parse_messaging_item(value, ctx)
    return _unknown(ctx, obj, f"unsupported_field:{field_name}")


def _parse_comment(
    field_name: str, value: dict[str, Any], raw: dict[str, Any], ctx: _Context
) -> CommentEvent:
    sender = as_dict(value.get("from")) or {}
    media = as_dict(value.get("media")) or {}
    comment_id = as_str(value.get("id")) or as_str(value.get("comment_id"))
    from_id = as_str(sender.get("id"))
    text = value.get("text")
    cls = LiveCommentEvent if field_name == "live_comments" else CommentEvent
    timestamp_ms = epoch_to_ms(value.get("timestamp")) or ctx.entry_time_ms
    return cls(
        object=ctx.object,
        channel=ctx.channel,
        entry_id=ctx.entry_id,
        business_id=ctx.entry_id,
        customer_id=from_id,
        sender_id=from_id,
        timestamp_ms=timestamp_ms,
        is_from_business=from_id is not None and from_id == ctx.entry_id,
        field_name=field_name,
        comment_id=comment_id,
        parent_id=as_str(value.get("parent_id")),
        text=text if isinstance(text, str) else None,
        from_id=from_id,
        from_username=as_str(sender.get("username")),
        from_self_ig_scoped_id=as_str(sender.get("self_ig_scoped_id")),
        media_id=as_str(media.get("id")) or as_str(value.get("media_id")),
        media_product_type=as_str(media.get("media_product_type")),
        ad_id=as_str(media.get("ad_id")),
        ad_title=as_str(media.get("ad_title")),
        original_media_id=as_str(media.get("original_media_id")),
        dedupe_key=f"comment:{comment_id}" if comment_id else "comment:" + _digest(raw),
        raw=raw,
    )


def _parse_entry(entry: Any, obj_name: str | None) -> list[WebhookEvent]:
    data = as_dict(entry)
    if data is None:
        ctx = _Context(obj_name, None, None, MESSAGING)
        return [_unknown(ctx, entry, "entry_not_an_object")]
    entry_id = as_str(data.get("id")) or None
    entry_time = epoch_to_ms(data.get("time"))
    events: list[WebhookEvent] = []
    found = False
    for channel in (MESSAGING, STANDBY):
        items = data.get(channel)
        if items is None:
            continue
        found = True
        ctx = _Context(obj_name, entry_id, entry_time, channel)
        if not isinstance(items, list):
            events.append(_unknown(ctx, items, f"{channel}_not_a_list"))
            continue
        events.extend(_parse_messaging_item(item, ctx) for item in items)
    changes = data.get(CHANGES)
    ctx = _Context(obj_name, entry_id, entry_time, CHANGES)
    if changes is not None:
        found = True
        if isinstance(changes, list):
            events.extend(_parse_change(change, ctx) for change in changes)
        else:
            events.append(_unknown(ctx, changes, "changes_not_a_list"))
    if "field" in data and "value" in data:
        # Older flat shape: the change sits on the entry itself.
        found = True
        events.append(_parse_change({"field": data["field"], "value": data["value"]}, ctx))
    if not found:
        events.append(_unknown(ctx, data, "entry_without_events"))
    return events


def parse_webhook(payload: Any) -> WebhookBatch:
    """Parse a decoded delivery. Never raises; see the module docstring."""
    obj = as_dict(payload)
    if obj is None:
        ctx = _Context(None, None, None, MESSAGING)
        return WebhookBatch(object=None, events=(_unknown(ctx, payload, "not_an_object"),))
    obj_name = as_str(obj.get("object"))
    entries = obj.get("entry")
    if entries is None and "field" in obj and "value" in obj:
        ctx = _Context(obj_name, None, None, CHANGES)
        return WebhookBatch(object=obj_name, events=(_parse_change(obj, ctx),))
    if not isinstance(entries, list):
        ctx = _Context(obj_name, None, None, MESSAGING)
        return WebhookBatch(object=obj_name, events=(_unknown(ctx, obj, "no_entry_list"),))
    events: list[WebhookEvent] = []
    for entry in entries:
        events.extend(_parse_entry(entry, obj_name))
    return WebhookBatch(object=obj_name, events=tuple(events))


# Deeper JSON than this is refused; Meta's deliveries nest about eight levels.
MAX_NESTING = 64
# More brackets than this is refused before decoding, whatever their nesting.
MAX_CONTAINERS = 200_000


class UndecodableBody(ValueError):
    """A delivery body that is not UTF-8 JSON within the limits; the message says why."""


def _reject_constant(name: str) -> Any:
    raise UndecodableBody(f"non-finite number {name} in body")


def _depth(value: Any, limit: int) -> int:
    stack = [(value, 1)]
    deepest = 0
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if deepest > limit:
            return deepest
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
    return deepest


def decode_webhook_body(raw_body: bytes | str) -> Any:
    """The JSON value of a delivery body, or ``UndecodableBody``: the one decoding the product
    applies, in the worker and in ``parse_webhook_body`` alike.

    Bytes must be strict UTF-8 (a leading byte-order mark is skipped): no other encoding,
    no encoded lone surrogates. ``NaN`` and ``Infinity`` are refused, and so is nesting
    deeper than ``MAX_NESTING``.
    """
    if isinstance(raw_body, bytes | bytearray | memoryview):
        raw = bytes(raw_body)
        if raw.count(b"[") + raw.count(b"{") > MAX_CONTAINERS:
            raise UndecodableBody("too many nested containers")
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise UndecodableBody("body is not UTF-8") from exc
    elif isinstance(raw_body, str):
        text = raw_body
    else:
        raise UndecodableBody(f"body is {type(raw_body).__name__}, not bytes")
    try:
        payload = json.loads(text, parse_constant=_reject_constant)
    except RecursionError as exc:
        raise UndecodableBody("body nests too deeply") from exc
    except UndecodableBody:
        raise
    except ValueError as exc:
        raise UndecodableBody(f"body is not JSON: {exc}") from exc
    if _depth(payload, MAX_NESTING) > MAX_NESTING:
        raise UndecodableBody("body nests too deeply")
    return payload


def parse_webhook_body(raw_body: bytes | str) -> WebhookBatch:
    """Decode and parse raw delivery bytes. Never raises (a body ``decode_webhook_body``
    refuses -> ``UnknownEvent`` with reason ``invalid_json``)."""
    try:
        payload = decode_webhook_body(raw_body)
    except UndecodableBody:
        ctx = _Context(None, None, None, MESSAGING)
        return WebhookBatch(object=None, events=(_unknown(ctx, raw_body, "invalid_json"),))
    return parse_webhook(payload)
