"""Helpers shared by the inbound and outbound halves of messaging.

Everything here runs inside a tenant scope and inside the caller's transaction.
"""

from __future__ import annotations

import re
from typing import Any

from django.db import IntegrityError, transaction

from accounts.models import InstagramAccount
from messaging.models import Contact, Conversation, Message

_SURROGATES = re.compile("[\ud800-\udfff]")

MID_MAX_LENGTH = Message._meta.get_field("mid").max_length or 1024
IGSID_MAX_LENGTH = Contact._meta.get_field("igsid").max_length or 64


class InvalidInboundEvent(ValueError):
    """An event that can never be stored (no id, an id longer than Meta's ids can be...)."""


def clean_text(value: str | None, *, max_length: int | None = None) -> str:
    """A string PostgreSQL accepts: NULs dropped, lone surrogates replaced with U+FFFD."""
    if not value:
        return ""
    text = value.replace("\x00", "")
    text = _SURROGATES.sub("\ufffd", text)
    if max_length is not None:
        text = text[:max_length]
    return text


def clean_json(value: Any) -> Any:
    """``clean_text`` applied to every string (keys too) of a JSON-like value."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(str(k)): clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(v) for v in value]
    return value


def clean_mid(mid: str | None) -> str:
    """A Meta message id fit for storage, or ``InvalidInboundEvent``."""
    text = clean_text(mid).strip()
    if not text:
        raise InvalidInboundEvent("the event has no message id")
    if len(text) > MID_MAX_LENGTH:
        raise InvalidInboundEvent(f"message id of {len(text)} characters is longer than Meta's")
    return text


def clean_igsid(igsid: str | None) -> str:
    """A customer's Instagram-scoped id fit for storage, or ``InvalidInboundEvent``."""
    text = clean_text(igsid).strip()
    if not text:
        raise InvalidInboundEvent("the event names no customer")
    if len(text) > IGSID_MAX_LENGTH:
        raise InvalidInboundEvent(f"customer id of {len(text)} characters is longer than Meta's")
    return text


def contact_get_or_create(*, account: InstagramAccount, igsid: str) -> tuple[Contact, bool]:
    """The account's contact for this IGSID; concurrent first events make one row."""
    return Contact.objects.get_or_create(
        account=account, igsid=igsid, defaults={"tenant_id": account.tenant_id}
    )


def conversation_lock(*, account: InstagramAccount, contact: Contact) -> Conversation:
    """The contact's conversation, created if needed, locked until the transaction ends.

    Locking the conversation first serialises every writer of one thread, so counters and
    "first arrival" decisions are made by one worker at a time.
    """
    conversation, _ = Conversation.objects.get_or_create(
        contact=contact, defaults={"tenant_id": account.tenant_id, "account": account}
    )
    return Conversation.objects.select_for_update().get(pk=conversation.pk)


# What an erased message keeps of its content: nothing. One definition for every erasure
# (unsend, contact erasure, retention), row by row or in bulk (``accounts.compliance``).
ERASED_CONTENT: dict[str, Any] = {
    "text": "",
    "attachments": [],
    "reply_to_mid": "",
    "reply_to_story": None,
    "quick_reply_payload": "",
    "postback": None,
    "referral": None,
}


def message_erase_content(message: Message) -> None:
    """Drop everything the customer wrote or sent; the row stays as a tombstone."""
    for name, value in ERASED_CONTENT.items():
        setattr(message, name, list(value) if isinstance(value, list) else value)


CONTENT_FIELDS = list(ERASED_CONTENT)


def message_assign_mid(*, message: Message, mid: str) -> Message:
    """Give a message we sent the id Meta returned for it.

    The echo webhook of that send, or an unsend / edit of it, may have been processed first and
    left a row with this mid: that row is folded into ``message`` (an unsend erases it, a later
    edit updates its text) and removed, so the thread shows one message.
    """
    mid = clean_mid(mid)
    with transaction.atomic():
        early = (
            Message.objects.select_for_update()
            .filter(account_id=message.account_id, mid=mid)
            .exclude(pk=message.pk)
            .first()
        )
        fields = ["mid"]
        if early is not None:
            if early.deleted_at is not None:
                message_erase_content(message)
                message.deleted_at = early.deleted_at
                fields += [*CONTENT_FIELDS, "deleted_at"]
            elif early.edit_count > message.edit_count:
                message.text = early.text
                message.edit_count = early.edit_count
                message.edited_at = early.edited_at
                fields += ["text", "edit_count", "edited_at"]
            if early.app_id and not message.app_id:
                message.app_id = early.app_id
                fields.append("app_id")
            early.delete()
        message.mid = mid
        try:
            with transaction.atomic():
                message.save(update_fields=fields)
        except IntegrityError:
            # An echo committed between our look and our write: fold it in on a second pass.
            message.mid = ""
            return message_assign_mid(message=message, mid=mid)
    return message
