"""Typed results returned by ``MetaClient`` and the small input types its methods accept.

Results are frozen dataclasses built with tolerant ``from_api`` constructors: unexpected or
missing fields become ``None``/empty rather than errors. Tokens are excluded from ``repr``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from integrations.meta._coerce import (
    as_bool,
    as_dict,
    as_int,
    as_list,
    as_str,
    as_str_tuple,
    epoch_seconds_to_datetime,
    parse_graph_time,
)

T = TypeVar("T")


def _unwrap_data(body: Mapping[str, Any]) -> Mapping[str, Any]:
    """Some Instagram answers wrap the object in ``{"data": [obj]}``; take the object."""
    data = body.get("data")
    if isinstance(data, list) and data and isinstance(data[0], dict):
        return data[0]
    return body


# ---------------------------------------------------------------------------------------------
# Tokens


@dataclass(frozen=True, slots=True)
class AccessToken:
    """A token from any OAuth exchange or refresh."""

    access_token: str = field(repr=False)
    token_type: str | None = None
    expires_in: int | None = None  # seconds; None when Meta gave none (non-expiring)
    user_id: str | None = None
    permissions: tuple[str, ...] = ()

    @classmethod
    def from_api(cls, body: Mapping[str, Any]) -> AccessToken:
        data = _unwrap_data(body)
        return cls(
            access_token=as_str(data.get("access_token")) or "",
            token_type=as_str(data.get("token_type")),
            expires_in=as_int(data.get("expires_in")),
            user_id=as_str(data.get("user_id")),
            permissions=as_str_tuple(data.get("permissions")),
        )


@dataclass(frozen=True, slots=True)
class GranularScope:
    scope: str
    target_ids: tuple[str, ...] | None  # None: the scope applies to every asset


@dataclass(frozen=True, slots=True)
class TokenDebugInfo:
    """Result of ``debug_token``."""

    is_valid: bool
    app_id: str | None = None
    type: str | None = None  # USER, PAGE, APP, SYSTEM_USER...
    application: str | None = None
    user_id: str | None = None
    profile_id: str | None = None  # Page id for Page tokens
    expires_at: datetime | None = None  # None: never expires (Meta sends 0)
    data_access_expires_at: datetime | None = None
    issued_at: datetime | None = None
    scopes: tuple[str, ...] = ()
    granular_scopes: tuple[GranularScope, ...] = ()
    error_code: int | None = None
    error_subcode: int | None = None
    error_message: str | None = None

    @classmethod
    def from_api(cls, body: Mapping[str, Any]) -> TokenDebugInfo:
        data = as_dict(body.get("data")) or {}
        error = as_dict(data.get("error")) or {}
        granular = []
        for item in as_list(data.get("granular_scopes")):
            entry = as_dict(item)
            scope = as_str(entry.get("scope")) if entry else None
            if entry is None or scope is None:
                continue
            targets = entry.get("target_ids")
            granular.append(
                GranularScope(
                    scope=scope,
                    target_ids=as_str_tuple(targets) if isinstance(targets, list) else None,
                )
            )
        return cls(
            is_valid=as_bool(data.get("is_valid")),
            app_id=as_str(data.get("app_id")),
            type=as_str(data.get("type")),
            application=as_str(data.get("application")),
            user_id=as_str(data.get("user_id")),
            profile_id=as_str(data.get("profile_id")),
            expires_at=epoch_seconds_to_datetime(data.get("expires_at")),
            data_access_expires_at=epoch_seconds_to_datetime(data.get("data_access_expires_at")),
            issued_at=epoch_seconds_to_datetime(data.get("issued_at")),
            scopes=as_str_tuple(data.get("scopes")),
            granular_scopes=tuple(granular),
            error_code=as_int(error.get("code")),
            error_subcode=as_int(error.get("subcode")),
            error_message=as_str(error.get("message")),
        )

    def targets_for(self, scope: str) -> tuple[str, ...] | None:
        """Asset ids the user granted ``scope`` for; ``None`` means all (or not granular)."""
        for item in self.granular_scopes:
            if item.scope == scope:
                return item.target_ids
        return None


# ---------------------------------------------------------------------------------------------
# Accounts


@dataclass(frozen=True, slots=True)
class FacebookUser:
    id: str
    name: str | None = None


@dataclass(frozen=True, slots=True)
class InstagramAccountRef:
    """The ``instagram_business_account`` linked to a Page."""

    id: str
    username: str | None = None
    name: str | None = None
    profile_picture_url: str | None = None

    @classmethod
    def from_api(cls, data: Any) -> InstagramAccountRef | None:
        obj = as_dict(data)
        ig_id = as_str(obj.get("id")) if obj else None
        if obj is None or not ig_id:
            return None
        return cls(
            id=ig_id,
            username=as_str(obj.get("username")),
            name=as_str(obj.get("name")),
            profile_picture_url=as_str(obj.get("profile_picture_url")),
        )


@dataclass(frozen=True, slots=True)
class FacebookPage:
    """A Page from ``/me/accounts`` or ``/{page-id}``, with its Page token when asked for."""

    id: str
    name: str | None = None
    access_token: str | None = field(default=None, repr=False)
    category: str | None = None
    tasks: tuple[str, ...] = ()
    instagram_account: InstagramAccountRef | None = None

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> FacebookPage:
        return cls(
            id=as_str(data.get("id")) or "",
            name=as_str(data.get("name")),
            access_token=as_str(data.get("access_token")),
            category=as_str(data.get("category")),
            tasks=as_str_tuple(data.get("tasks")),
            instagram_account=InstagramAccountRef.from_api(data.get("instagram_business_account")),
        )

    @property
    def can_message(self) -> bool:
        return "MESSAGING" in self.tasks


@dataclass(frozen=True, slots=True)
class InstagramProfile:
    """An Instagram professional account: ``/me`` on the Instagram host or ``/{ig-id}``.

    On the Instagram-login host ``user_id`` is the professional account id (the webhook
    ``entry.id``) and ``id`` is app-scoped; on the Facebook host ``id`` is the account id.
    """

    id: str
    user_id: str | None = None
    username: str | None = None
    name: str | None = None
    account_type: str | None = None  # Business or Media_Creator
    profile_picture_url: str | None = None
    followers_count: int | None = None
    follows_count: int | None = None
    media_count: int | None = None

    @classmethod
    def from_api(cls, body: Mapping[str, Any]) -> InstagramProfile:
        data = _unwrap_data(body)
        return cls(
            id=as_str(data.get("id")) or "",
            user_id=as_str(data.get("user_id")),
            username=as_str(data.get("username")),
            name=as_str(data.get("name")),
            account_type=as_str(data.get("account_type")),
            profile_picture_url=as_str(data.get("profile_picture_url")),
            followers_count=as_int(data.get("followers_count")),
            follows_count=as_int(data.get("follows_count")),
            media_count=as_int(data.get("media_count")),
        )

    @property
    def business_account_id(self) -> str:
        """The id that webhooks carry as ``entry.id`` for this account."""
        return self.user_id or self.id


@dataclass(frozen=True, slots=True)
class SubscribedApp:
    id: str | None
    name: str | None = None
    subscribed_fields: tuple[str, ...] = ()

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> SubscribedApp:
        fields_raw = data.get("subscribed_fields")
        names: list[str] = []
        for item in as_list(fields_raw):
            # Accept plain names and {"name": ...} objects.
            name = as_str(item) or as_str((as_dict(item) or {}).get("name"))
            if name:
                names.append(name)
        return cls(
            id=as_str(data.get("id")),
            name=as_str(data.get("name")),
            subscribed_fields=tuple(names),
        )


@dataclass(frozen=True, slots=True)
class AppSubscription:
    """An app-level webhook subscription (``/{app-id}/subscriptions``)."""

    object: str
    callback_url: str | None
    active: bool
    fields: tuple[str, ...]

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> AppSubscription:
        names = []
        for item in as_list(data.get("fields")):
            name = as_str(item) or as_str((as_dict(item) or {}).get("name"))
            if name:
                names.append(name)
        return cls(
            object=as_str(data.get("object")) or "",
            callback_url=as_str(data.get("callback_url")),
            active=as_bool(data.get("active")),
            fields=tuple(names),
        )


# ---------------------------------------------------------------------------------------------
# Send API


@dataclass(frozen=True, slots=True)
class SendResult:
    """Send API answer. ``message_id`` is absent for sender actions and reactions."""

    recipient_id: str | None
    message_id: str | None = None

    @classmethod
    def from_api(cls, body: Mapping[str, Any]) -> SendResult:
        return cls(
            recipient_id=as_str(body.get("recipient_id")),
            message_id=as_str(body.get("message_id")),
        )


QuickReplyContentType = Literal["text", "user_phone_number", "user_email"]


@dataclass(frozen=True, slots=True)
class QuickReply:
    title: str = ""
    payload: str = ""
    content_type: QuickReplyContentType = "text"

    def to_api(self) -> dict[str, Any]:
        if self.content_type != "text":
            return {"content_type": self.content_type}
        return {"content_type": "text", "title": self.title, "payload": self.payload}


@dataclass(frozen=True, slots=True)
class Button:
    """A template or persistent-menu button: ``web_url`` (with ``url``) or ``postback``."""

    type: Literal["web_url", "postback"]
    title: str
    url: str | None = None
    payload: str | None = None

    def to_api(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": self.type, "title": self.title}
        if self.type == "web_url":
            data["url"] = self.url or ""
        else:
            data["payload"] = self.payload or ""
        return data

    @classmethod
    def from_api(cls, data: Any) -> Button | None:
        obj = as_dict(data)
        if obj is None:
            return None
        kind = as_str(obj.get("type"))
        return cls(
            type="web_url" if kind == "web_url" else "postback",
            title=as_str(obj.get("title")) or "",
            url=as_str(obj.get("url")),
            payload=as_str(obj.get("payload")),
        )


@dataclass(frozen=True, slots=True)
class TemplateElement:
    """One card of a generic template."""

    title: str
    subtitle: str | None = None
    image_url: str | None = None
    default_action_url: str | None = None
    buttons: tuple[Button, ...] = ()

    def to_api(self) -> dict[str, Any]:
        data: dict[str, Any] = {"title": self.title}
        if self.subtitle:
            data["subtitle"] = self.subtitle
        if self.image_url:
            data["image_url"] = self.image_url
        if self.default_action_url:
            data["default_action"] = {"type": "web_url", "url": self.default_action_url}
        if self.buttons:
            data["buttons"] = [b.to_api() for b in self.buttons]
        return data


@dataclass(frozen=True, slots=True)
class AttachmentUpload:
    attachment_id: str


# ---------------------------------------------------------------------------------------------
# Conversations API


@dataclass(frozen=True, slots=True)
class Participant:
    id: str | None
    username: str | None = None
    name: str | None = None

    @classmethod
    def from_api(cls, data: Any) -> Participant | None:
        obj = as_dict(data)
        if obj is None:
            return None
        return cls(
            id=as_str(obj.get("id")),
            username=as_str(obj.get("username")),
            name=as_str(obj.get("name")),
        )


def _participants(value: Any) -> tuple[Participant, ...]:
    container = as_dict(value)
    items = as_list(container.get("data")) if container is not None else as_list(value)
    return tuple(p for p in (Participant.from_api(i) for i in items) if p is not None)


@dataclass(frozen=True, slots=True)
class MessageAttachment:
    """An attachment read through the Conversations API."""

    id: str | None = None
    mime_type: str | None = None
    name: str | None = None
    size: int | None = None
    url: str | None = None
    preview_url: str | None = None

    @classmethod
    def from_api(cls, data: Any) -> MessageAttachment | None:
        obj = as_dict(data)
        if obj is None:
            return None
        image = as_dict(obj.get("image_data")) or {}
        video = as_dict(obj.get("video_data")) or {}
        return cls(
            id=as_str(obj.get("id")),
            mime_type=as_str(obj.get("mime_type")),
            name=as_str(obj.get("name")),
            size=as_int(obj.get("size")),
            url=as_str(image.get("url"))
            or as_str(video.get("url"))
            or as_str(obj.get("file_url"))
            or as_str(obj.get("url")),
            preview_url=as_str(image.get("preview_url")) or as_str(video.get("preview_url")),
        )


@dataclass(frozen=True, slots=True)
class StoryLink:
    kind: Literal["mention", "reply_to"]
    link: str | None
    id: str | None


@dataclass(frozen=True, slots=True)
class ConversationMessage:
    """A message read through the Conversations API (only ``id`` is always present)."""

    id: str
    created_time: datetime | None = None
    sender: Participant | None = None
    recipients: tuple[Participant, ...] = ()
    text: str | None = None
    attachments: tuple[MessageAttachment, ...] = ()
    share_urls: tuple[str, ...] = ()
    story: StoryLink | None = None
    reply_to_mid: str | None = None
    is_unsupported: bool = False

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> ConversationMessage:
        attachments_raw = as_dict(data.get("attachments"))
        attachments = tuple(
            a
            for a in (
                MessageAttachment.from_api(item)
                for item in as_list(
                    attachments_raw.get("data") if attachments_raw else data.get("attachments")
                )
            )
            if a is not None
        )
        shares_raw = as_dict(data.get("shares"))
        share_urls: list[str] = []
        for item in as_list(shares_raw.get("data") if shares_raw else data.get("shares")):
            obj = as_dict(item) or {}
            url = as_str(obj.get("link")) or as_str(obj.get("url"))
            if url:
                share_urls.append(url)
        story = None
        story_raw = as_dict(data.get("story"))
        if story_raw is not None:
            for kind in ("mention", "reply_to"):
                inner = as_dict(story_raw.get(kind))
                if inner is not None:
                    story = StoryLink(
                        kind=kind,  # type: ignore[arg-type]
                        link=as_str(inner.get("link")),
                        id=as_str(inner.get("id")),
                    )
                    break
        reply_to = as_dict(data.get("reply_to")) or {}
        return cls(
            id=as_str(data.get("id")) or "",
            created_time=parse_graph_time(data.get("created_time")),
            sender=Participant.from_api(data.get("from")),
            recipients=_participants(data.get("to")),
            text=as_str(data.get("message")),
            attachments=attachments,
            share_urls=tuple(share_urls),
            story=story,
            reply_to_mid=as_str(reply_to.get("mid")),
            is_unsupported=as_bool(data.get("is_unsupported")),
        )


@dataclass(frozen=True, slots=True)
class Conversation:
    id: str
    updated_time: datetime | None = None
    participants: tuple[Participant, ...] = ()
    messages: tuple[ConversationMessage, ...] = ()
    is_owner: bool | None = None

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Conversation:
        messages_raw = as_dict(data.get("messages"))
        messages = tuple(
            ConversationMessage.from_api(m)
            for m in (as_list(messages_raw.get("data")) if messages_raw else [])
            if isinstance(m, dict)
        )
        owner = data.get("is_owner")
        return cls(
            id=as_str(data.get("id")) or "",
            updated_time=parse_graph_time(data.get("updated_time")),
            participants=_participants(data.get("participants")),
            messages=messages,
            is_owner=owner if isinstance(owner, bool) else None,
        )


@dataclass(frozen=True, slots=True)
class Paged(Generic[T]):
    """One page of a Graph edge with its cursors."""

    items: tuple[T, ...]
    before: str | None = None
    after: str | None = None
    next_url: str | None = field(default=None, repr=False)  # carries the token

    @property
    def has_next(self) -> bool:
        return bool(self.next_url)


def paging_of(body: Mapping[str, Any]) -> tuple[str | None, str | None, str | None]:
    """``(before, after, next_url)`` from a Graph ``paging`` object."""
    paging = as_dict(body.get("paging")) or {}
    cursors = as_dict(paging.get("cursors")) or {}
    return (
        as_str(cursors.get("before")),
        as_str(cursors.get("after")),
        as_str(paging.get("next")),
    )


@dataclass(frozen=True, slots=True)
class UserProfile:
    """Profile of a customer (IGSID) as seen by the business."""

    id: str
    name: str | None = None
    username: str | None = None
    profile_pic: str | None = None
    follower_count: int | None = None
    is_user_follow_business: bool | None = None
    is_business_follow_user: bool | None = None
    is_verified_user: bool | None = None

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> UserProfile:
        def opt_bool(key: str) -> bool | None:
            value = data.get(key)
            return value if isinstance(value, bool) else None

        return cls(
            id=as_str(data.get("id")) or "",
            name=as_str(data.get("name")),
            username=as_str(data.get("username")),
            profile_pic=as_str(data.get("profile_pic")),
            follower_count=as_int(data.get("follower_count")),
            is_user_follow_business=opt_bool("is_user_follow_business"),
            is_business_follow_user=opt_bool("is_business_follow_user"),
            is_verified_user=opt_bool("is_verified_user"),
        )


# ---------------------------------------------------------------------------------------------
# Conversation routing


@dataclass(frozen=True, slots=True)
class ThreadOwner:
    app_id: str | None
    expires_at: datetime | None = None

    @classmethod
    def from_api(cls, body: Mapping[str, Any]) -> ThreadOwner:
        first = _unwrap_data(body)
        owner = as_dict(first.get("thread_owner")) or {}
        expiry = None
        # Name and place of the expiry are unconfirmed: look inside ``thread_owner`` and
        # beside it in the data item.
        for source in (owner, first):
            for key in ("expiration", "expiration_time", "expires_at", "thread_control_expiration"):
                if key in source:
                    expiry = epoch_seconds_to_datetime(source.get(key))
                    break
            if expiry is not None:
                break
        return cls(app_id=as_str(owner.get("app_id")), expires_at=expiry)


# ---------------------------------------------------------------------------------------------
# messenger_profile


@dataclass(frozen=True, slots=True)
class IceBreaker:
    question: str
    payload: str


@dataclass(frozen=True, slots=True)
class IceBreakerSet:
    """Up to four ice breakers for one locale (``default`` for all)."""

    items: tuple[IceBreaker, ...]
    locale: str = "default"

    def to_api(self) -> dict[str, Any]:
        return {
            "locale": self.locale,
            "call_to_actions": [{"question": i.question, "payload": i.payload} for i in self.items],
        }

    @classmethod
    def from_api(cls, data: Any) -> IceBreakerSet | None:
        obj = as_dict(data)
        if obj is None:
            return None
        items = []
        for cta in as_list(obj.get("call_to_actions")):
            entry = as_dict(cta) or {}
            question = as_str(entry.get("question"))
            if question is not None:
                items.append(IceBreaker(question, as_str(entry.get("payload")) or ""))
        return cls(items=tuple(items), locale=as_str(obj.get("locale")) or "default")


@dataclass(frozen=True, slots=True)
class PersistentMenu:
    """Persistent menu for one locale: ``postback`` and ``web_url`` buttons only."""

    items: tuple[Button, ...]
    locale: str = "default"

    def to_api(self) -> dict[str, Any]:
        return {"locale": self.locale, "call_to_actions": [b.to_api() for b in self.items]}

    @classmethod
    def from_api(cls, data: Any) -> PersistentMenu | None:
        obj = as_dict(data)
        if obj is None:
            return None
        buttons = tuple(
            b for b in (Button.from_api(c) for c in as_list(obj.get("call_to_actions"))) if b
        )
        return cls(items=buttons, locale=as_str(obj.get("locale")) or "default")
