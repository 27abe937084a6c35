"""Partner events: what happened in a workspace, written for its callback endpoints.

``event_emit`` runs inside the caller's tenant scope and transaction: the event row and one
delivery row per subscribed endpoint commit (or roll back) with the change they describe. It
never calls the broker; the callback relay (``webhooks.partner_delivery``) picks deliveries up.

The ``<entity>_<what>`` helpers below build each event type's payload from a row, so every
caller sends the same shape (the shapes are documented in ``webhooks.api.events``).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max, Q
from django.db.models.signals import post_delete, post_save
from django.utils import timezone

from webhooks.models import (
    CallbackDelivery,
    CallbackEndpoint,
    CallbackEvent,
    CallbackEventType,
    IdempotencyRecord,
)

if TYPE_CHECKING:
    from accounts.models import InstagramAccount
    from messaging.models import Comment, Conversation, Message

logger = logging.getLogger(__name__)

EventType = CallbackEventType


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


# -- which endpoints want an event -----------------------------------------------------------
#
# Every sent or received message emits an event, and most workspaces change their endpoints
# rarely, so each process remembers a workspace's enabled endpoints (ids and event types only).
# A change (any save or delete of an endpoint, in any process) bumps the workspace's endpoint
# version in Redis, before and again after it commits; the remembered list is used only while
# the version read before each event matches the one it was read under, so a change is seen
# by the next event everywhere, as without the memory. Without Redis the list is kept
# ``ENDPOINTS_TTL_LOCAL`` seconds (a change made in this process is seen at once).
ENDPOINTS_TTL = 30.0
ENDPOINTS_TTL_LOCAL = 2.0
_endpoints: dict[int, tuple[bytes | None, float, tuple[tuple[int, frozenset[str]], ...]]] = {}
_endpoints_lock = threading.Lock()


@functools.cache
def _redis() -> Any:
    import redis

    return redis.Redis.from_url(
        settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2, health_check_interval=30
    )


def _version_key(tenant_id: int) -> str:
    base = settings.CACHES["default"].get("KEY_PREFIX", "") or "igdm"
    return f"{base}:callbacks:endpoints:{tenant_id}"


def _endpoints_version(tenant_id: int) -> tuple[bool, bytes | None]:
    """(known, version): known is False when the shared version could not be read."""
    if not settings.REDIS_URL:
        return True, None
    try:
        return True, _redis().get(_version_key(tenant_id))
    except Exception:
        logger.warning("callback endpoint version unavailable", exc_info=True)
        return False, None


def _bump_endpoints(tenant_id: int) -> None:
    with _endpoints_lock:
        _endpoints.pop(tenant_id, None)
    if not settings.REDIS_URL:
        return
    try:
        _redis().incr(_version_key(tenant_id))
    except Exception:
        logger.warning("callback endpoint version not bumped", exc_info=True)


def _endpoint_changed(sender: type[CallbackEndpoint], instance: CallbackEndpoint, **_: Any) -> None:
    tenant_id = instance.tenant_id
    _bump_endpoints(tenant_id)
    transaction.on_commit(lambda: _bump_endpoints(tenant_id))


post_save.connect(_endpoint_changed, sender=CallbackEndpoint, dispatch_uid="events.endpoint_saved")
post_delete.connect(
    _endpoint_changed, sender=CallbackEndpoint, dispatch_uid="events.endpoint_deleted"
)


def _enabled_endpoints(tenant_id: int) -> tuple[tuple[int, frozenset[str]], ...]:
    """(id, event types) of the workspace's enabled endpoints."""
    known, version = _endpoints_version(tenant_id)
    now = time.monotonic()
    held = _endpoints.get(tenant_id)
    if known and held is not None and held[0] == version and held[1] > now:
        return held[2]
    found = tuple(
        (pk, frozenset(events or ()))
        for pk, events in CallbackEndpoint.objects.filter(
            tenant_id=tenant_id, enabled=True
        ).values_list("pk", "events")
    )
    if known:
        ttl = ENDPOINTS_TTL if settings.REDIS_URL else ENDPOINTS_TTL_LOCAL
        with _endpoints_lock:
            if len(_endpoints) > 10_000:
                _endpoints.clear()
            _endpoints[tenant_id] = (version, now + ttl, found)
    return found


def wanted(tenant_id: int) -> bool:
    """Whether any enabled endpoint of the workspace would receive an event."""
    return bool(_enabled_endpoints(tenant_id))


def forget_endpoints() -> None:
    """Drop every remembered endpoint list of this process."""
    with _endpoints_lock:
        _endpoints.clear()


def event_emit(
    *,
    tenant_id: int,
    type: str,  # noqa: A002 - the event's own word for it
    payload: dict[str, Any] | Callable[[], dict[str, Any]],
    conversation_id: int | None = None,
) -> CallbackEvent | None:
    """Record an event and queue it for every enabled endpoint that subscribed to its type.

    Nothing is written when no endpoint wants the event, and a ``payload`` given as a function
    is not even built then (a sent message's payload cost a sending worker more than the
    check). Within a conversation, events are numbered in the order they are emitted; callers
    hold the conversation's row lock (every writer of a thread does), so the numbers follow the
    order of the changes.
    """
    if type not in EventType.values:
        raise ValueError(f"unknown event type {type!r}")
    endpoints = [pk for pk, types in _enabled_endpoints(tenant_id) if type in types]
    if not endpoints:
        return None
    sequence = None
    if conversation_id is not None:
        _lock_sequence(conversation_id)
        last = CallbackEvent.objects.filter(conversation_id=conversation_id).aggregate(
            last=Max("sequence")
        )["last"]
        sequence = (last or 0) + 1
    event = CallbackEvent.objects.create(
        tenant_id=tenant_id,
        type=type,
        payload=payload() if callable(payload) else payload,
        conversation_id=conversation_id,
        sequence=sequence,
    )
    now = timezone.now()
    CallbackDelivery.objects.bulk_create(
        CallbackDelivery(
            tenant_id=tenant_id,
            endpoint_id=endpoint_id,
            event=event,
            conversation_id=conversation_id,
            sequence=sequence,
            next_attempt_at=now,
        )
        for endpoint_id in endpoints
    )
    return event


# The first key of the advisory locks that number a conversation's events.
_SEQUENCE_LOCK = 0x43424556


def _lock_sequence(conversation_id: int) -> None:
    """Hold the conversation's event numbering until the transaction ends.

    Taken last by every writer (events are emitted at the end of a change), so it never
    waits on a lock a holder of it wants. SQLite serialises writers by itself.
    """
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(%s, %s)",
            [_SEQUENCE_LOCK, conversation_id & 0x7FFFFFFF],
        )


def envelope(event: CallbackEvent) -> dict[str, Any]:
    """The JSON body an endpoint receives for ``event``."""
    return {
        "id": event.pk,
        "type": event.type,
        "created_at": _iso(event.created_at),
        "conversation_id": event.conversation_id,
        "sequence": event.sequence,
        "data": event.payload,
    }


# -- payloads ----------------------------------------------------------------------------------


def contact_data(conversation: Conversation) -> dict[str, Any]:
    contact = conversation.contact
    return {
        "id": contact.pk,
        "igsid": contact.igsid,
        "username": contact.username or None,
        "name": contact.name or None,
    }


def conversation_data(conversation: Conversation) -> dict[str, Any]:
    return {
        "id": conversation.pk,
        "account_id": conversation.account_id,
        "contact": contact_data(conversation),
        "status": conversation.status,
        "assignee_id": conversation.assignee_id,
        "unread_count": conversation.unread_count,
        "last_message_at": _iso(conversation.last_message_at),
        "owned_by_other_app": conversation.owned_by_other_app,
        "mode": conversation.mode,
    }


def message_data(message: Message) -> dict[str, Any]:
    unsent = message.deleted_at is not None
    error = None
    if message.error_code or message.error_message:
        error = {"code": message.error_code, "message": message.error_message}
    return {
        "id": message.pk,
        "mid": message.mid or None,
        "conversation_id": message.conversation_id,
        "account_id": message.account_id,
        "direction": message.direction,
        "sender_kind": message.sender_kind,
        "kind": message.kind,
        "text": None if unsent else message.text,
        "attachments": None
        if unsent
        else [
            {"type": str(a.get("type") or ""), "url": a.get("url"), "title": a.get("title")}
            for a in message.attachments or []
            if isinstance(a, dict)
        ],
        "reply_to_mid": message.reply_to_mid or None,
        "status": message.status,
        "error": error,
        "sent_at": _iso(message.sent_at),
        "edited_at": _iso(message.edited_at),
        "unsent": unsent,
        "erased_reason": message.erasure,
    }


def _message_event(
    type_: str, message: Message, as_of: dict[str, Any] | None = None
) -> CallbackEvent | None:
    conversation = message.conversation
    return event_emit(
        tenant_id=message.tenant_id,
        type=type_,
        payload=lambda: {
            "message": message_data(message),
            "conversation": as_of or conversation_data(conversation),
        },
        conversation_id=conversation.pk,
    )


def message_received(
    *, message: Message, as_of: dict[str, Any] | None = None
) -> CallbackEvent | None:
    """``as_of``: the conversation's ``conversation_data`` when the message arrived, for a
    caller that stored several messages of a thread before telling of them."""
    return _message_event(EventType.MESSAGE_RECEIVED, message, as_of)


def message_sent(*, message: Message, as_of: dict[str, Any] | None = None) -> CallbackEvent | None:
    """A business message entered the thread: accepted by Meta, or sent from another app."""
    return _message_event(EventType.MESSAGE_SENT, message, as_of)


def message_failed(*, message: Message) -> CallbackEvent | None:
    """A send failed for good; ``message.error`` says why."""
    return _message_event(EventType.MESSAGE_FAILED, message)


def message_edited(*, message: Message) -> CallbackEvent | None:
    return _message_event(EventType.MESSAGE_EDITED, message)


def message_deleted(*, message: Message) -> CallbackEvent | None:
    """The message was unsent: its content also leaves every event still waiting to go out."""
    callback_content_erase(message_ids=[message.pk])
    return _message_event(EventType.MESSAGE_DELETED, message)


def message_read(
    *, conversation: Conversation, mid: str | None, read_at: datetime
) -> CallbackEvent | None:
    return event_emit(
        tenant_id=conversation.tenant_id,
        type=EventType.MESSAGE_READ,
        payload={
            "conversation": conversation_data(conversation),
            "mid": mid or None,
            "read_at": _iso(read_at),
            "read_up_to": _iso(conversation.customer_read_up_to),
        },
        conversation_id=conversation.pk,
    )


def conversation_created(*, conversation: Conversation) -> CallbackEvent | None:
    return event_emit(
        tenant_id=conversation.tenant_id,
        type=EventType.CONVERSATION_CREATED,
        payload={"conversation": conversation_data(conversation)},
        conversation_id=conversation.pk,
    )


def conversation_updated(
    *, conversation: Conversation, changes: list[str], as_of: dict[str, Any] | None = None
) -> CallbackEvent | None:
    """``changes`` names what changed: status, assignee, labels, owner."""
    return event_emit(
        tenant_id=conversation.tenant_id,
        type=EventType.CONVERSATION_UPDATED,
        payload={
            "conversation": as_of or conversation_data(conversation),
            "changes": sorted(changes),
        },
        conversation_id=conversation.pk,
    )


def comment_received(*, comment: Comment) -> CallbackEvent | None:
    return event_emit(
        tenant_id=comment.tenant_id,
        type=EventType.COMMENT_RECEIVED,
        payload={
            "comment": {
                "id": comment.pk,
                "comment_id": comment.comment_id,
                "account_id": comment.account_id,
                "media_id": comment.media_id or None,
                "media_product_type": comment.media_product_type or None,
                "parent_id": comment.parent_id or None,
                "from_id": comment.from_id or None,
                "from_username": comment.from_username or None,
                "text": comment.text,
                "is_live": comment.is_live,
                "commented_at": _iso(comment.commented_at),
            }
        },
    )


def account_health_changed(
    *, account: InstagramAccount, previous_health: str | None
) -> CallbackEvent | None:
    """Emitted when ``account.health`` differs from ``previous_health`` (None: a new account);
    a no-op otherwise."""
    if account.health == previous_health:
        return None
    return event_emit(
        tenant_id=account.tenant_id,
        type=EventType.ACCOUNT_HEALTH_CHANGED,
        payload={
            "account": {
                "id": account.pk,
                "ig_user_id": account.ig_user_id,
                "username": account.username or None,
                "health": account.health,
                "previous_health": previous_health,
                "last_error": account.last_error or None,
            }
        },
    )


# -- erasure -----------------------------------------------------------------------------------


def _scrub(
    value: Any,
    message_ids: set[int],
    contact_ids: set[int],
    comment_ids: set[int],
    conversation_ids: frozenset[int] = frozenset(),
) -> tuple[Any, bool]:
    """``value`` with the content of the named messages (or every message of the named
    conversations), contacts and comments removed."""
    changed = False
    if isinstance(value, list):
        items = []
        for item in value:
            new, moved = _scrub(item, message_ids, contact_ids, comment_ids, conversation_ids)
            items.append(new)
            changed |= moved
        return items, changed
    if not isinstance(value, dict):
        return value, False
    scrubbed: dict[str, Any] = {}
    for key, item in value.items():
        new, moved = _scrub(item, message_ids, contact_ids, comment_ids, conversation_ids)
        scrubbed[key] = new
        changed |= moved
    row_id = scrubbed.get("id")
    if "mid" in scrubbed and (
        row_id in message_ids or scrubbed.get("conversation_id") in conversation_ids
    ):
        scrubbed.update(text=None, attachments=None, reply_to_mid=None, unsent=True)
    if "igsid" in scrubbed and row_id in contact_ids:
        scrubbed.update(igsid=None, username=None, name=None)
    if "comment_id" in scrubbed and row_id in comment_ids:
        scrubbed.update(text=None, from_id=None, from_username=None)
    return scrubbed, changed or scrubbed != value


def callback_content_erase(
    *,
    conversation_ids: Iterable[int] = (),
    message_ids: Iterable[int] = (),
    contact_ids: Iterable[int] = (),
    comment_ids: Iterable[int] = (),
    created_before: datetime | None = None,
    account_id: int | None = None,
) -> int:
    """Remove erased content from stored events, partner responses and delivery logs.

    Events are found by conversation (and comment), or every event older than
    ``created_before`` (retention); the rows kept name ids only. Runs in the caller's scope.
    """
    messages, contacts, comments = set(message_ids), set(contact_ids), set(comment_ids)
    conversations = list(conversation_ids)
    events = CallbackEvent.objects.none()
    if conversations or messages:
        events = CallbackEvent.objects.filter(conversation_id__in=conversations) | (
            CallbackEvent.objects.filter(payload__message__id__in=list(messages))
        )
    if comments:
        events = events | CallbackEvent.objects.filter(payload__comment__id__in=list(comments))
    if created_before is not None:
        events = CallbackEvent.objects.filter(created_at__lt=created_before)
        if account_id is not None:
            events = events.filter(
                Q(payload__message__account_id=account_id)
                | Q(payload__comment__account_id=account_id)
            )
    erased = 0
    for event in events.only("pk", "payload").iterator(chunk_size=500):
        if created_before is not None:
            payload, changed = _scrub_everything(event.payload)
        else:
            payload, changed = _scrub(
                event.payload, messages, contacts, comments, frozenset(conversations)
            )
        if changed:
            CallbackEvent.objects.filter(pk=event.pk).update(payload=payload)
            CallbackDelivery.objects.filter(event_id=event.pk).update(response_excerpt="")
            erased += 1
    records = IdempotencyRecord.objects.exclude(response_body=None)
    if created_before is not None:
        if account_id is None:
            records.filter(created_at__lt=created_before).update(response_body=None)
    elif messages or contacts or comments or conversations:
        for record in records.only("pk", "response_body").iterator(chunk_size=500):
            body, changed = _scrub(
                record.response_body, messages, contacts, comments, frozenset(conversations)
            )
            if changed:
                IdempotencyRecord.objects.filter(pk=record.pk).update(response_body=body)
    return erased


def _scrub_everything(payload: Any) -> tuple[Any, bool]:
    """Retention: every message text, attachment and comment text in an old event goes."""
    message = payload.get("message") if isinstance(payload, dict) else None
    comment = payload.get("comment") if isinstance(payload, dict) else None
    ids = {message["id"]} if isinstance(message, dict) and "id" in message else set()
    comment_ids = {comment["id"]} if isinstance(comment, dict) and "id" in comment else set()
    return _scrub(payload, ids, set(), comment_ids)
