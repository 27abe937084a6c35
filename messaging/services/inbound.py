"""Inbound messaging: what Meta's webhooks say happened, stored once, in any order.

Every function runs inside the tenant scope the webhook router opened for ``account`` and in
one transaction (a savepoint inside the relay's). The rules that make any number and order of
deliveries converge on the same state:

- a message is unique per (account, mid); the conversation row is locked first, so one worker
  at a time decides whether a mid is new;
- an unsend, edit or read that names a message not stored yet is kept: unsend and edit leave
  a placeholder row (kind ``unknown``) the original fills when it comes, without its content if
  it was unsent; a read receipt is kept on the conversation until its message arrives;
- a message "arrives" once (first insert, or filling a placeholder): only then do the unread
  count, the conversation's last activity and the customer's reply window move, and the times
  only ever move forward (``max``);
- reactions are one row per (account, mid, actor); the latest action wins, an unreact leaves
  the row with ``removed_at`` so a late duplicate of the reaction cannot bring it back;
- edits apply in ``num_edit`` order; edits and content never reach an unsent message.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef
from django.db.models.constants import OnConflict
from django.utils import timezone

from accounts import compliance
from accounts import onboarding as accounts_onboarding
from accounts.models import InstagramAccount
from integrations.meta import webhooks as meta_events
from integrations.meta.errors import (
    MetaAuthError,
    MetaError,
    MetaRateLimitError,
    MetaTransientError,
)
from messaging.models import (
    Comment,
    Contact,
    Conversation,
    Message,
    Reaction,
    WindowOpener,
)
from messaging.services.common import (
    InvalidInboundEvent,
    clean_igsid,
    clean_json,
    clean_mid,
    clean_text,
    contact_get_or_create,
    conversation_lock,
    message_erase_content,
)
from webhooks import partner_events

logger = logging.getLogger(__name__)

PROFILE_MAX_AGE = timedelta(hours=24)
PROFILE_FETCH_THROTTLE_SECONDS = 600
# A timestamp further ahead of our clock than this is not believed: the receive time is used.
MAX_CLOCK_SKEW = timedelta(minutes=10)

Kind = Message.Kind

_ATTACHMENT_KINDS: dict[str, str] = {
    "image": Kind.IMAGE,
    "video": Kind.VIDEO,
    "audio": Kind.AUDIO,
    "file": Kind.FILE,
    "story_mention": Kind.STORY_MENTION,
    "share": Kind.POST_SHARE,
    "ig_post": Kind.POST_SHARE,
    "media_share": Kind.POST_SHARE,
    "ig_reel": Kind.REEL_SHARE,
    "ig_story": Kind.STORY_SHARE,
    "template": Kind.TEMPLATE,
    "like_heart": Kind.STICKER,
    "fallback": Kind.TEXT,
}


@dataclass(frozen=True)
class Content:
    """What a message says. Every string is sanitised before it is stored."""

    kind: str
    text: str = ""
    attachments: list[dict[str, Any]] = field(default_factory=list)
    reply_to_mid: str = ""
    reply_to_story: dict[str, Any] | None = None
    quick_reply_payload: str = ""
    postback: dict[str, Any] | None = None
    referral: dict[str, Any] | None = None


def our_app_ids() -> set[str]:
    return {a for a in (settings.META_APP_ID, settings.META_INSTAGRAM_APP_ID) if a}


# -- messages --------------------------------------------------------------------------------


def content_fields(content: Content) -> dict[str, Any]:
    return {
        "kind": content.kind,
        "text": clean_text(content.text),
        "attachments": clean_json(content.attachments),
        "reply_to_mid": clean_text(content.reply_to_mid, max_length=1024),
        "reply_to_story": clean_json(content.reply_to_story),
        "quick_reply_payload": clean_text(content.quick_reply_payload, max_length=1000),
        "postback": clean_json(content.postback),
        "referral": clean_json(content.referral),
    }


def _locked_message(account: InstagramAccount, mid: str) -> Message | None:
    return Message.objects.select_for_update().filter(account=account, mid=mid).first()


def _conflicting_message(account: InstagramAccount, mid: str) -> Message:
    """The row another worker committed for ``mid`` while we tried to insert it."""
    message = _locked_message(account, mid)
    if message is None:  # pragma: no cover - a committed conflicting row cannot vanish
        raise RuntimeError("message id conflict could not be resolved")
    return message


def _insert_message(account: InstagramAccount, mid: str, **values: Any) -> Message | None:
    """Insert a row for ``mid``; None when another worker stored it first (then re-read it)."""
    try:
        with transaction.atomic():
            return Message.objects.create(
                tenant_id=account.tenant_id, account=account, mid=mid, **values
            )
    except IntegrityError:
        return None


_MESSAGE_INSERT_FIELDS = [
    f for f in Message._meta.local_concrete_fields if f is not Message._meta.pk
]


def _insert_new_message(account: InstagramAccount, mid: str, **values: Any) -> Message | None:
    """``_insert_message`` in one statement (``INSERT … ON CONFLICT DO NOTHING RETURNING``).

    None when a row for ``mid`` exists already, committed or being committed by another
    transaction: no savepoint is needed to survive the conflict.
    """
    message = Message(tenant_id=account.tenant_id, account=account, mid=mid, **values)
    rows = Message.objects._insert(  # type: ignore[attr-defined]
        [message],
        fields=_MESSAGE_INSERT_FIELDS,
        returning_fields=Message._meta.db_returning_fields,
        on_conflict=OnConflict.IGNORE,
    )
    if not rows or rows[0] is None:
        return None
    for returned, value in zip(Message._meta.db_returning_fields, rows[0], strict=True):
        setattr(message, returned.attname, value)
    message._state.adding = False
    message._state.db = Message.objects.db
    return message


def threads_locked(account: InstagramAccount) -> Any:
    """The account's conversations with their contacts, locked when read, with whether the
    account has any enabled automation rule (``account_has_enabled_rules``)."""
    from automation.models import Rule

    return (
        Conversation.objects.select_for_update(of=("self",))
        .select_related("contact")
        .annotate(
            account_has_enabled_rules=Exists(
                Rule.objects.filter(account_id=OuterRef("account_id"), enabled=True)
            )
        )
        .filter(contact__account=account)
    )


def _thread_locked(account: InstagramAccount, igsid: str) -> tuple[Contact, Conversation, bool]:
    """The customer's contact and locked conversation (created if needed); ``new_contact``.

    A known customer costs one statement: the conversation is read and locked with its contact,
    and with whether the account has any enabled automation rule (the engine need not ask
    again for a message no rule can answer). A new one takes the long way.
    """
    found = threads_locked(account).filter(contact__igsid=igsid).first()
    if found is not None:
        return found.contact, found, False
    contact, new_contact = contact_get_or_create(account=account, igsid=igsid)
    conversation = conversation_lock(account=account, contact=contact)
    conversation.contact = contact
    return contact, conversation, new_contact


def message_values(
    *, direction: str, sender_kind: str, sent_at: datetime, app_id: str, is_standby: bool
) -> dict[str, Any]:
    """A received message's fields besides its content."""
    return {
        "direction": direction,
        "sender_kind": sender_kind,
        "sent_at": sent_at,
        "app_id": clean_text(app_id, max_length=64),
        "is_standby": is_standby,
        "status": (
            Message.Status.RECEIVED
            if direction == Message.Direction.INBOUND
            else Message.Status.SENT
        ),
    }


def message_receive(
    *,
    account: InstagramAccount,
    igsid: str,
    mid: str,
    direction: str,
    sender_kind: str,
    sent_at: datetime,
    content: Content,
    app_id: str = "",
    is_standby: bool = False,
    opens_window: str = "",
) -> tuple[Message, bool]:
    """Store a message Meta told us about; ``(message, arrived)``.

    ``arrived`` is False for a duplicate (the mid is stored already, whoever stored it: an
    outbound send matched by mid, a backfill, an earlier delivery). A placeholder left by an
    early unsend or edit is filled instead, never with the content of an unsent message.
    """
    igsid = clean_igsid(igsid)
    mid = clean_mid(mid)
    values = message_values(
        direction=direction,
        sender_kind=sender_kind,
        sent_at=sent_at,
        app_id=app_id,
        is_standby=is_standby,
    )
    content_values = content_fields(content)
    # Inside a caller's transaction no savepoint of its own: everything that can reject the
    # event (``InvalidInboundEvent``) ran above, and any other error rolls back what encloses it.
    with transaction.atomic(savepoint=False):
        contact, conversation, new_contact = _thread_locked(account, igsid)
        status_before = conversation.status
        # Most mids are new: try the insert first, and read the stored row only on a conflict.
        message = _insert_new_message(
            account, mid, conversation=conversation, **values, **content_values
        )
        arrived = message is not None
        if message is None:
            message = _conflicting_message(account, mid)
        if not arrived and message.kind == Kind.UNKNOWN:
            _fill_placeholder(message, conversation, values, content)
            arrived = True
        if arrived:
            note_arrival(conversation, message, opens_window)
            if direction == Message.Direction.INBOUND:
                refresh_profile_if_stale(contact)
        if is_standby:
            conversation.owned_by_other_app = True
        conversation.save()
        if new_contact:
            partner_events.conversation_created(conversation=conversation)
        if arrived:
            partner_events_of_arrival(conversation, message, status_before)
    return message, arrived


def partner_events_of_arrival(
    conversation: Conversation,
    message: Message,
    status_before: str,
    as_of: dict[str, Any] | None = None,
) -> None:
    """Tell partners of an arrival; ``as_of``: the conversation as that arrival left it."""
    if message.direction == Message.Direction.INBOUND:
        partner_events.message_received(message=message, as_of=as_of)
    elif message.app_id not in our_app_ids():
        # Sent from the Instagram app or another app; our own sends are told by the outbox.
        partner_events.message_sent(message=message, as_of=as_of)
    status = as_of["status"] if as_of is not None else conversation.status
    if status != status_before:
        partner_events.conversation_updated(
            conversation=conversation, changes=["status"], as_of=as_of
        )


def _fill_placeholder(
    message: Message, conversation: Conversation, values: dict[str, Any], content: Content
) -> None:
    """The original of an early unsend or edit arrived: give the placeholder what it may keep."""
    for name, value in values.items():
        setattr(message, name, value)
    message.conversation = conversation
    message.kind = content.kind
    if message.deleted_at is None:
        edited_text = message.text
        for name, value in content_fields(content).items():
            setattr(message, name, value)
        if message.edit_count:
            message.text = edited_text
    message.save()


def note_arrival(conversation: Conversation, message: Message, opens_window: str) -> None:
    sent_at = message.sent_at
    if conversation.last_message_at is None or sent_at > conversation.last_message_at:
        conversation.last_message_at = sent_at
    if message.direction == Message.Direction.INBOUND:
        conversation.unread_count += 1
        if conversation.status == Conversation.Status.RESOLVED:
            conversation.status = Conversation.Status.OPEN
        if opens_window and (
            conversation.customer_last_message_at is None
            or sent_at > conversation.customer_last_message_at
        ):
            conversation.customer_last_message_at = sent_at
            conversation.window_opened_by = opens_window
    elif conversation.customer_read_mid == message.mid:
        _read_up_to(conversation, sent_at)


def _placeholder(
    account: InstagramAccount,
    conversation: Conversation,
    mid: str,
    *,
    at: datetime,
    from_business: bool,
    **values: Any,
) -> Message | None:
    return _insert_message(
        account,
        mid,
        conversation=conversation,
        kind=Kind.UNKNOWN,
        direction=Message.Direction.OUTBOUND if from_business else Message.Direction.INBOUND,
        sender_kind=(Message.SenderKind.EXTERNAL if from_business else Message.SenderKind.CUSTOMER),
        status=Message.Status.SENT if from_business else Message.Status.RECEIVED,
        sent_at=at,
        **values,
    )


def message_unsend(
    *,
    account: InstagramAccount,
    igsid: str,
    mid: str,
    unsent_at: datetime,
    from_business: bool = False,
) -> Message:
    """Erase a message's content at once and keep a tombstone, even before it arrives."""
    igsid = clean_igsid(igsid)
    mid = clean_mid(mid)
    with transaction.atomic():
        contact, _ = contact_get_or_create(account=account, igsid=igsid)
        conversation = conversation_lock(account=account, contact=contact)
        message = _locked_message(account, mid)
        if message is None:
            message = _placeholder(
                account,
                conversation,
                mid,
                at=unsent_at,
                from_business=from_business,
                deleted_at=unsent_at,
            )
            if message is not None:
                compliance.message_unsent(message=message, first_time=True)
                return message
            message = _conflicting_message(account, mid)
        first_unsend = message.deleted_at is None and message.kind != Kind.UNKNOWN
        first_erasure = message.deleted_at is None
        message_erase_content(message)
        if message.deleted_at is None or unsent_at < message.deleted_at:
            message.deleted_at = unsent_at
        message.save()
        conversation.save(update_fields=["updated_at"])
        if first_unsend:
            partner_events.message_deleted(message=message)
        # Every other copy of the content (queued sends, raw deliveries, partner logs) goes too.
        compliance.message_unsent(message=message, first_time=first_erasure)
    return message


def message_is_erased(*, account: InstagramAccount, mid: str | None) -> bool:
    """Whether the account's message ``mid`` is an unsent (erased) tombstone."""
    try:
        mid = clean_mid(mid)
    except InvalidInboundEvent:
        return False
    return Message.objects.filter(account=account, mid=mid, deleted_at__isnull=False).exists()


def message_edit(
    *,
    account: InstagramAccount,
    igsid: str,
    mid: str,
    text: str | None,
    num_edit: int | None,
    edited_at: datetime,
    from_business: bool = False,
) -> Message:
    """Apply an edit if it is newer than what is stored (idempotent by mid and ``num_edit``).

    An edit of a message not stored yet leaves a placeholder carrying the edited text; the
    original fills in the rest when it comes. An unsent message keeps no text.
    """
    igsid = clean_igsid(igsid)
    mid = clean_mid(mid)
    number = min(max(num_edit, 1), 32767) if num_edit is not None else None
    new_text = clean_text(text)
    with transaction.atomic():
        contact, _ = contact_get_or_create(account=account, igsid=igsid)
        conversation = conversation_lock(account=account, contact=contact)
        message = _locked_message(account, mid)
        if message is None:
            message = _placeholder(
                account,
                conversation,
                mid,
                at=edited_at,
                from_business=from_business,
                text=new_text,
                edit_count=number or 1,
                edited_at=edited_at,
            )
            if message is not None:
                return message
            message = _conflicting_message(account, mid)
        if number is not None:
            newer = number > message.edit_count
        else:
            newer = message.edited_at is None or edited_at > message.edited_at
        if newer:
            message.edit_count = number if number is not None else message.edit_count + 1
            message.edited_at = edited_at
            if message.deleted_at is None:
                message.text = new_text
            message.save(update_fields=["text", "edit_count", "edited_at"])
            conversation.save(update_fields=["updated_at"])
            if message.kind != Kind.UNKNOWN:
                partner_events.message_edited(message=message)
    return message


# -- reactions and reads -----------------------------------------------------------------------


def reaction_apply(
    *,
    account: InstagramAccount,
    mid: str,
    actor: str,
    emoji: str | None,
    reaction: str | None,
    removed: bool,
    at: datetime,
) -> Reaction:
    """Set or remove one actor's reaction on ``mid``; the latest action wins, duplicates don't.

    Works before the message is stored: reactions are keyed by the message's mid.
    """
    mid = clean_mid(mid)
    values: dict[str, Any] = {
        "emoji": "" if removed else clean_text(emoji, max_length=32),
        "reaction": "" if removed else clean_text(reaction, max_length=32),
        "reacted_at": at,
        "removed_at": at if removed else None,
    }
    with transaction.atomic():
        row = (
            Reaction.objects.select_for_update()
            .filter(account=account, message_mid=mid, actor=actor)
            .first()
        )
        if row is None:
            try:
                with transaction.atomic():
                    return Reaction.objects.create(
                        tenant_id=account.tenant_id,
                        account=account,
                        message_mid=mid,
                        actor=actor,
                        **values,
                    )
            except IntegrityError:
                row = (
                    Reaction.objects.select_for_update()
                    .filter(account=account, message_mid=mid, actor=actor)
                    .get()
                )
        # At the same instant a removal beats a reaction, so the order of delivery never matters.
        if (at, removed) > (row.reacted_at, row.removed_at is not None):
            for name, value in values.items():
                setattr(row, name, value)
            row.save(update_fields=list(values))
    return row


def _read_up_to(conversation: Conversation, moment: datetime) -> None:
    if conversation.customer_read_up_to is None or moment > conversation.customer_read_up_to:
        conversation.customer_read_up_to = moment


def conversation_mark_read(
    *,
    account: InstagramAccount,
    igsid: str,
    mid: str | None,
    read_at: datetime,
    watermark: datetime | None = None,
) -> Conversation:
    """The customer has seen everything up to the message ``mid`` (or up to ``watermark``).

    A receipt naming a message not stored yet is kept and applied when that message arrives.
    """
    igsid = clean_igsid(igsid)
    with transaction.atomic():
        contact, _ = contact_get_or_create(account=account, igsid=igsid)
        conversation = conversation_lock(account=account, contact=contact)
        read_before = (conversation.customer_read_up_to, conversation.customer_read_mid)
        if mid:
            mid = clean_mid(mid)
            if conversation.customer_read_at is None or read_at >= conversation.customer_read_at:
                conversation.customer_read_mid = mid
                conversation.customer_read_at = read_at
            seen = (
                Message.objects.filter(conversation=conversation, mid=mid)
                .exclude(kind=Kind.UNKNOWN)
                .values_list("sent_at", flat=True)
                .first()
            )
            if seen is not None:
                _read_up_to(conversation, seen)
        if watermark is not None:
            _read_up_to(conversation, watermark)
        conversation.save()
        if (conversation.customer_read_up_to, conversation.customer_read_mid) != read_before:
            partner_events.message_read(conversation=conversation, mid=mid, read_at=read_at)
    return conversation


def conversation_thread_owner_change(
    *, account: InstagramAccount, igsid: str, new_owner_app_id: str | None
) -> Conversation:
    """Conversation routing moved the thread: do we own it, or does another app?"""
    igsid = clean_igsid(igsid)
    with transaction.atomic():
        contact, _ = contact_get_or_create(account=account, igsid=igsid)
        conversation = conversation_lock(account=account, contact=contact)
        owned_before = conversation.owned_by_other_app
        conversation.owned_by_other_app = (new_owner_app_id or "") not in our_app_ids()
        conversation.save()
        if conversation.owned_by_other_app != owned_before:
            partner_events.conversation_updated(conversation=conversation, changes=["owner"])
    return conversation


# -- comments ----------------------------------------------------------------------------------


def comment_receive(
    *,
    account: InstagramAccount,
    comment_id: str,
    commented_at: datetime,
    text: str | None = None,
    media_id: str | None = None,
    media_product_type: str | None = None,
    parent_id: str | None = None,
    from_id: str | None = None,
    from_username: str | None = None,
    is_live: bool = False,
) -> tuple[Comment | None, bool]:
    """Store a comment on the account's media once; the business's own comments are skipped."""
    comment_id = clean_text(comment_id).strip()
    if not comment_id:
        raise InvalidInboundEvent("the comment has no id")
    if len(comment_id) > 64:
        raise InvalidInboundEvent("comment id longer than Meta's")
    username = clean_text(from_username, max_length=64)
    if from_id == account.ig_user_id or (
        username and account.username and username.lower() == account.username.lower()
    ):
        return None, False
    with transaction.atomic():
        comment, created = Comment.objects.get_or_create(
            account=account,
            comment_id=comment_id,
            defaults={
                "tenant_id": account.tenant_id,
                "text": clean_text(text),
                "media_id": clean_text(media_id, max_length=64),
                "media_product_type": clean_text(media_product_type, max_length=16),
                "parent_id": clean_text(parent_id, max_length=64),
                "from_id": clean_text(from_id, max_length=64),
                "from_username": username,
                "is_live": is_live,
                "commented_at": commented_at,
            },
        )
        if created:
            partner_events.comment_received(comment=comment)
    return comment, created


# -- contact profiles --------------------------------------------------------------------------


def refresh_profile_if_stale(contact: Contact) -> None:
    fetched = contact.profile_fetched_at
    if fetched is not None and timezone.now() - fetched < PROFILE_MAX_AGE:
        return
    transaction.on_commit(partial(_enqueue_profile_fetch, contact.tenant_id, contact.pk))


def _enqueue_profile_fetch(tenant_id: int, contact_id: int) -> None:
    """Publish the profile fetch after commit; a broker problem costs a profile, not a message."""
    from messaging import tasks

    try:
        if not cache.add(f"contact-profile-fetch:{contact_id}", 1, PROFILE_FETCH_THROTTLE_SECONDS):
            return
        tasks.contact_fetch_profile.apply_async(args=(tenant_id, contact_id), retry=False)
    except Exception:
        logger.warning("profile fetch for contact %s not queued", contact_id, exc_info=True)


def contact_profile_refresh(*, contact: Contact) -> Contact:
    """Fetch the customer's name, username and picture from Meta with the account's token.

    Meta refuses profiles until the customer has consented (messaged the business) and when the
    token is dead; such errors are logged and the contact keeps what it has (its username, or
    its id). Passing failures (rate limit, network) are raised for the task to retry.
    """
    from integrations.meta.client import client_from_settings

    account = contact.account
    token = account.access_token
    client = client_from_settings()
    if account.login_kind == InstagramAccount.LoginKind.FACEBOOK:
        api = client.facebook_page(account.page_id, token)
    else:
        api = client.instagram_account(token, account.ig_user_id)
    try:
        profile = api.get_user_profile(contact.igsid)
    except (MetaTransientError, MetaRateLimitError):
        raise
    except MetaError as exc:
        logger.info("profile of contact %s not available: %s", contact.pk, type(exc).__name__)
        if isinstance(exc, MetaAuthError):
            # The token is dead: the account needs reconnecting, and its admins are told.
            accounts_onboarding.instagram_account_record_error(account=account, error=exc)
        contact.profile_fetched_at = timezone.now()
        contact.save(update_fields=["profile_fetched_at"])
        return contact
    contact.name = clean_text(profile.name, max_length=200) or contact.name
    contact.username = clean_text(profile.username, max_length=64) or contact.username
    picture = clean_text(profile.profile_pic)
    if picture.startswith("https://") and len(picture) <= 2000:
        contact.profile_pic_url = picture
    contact.follower_count = (
        profile.follower_count
        if profile.follower_count is not None and 0 <= profile.follower_count < 2**31
        else contact.follower_count
    )
    contact.follows_business = profile.is_user_follow_business
    contact.business_follows = profile.is_business_follow_user
    contact.is_verified = profile.is_verified_user
    contact.profile_fetched_at = timezone.now()
    contact.save()
    return contact


# -- from a parsed webhook event ---------------------------------------------------------------


def _https(url: str | None) -> str | None:
    """Only https links are kept: anything else (javascript:, data:, http:) is dropped."""
    text = clean_text(url)
    return text if text.lower().startswith("https://") else None


def _compact(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v not in (None, "")}


def _attachment(attachment: meta_events.Attachment) -> dict[str, Any]:
    return _compact(
        {
            "type": attachment.kind if attachment.kind != "unknown" else attachment.type,
            "url": _https(attachment.url),
            "title": attachment.title,
            "media_id": attachment.media_id,
            "sticker_id": attachment.sticker_id,
        }
    )


def _referral(referral: meta_events.Referral | None) -> dict[str, Any] | None:
    if referral is None:
        return None
    return _compact(
        {
            "source": referral.source,
            "type": referral.type,
            "ref": referral.ref,
            "ad_id": referral.ad_id,
            "ad_title": referral.ad_title,
            "photo_url": _https(referral.photo_url),
            "video_url": _https(referral.video_url),
            "product_id": referral.product_id,
        }
    )


def message_content(event: meta_events.MessageEvent) -> Content:
    """What a message event says, as stored."""
    attachments = event.display_attachments
    kinds = [a.kind for a in attachments]
    kind: str
    if event.is_unsupported:
        kind = Kind.UNSUPPORTED
    elif event.reply_to_story is not None:
        kind = Kind.STORY_REPLY
    elif "story_mention" in kinds:
        kind = Kind.STORY_MENTION
    elif attachments:
        kind = _ATTACHMENT_KINDS.get(kinds[0], Kind.UNSUPPORTED)
    elif event.text is not None:
        kind = Kind.TEXT
    else:
        kind = Kind.UNSUPPORTED
    story = event.reply_to_story
    return Content(
        kind=kind,
        text=event.text or "",
        attachments=[_attachment(a) for a in attachments],
        reply_to_mid=event.reply_to_mid or "",
        reply_to_story=(
            _compact(
                {
                    "id": story.id,
                    "url": _https(story.url),
                    "link_sticker_url": _https(story.link_sticker_url),
                }
            )
            if story is not None
            else None
        ),
        quick_reply_payload=event.quick_reply_payload or "",
        referral=_referral(event.referral),
    )


_OPENERS: dict[str, str] = {
    Kind.STORY_MENTION: WindowOpener.STORY_MENTION,
    Kind.STORY_REPLY: WindowOpener.STORY_REPLY,
}


def window_opener(content: Content) -> str:
    """What a customer's message of this content opens the reply window with."""
    return _OPENERS.get(content.kind, WindowOpener.MESSAGE)


def _synthetic_mid(prefix: str, event: meta_events.WebhookEvent) -> str:
    """A stable key for a thread item Meta gives no message id (never sent back to Meta)."""
    return f"{prefix}:" + hashlib.sha256(event.dedupe_key.encode("utf-8", "replace")).hexdigest()


def _from_ms(ms: int | None) -> datetime | None:
    if ms is None:
        return None
    try:
        return datetime.fromtimestamp(ms / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def event_time(event: meta_events.WebhookEvent, received_at: datetime) -> datetime:
    """When the event happened by Meta's clock; the receive time if Meta gave none we believe."""
    moment = event.timestamp
    if moment is None or moment > received_at + MAX_CLOCK_SKEW:
        return received_at
    return moment


def _automate_message(message: Message) -> None:
    """A customer's message arrived live: the account's automation rules may answer it.

    Only here, for live webhook events: history imports, redeliveries and echoes never trigger
    rules. The engine runs in savepoints of its own and never raises.
    """
    from automation import engine

    engine.message_received(message=message)


def _automated_send_in_flight(message: Message) -> bool:
    """Is an automated send of ours to this customer waiting on Meta's answer right now?

    Meta does not promise that an Instagram echo names the app that sent it; an echo with
    neither our app id nor our metadata that lands while our automation's send is in flight
    (before Send API's answer gave us its id) is taken for that send's echo, not for a person
    answering from the Instagram app.
    """
    from messaging.models import OutboundJob
    from messaging.policy import AUTOMATED_SENDERS

    return OutboundJob.objects.filter(
        conversation_id=message.conversation_id,
        status=OutboundJob.Status.SENDING,
        sender_kind__in=list(AUTOMATED_SENDERS),
    ).exists()


def _human_replied_elsewhere(message: Message) -> None:
    """The business answered outside this platform: the conversation is a person's now."""
    from messaging.services import handover

    handover.conversation_mode_set(
        conversation=message.conversation, mode=Conversation.Mode.HUMAN, reason="external_reply"
    )


def inbound_event_apply(
    *,
    account: InstagramAccount,
    event: meta_events.WebhookEvent,
    received_at: datetime,
    touched: list[Message] | None = None,
) -> str:
    """Apply one parsed webhook event routed to ``account``; a word saying what happened.

    Raises ``InvalidInboundEvent`` for an event that can never be stored. ``touched``, when
    given, receives the message row a message, postback, referral or edit event stored or
    found, as it stands in this transaction.
    """
    seen: list[Message] = touched if touched is not None else []
    at = event_time(event, received_at)
    from_business = event.is_from_business
    customer = event.customer_id
    if (
        customer is not None
        and customer == account.ig_user_id
        and not isinstance(event, meta_events.CommentEvent)
    ):
        return "ignored:self"

    if isinstance(event, meta_events.MessageEvent):
        if event.is_self:
            return "ignored:self"
        content = message_content(event)
        if from_business:
            direction, sender_kind, opens = (
                Message.Direction.OUTBOUND,
                Message.SenderKind.EXTERNAL,
                "",
            )
        else:
            direction, sender_kind = Message.Direction.INBOUND, Message.SenderKind.CUSTOMER
            opens = window_opener(content)
        message, arrived = message_receive(
            account=account,
            igsid=customer or "",
            mid=event.mid or "",
            direction=direction,
            sender_kind=sender_kind,
            sent_at=at,
            content=content,
            app_id=event.app_id or "",
            is_standby=event.is_standby,
            opens_window=opens,
        )
        seen.append(message)
        ours = False
        if from_business and event.metadata:
            # The echo of one of our own sends: its outbox row learns Meta's id from it.
            from messaging import outbox

            ours = outbox.echo_received(
                account=account, mid=event.mid or "", metadata=event.metadata
            )
        if (
            arrived
            and from_business
            and not ours
            and (event.app_id or "") not in our_app_ids()
            and not _automated_send_in_flight(message)
        ):
            # A person answered from the Instagram app or another app: automation steps back.
            _human_replied_elsewhere(message)
        elif arrived and not from_business:
            _automate_message(message)
        return "message" if arrived else "duplicate"

    if isinstance(event, meta_events.MessageDeletedEvent):
        message_unsend(
            account=account,
            igsid=customer or "",
            mid=event.mid or "",
            unsent_at=at,
            from_business=from_business,
        )
        return "unsend"

    if isinstance(event, meta_events.MessageEditEvent):
        seen.append(
            message_edit(
                account=account,
                igsid=customer or "",
                mid=event.mid or "",
                text=event.text,
                num_edit=event.num_edit,
                edited_at=at,
                from_business=from_business,
            )
        )
        return "edit"

    if isinstance(event, meta_events.ReactionEvent):
        reaction_apply(
            account=account,
            mid=event.mid or "",
            actor=Reaction.Actor.BUSINESS if from_business else Reaction.Actor.CUSTOMER,
            emoji=event.emoji,
            reaction=event.reaction,
            removed=event.is_removal,
            at=at,
        )
        return "reaction"

    if isinstance(event, meta_events.ReadEvent):
        if from_business:
            return "ignored:business_read"
        conversation_mark_read(
            account=account,
            igsid=customer or "",
            mid=event.mid,
            read_at=at,
            watermark=_from_ms(event.watermark_ms),
        )
        return "read"

    if isinstance(event, meta_events.PostbackEvent):
        if event.is_self or from_business:
            return "ignored:self"
        title = event.title or ""
        message, arrived = message_receive(
            account=account,
            igsid=customer or "",
            mid=event.mid or _synthetic_mid("postback", event),
            direction=Message.Direction.INBOUND,
            sender_kind=Message.SenderKind.CUSTOMER,
            sent_at=at,
            content=Content(
                kind=Kind.POSTBACK,
                text=title,
                postback=_compact({"title": title, "payload": event.payload}),
            ),
            is_standby=event.is_standby,
            opens_window=WindowOpener.POSTBACK,
        )
        seen.append(message)
        if arrived:
            _automate_message(message)
        return "postback" if arrived else "duplicate"

    if isinstance(event, meta_events.ReferralEvent):
        message, arrived = message_receive(
            account=account,
            igsid=customer or "",
            mid=_synthetic_mid("referral", event),
            direction=Message.Direction.INBOUND,
            sender_kind=Message.SenderKind.CUSTOMER,
            sent_at=at,
            content=Content(kind=Kind.REFERRAL, referral=_referral(event.referral)),
            is_standby=event.is_standby,
            opens_window=WindowOpener.REFERRAL,
        )
        seen.append(message)
        return "referral" if arrived else "duplicate"

    if isinstance(event, meta_events.HandoverEvent):
        if event.action not in ("pass_thread_control", "take_thread_control"):
            return f"ignored:{event.action}"
        conversation_thread_owner_change(
            account=account, igsid=customer or "", new_owner_app_id=event.new_owner_app_id
        )
        return "handover"

    if isinstance(event, meta_events.CommentEvent):
        comment, created = comment_receive(
            account=account,
            comment_id=event.comment_id or "",
            commented_at=at,
            text=event.text,
            media_id=event.media_id,
            media_product_type=event.media_product_type,
            parent_id=event.parent_id,
            from_id=event.from_id,
            from_username=event.from_username,
            is_live=isinstance(event, meta_events.LiveCommentEvent),
        )
        if comment is None:
            return "ignored:own_comment"
        if created:
            from automation import engine

            engine.comment_received(comment=comment)
        return "comment" if created else "duplicate"

    if isinstance(event, meta_events.UnknownEvent):
        return f"ignored:{event.reason.split(':')[-1]}"
    return f"ignored:{event.event_type}"
