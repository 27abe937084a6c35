"""Team work on conversations: assignment, resolve and reopen, notes, labels, canned replies.

Every function runs inside the caller's tenant scope, is one transaction, and logs what changed
and who changed it (ids only, never the content) on the ``messaging.teamwork`` logger, so an
audit trail can be kept from the logs.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import AccountAccess, Membership, User
from accounts.roles import Capability, membership_can
from accounts.selectors import membership_is_limited
from messaging.models import (
    CannedReply,
    Conversation,
    ConversationLabel,
    Label,
    Note,
)
from messaging.services.common import clean_text
from webhooks import partner_events

logger = logging.getLogger("messaging.teamwork")

NOTE_MAX_LENGTH = 4000
CANNED_MAX_LENGTH = 1000
_MENTION = re.compile(r"(?<![\w.])@([\w.+-]{1,64})")
_SHORTCUT = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")


class TeamworkError(ValueError):
    """A request the rules refuse; ``message`` is for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _audit(action: str, *, actor: User | None, **ids: object) -> None:
    logger.info(
        "teamwork %s",
        action,
        extra={"action": action, "actor_id": actor.pk if actor else None, **ids},
    )


def _touch(conversation: Conversation, *fields: str) -> None:
    """Save the changed fields and ``updated_at`` (what live updates watch)."""
    conversation.save(update_fields=[*fields, "updated_at"])


# -- assignment and status --------------------------------------------------------------------


def member_may_work_on(membership: Membership, conversation: Conversation) -> bool:
    """A member who may answer and who sees the conversation's account."""
    if not membership_can(membership, Capability.REPLY):
        return False
    if membership_is_limited(membership):
        return AccountAccess.objects.filter(
            membership=membership, account_id=conversation.account_id
        ).exists()
    return True


def conversation_assign(
    *, conversation: Conversation, assignee: Membership | None, actor: User | None
) -> Conversation:
    """Give the conversation to a member (``None``: unassign).

    The assignee must be a member of the workspace who may answer and sees the account.
    """
    with transaction.atomic():
        locked = Conversation.objects.select_for_update().get(pk=conversation.pk)
        if assignee is not None and not member_may_work_on(assignee, locked):
            raise TeamworkError(
                "assignee_not_allowed", "That member can't answer this conversation."
            )
        new_id = assignee.user_id if assignee is not None else None
        if locked.assignee_id != new_id:
            locked.assignee_id = new_id
            _touch(locked, "assignee")
            _audit("assign", actor=actor, conversation_id=locked.pk, assignee_id=new_id)
            partner_events.conversation_updated(conversation=locked, changes=["assignee"])
    conversation.assignee_id = locked.assignee_id
    conversation.updated_at = locked.updated_at
    return locked


def conversation_resolve(*, conversation: Conversation, actor: User | None) -> Conversation:
    return _set_status(conversation, Conversation.Status.RESOLVED, actor, "resolve")


def conversation_reopen(*, conversation: Conversation, actor: User | None) -> Conversation:
    return _set_status(conversation, Conversation.Status.OPEN, actor, "reopen")


def _set_status(
    conversation: Conversation, status: str, actor: User | None, action: str
) -> Conversation:
    with transaction.atomic():
        locked = Conversation.objects.select_for_update().get(pk=conversation.pk)
        fields = []
        if locked.status != status:
            locked.status = status
            fields.append("status")
        if status == Conversation.Status.RESOLVED and locked.unread_count:
            locked.unread_count = 0
            fields.append("unread_count")
        if fields:
            _touch(locked, *fields)
            _audit(action, actor=actor, conversation_id=locked.pk)
            if "status" in fields:
                partner_events.conversation_updated(conversation=locked, changes=["status"])
        if (
            "status" in fields
            and status == Conversation.Status.RESOLVED
            and locked.mode == Conversation.Mode.HUMAN
        ):
            _hand_back_on_resolve(locked, actor)
    return locked


def _hand_back_on_resolve(conversation: Conversation, actor: User | None) -> None:
    """Resolving hands the conversation back to automation where the account says so."""
    from automation import selectors as automation_selectors
    from messaging.services import handover

    if automation_selectors.resolve_returns_to_automation(account_id=conversation.account_id):
        handover.conversation_mode_set(
            conversation=conversation,
            mode=Conversation.Mode.AUTOMATION,
            actor=actor,
            reason="resolved",
        )


def conversation_mark_seen(*, conversation: Conversation, actor: User | None) -> Conversation:
    """An agent opened the thread: nothing in it is unread any more."""
    if not conversation.unread_count:
        return conversation
    with transaction.atomic():
        updated = Conversation.objects.filter(pk=conversation.pk, unread_count__gt=0).update(
            unread_count=0, updated_at=timezone.now()
        )
    if updated:
        conversation.unread_count = 0
    return conversation


# -- notes ------------------------------------------------------------------------------------


def mentions_parse(body: str, members: Iterable[Membership]) -> list[int]:
    """User ids of the members ``@named`` in ``body``.

    A member answers to the part of their email before the ``@``, their first name, or their
    full name written without spaces, in any case.
    """
    handles = {m.group(1).lower().rstrip(".") for m in _MENTION.finditer(body)}
    if not handles:
        return []
    found: list[int] = []
    for membership in members:
        user = membership.user
        names = {user.email.split("@", 1)[0].lower()}
        if user.first_name:
            names.add(user.first_name.lower())
            names.add((user.first_name + user.last_name).replace(" ", "").lower())
        if names & handles and user.pk not in found:
            found.append(user.pk)
    return found


def note_add(*, conversation: Conversation, author: User | None, body: str) -> Note:
    text = clean_text(body).strip()
    if not text:
        raise TeamworkError("note_empty", "Write something first.")
    if len(text) > NOTE_MAX_LENGTH:
        raise TeamworkError("note_too_long", f"Notes are at most {NOTE_MAX_LENGTH} characters.")
    members = Membership.objects.select_related("user")
    with transaction.atomic():
        note = Note.objects.create(
            tenant_id=conversation.tenant_id,
            conversation=conversation,
            author=author,
            body=text,
            mentions=mentions_parse(text, members),
        )
        Conversation.objects.filter(pk=conversation.pk).update(updated_at=timezone.now())
        _audit(
            "note_add",
            actor=author,
            conversation_id=conversation.pk,
            note_id=note.pk,
            mentioned=note.mentions,
        )
    return note


# -- labels -----------------------------------------------------------------------------------


def _label_name(name: str) -> str:
    cleaned = " ".join(clean_text(name).split())
    if not cleaned:
        raise TeamworkError("label_empty", "Give the label a name.")
    if len(cleaned) > 40:
        raise TeamworkError("label_too_long", "Label names are at most 40 characters.")
    return cleaned


def label_create(*, tenant_id: int, name: str, color: str, actor: User | None) -> Label:
    if color not in Label.Color.values:
        color = Label.Color.BLUE
    try:
        with transaction.atomic():
            label = Label.objects.create(tenant_id=tenant_id, name=_label_name(name), color=color)
    except IntegrityError as exc:
        raise TeamworkError("label_exists", "A label with that name already exists.") from exc
    _audit("label_create", actor=actor, label_id=label.pk)
    return label


def label_update(*, label: Label, name: str, color: str, actor: User | None) -> Label:
    label.name = _label_name(name)
    if color in Label.Color.values:
        label.color = color
    try:
        with transaction.atomic():
            label.save(update_fields=["name", "color"])
    except IntegrityError as exc:
        raise TeamworkError("label_exists", "A label with that name already exists.") from exc
    _audit("label_update", actor=actor, label_id=label.pk)
    return label


def label_delete(*, label: Label, actor: User | None) -> None:
    with transaction.atomic():
        label_id = label.pk
        label.delete()
    _audit("label_delete", actor=actor, label_id=label_id)


def _lock(conversation: Conversation) -> Conversation:
    """The conversation's row, locked until the transaction ends (events follow its order)."""
    return Conversation.objects.select_for_update().get(pk=conversation.pk)


def _link(conversation: Conversation, label: Label, actor: User | None) -> bool:
    _, created = ConversationLabel.objects.get_or_create(
        conversation=conversation,
        label=label,
        defaults={"tenant_id": conversation.tenant_id, "added_by": actor},
    )
    if created:
        _audit("label_apply", actor=actor, conversation_id=conversation.pk, label_id=label.pk)
    return created


def _unlink(conversation: Conversation, label: Label, actor: User | None) -> bool:
    deleted, _ = ConversationLabel.objects.filter(conversation=conversation, label=label).delete()
    if deleted:
        _audit("label_remove", actor=actor, conversation_id=conversation.pk, label_id=label.pk)
    return bool(deleted)


def _labels_changed(conversation: Conversation) -> None:
    _touch(conversation)
    partner_events.conversation_updated(conversation=conversation, changes=["labels"])


def label_apply(*, conversation: Conversation, label: Label, actor: User | None) -> bool:
    """Put the label on the conversation; False if it was already there."""
    with transaction.atomic():
        locked = _lock(conversation)
        created = _link(locked, label, actor)
        if created:
            _labels_changed(locked)
    return created


def label_apply_by_name(*, conversation: Conversation, name: str, actor: User | None) -> Label:
    """Apply the workspace's label of that name, creating it when it is new."""
    cleaned = _label_name(name)
    with transaction.atomic():
        label = Label.objects.filter(name__iexact=cleaned).first()
        if label is None:
            label = label_create(
                tenant_id=conversation.tenant_id, name=cleaned, color=Label.Color.BLUE, actor=actor
            )
        label_apply(conversation=conversation, label=label, actor=actor)
    return label


def label_remove(*, conversation: Conversation, label: Label, actor: User | None) -> bool:
    with transaction.atomic():
        locked = _lock(conversation)
        deleted = _unlink(locked, label, actor)
        if deleted:
            _labels_changed(locked)
    return deleted


def conversation_labels_set(
    *, conversation: Conversation, names: Iterable[str], actor: User | None
) -> list[Label]:
    """Make the conversation carry exactly the labels named (creating new ones), by name in any
    case; one ``conversation.updated`` event when anything changed. The labels, by name."""
    wanted: dict[str, str] = {}
    for name in names:
        cleaned = _label_name(name)
        wanted.setdefault(cleaned.lower(), cleaned)
    with transaction.atomic():
        locked = _lock(conversation)
        existing = {label.name.lower(): label for label in Label.objects.all()}
        labels = []
        for key, cleaned in wanted.items():
            label = existing.get(key)
            if label is None:
                label = label_create(
                    tenant_id=locked.tenant_id, name=cleaned, color=Label.Color.BLUE, actor=actor
                )
            labels.append(label)
        keep = {label.pk for label in labels}
        changed = False
        for link in ConversationLabel.objects.filter(conversation=locked).select_related("label"):
            if link.label_id not in keep:
                changed |= _unlink(locked, link.label, actor)
        for label in labels:
            changed |= _link(locked, label, actor)
        if changed:
            _labels_changed(locked)
    return sorted(labels, key=lambda label: label.name.lower())


# -- canned replies ---------------------------------------------------------------------------


def _canned_fields(shortcut: str, body: str) -> tuple[str, str]:
    slug = clean_text(shortcut).strip().lstrip("/").lower()
    if not _SHORTCUT.match(slug):
        raise TeamworkError(
            "shortcut_invalid",
            "Use up to 40 lowercase letters, digits, dashes or underscores for the shortcut.",
        )
    text = clean_text(body).strip()
    if not text:
        raise TeamworkError("canned_empty", "Write the reply.")
    if len(text.encode()) > CANNED_MAX_LENGTH:
        raise TeamworkError(
            "canned_too_long", f"A reply is at most {CANNED_MAX_LENGTH} bytes, as on Instagram."
        )
    return slug, text


def canned_reply_create(
    *, tenant_id: int, shortcut: str, body: str, actor: User | None
) -> CannedReply:
    slug, text = _canned_fields(shortcut, body)
    try:
        with transaction.atomic():
            reply = CannedReply.objects.create(
                tenant_id=tenant_id, shortcut=slug, body=text, created_by=actor
            )
    except IntegrityError as exc:
        raise TeamworkError("shortcut_taken", f"/{slug} is already used.") from exc
    _audit("canned_create", actor=actor, canned_reply_id=reply.pk)
    return reply


def canned_reply_update(
    *, reply: CannedReply, shortcut: str, body: str, actor: User | None
) -> CannedReply:
    reply.shortcut, reply.body = _canned_fields(shortcut, body)
    try:
        with transaction.atomic():
            reply.save(update_fields=["shortcut", "body", "updated_at"])
    except IntegrityError as exc:
        raise TeamworkError("shortcut_taken", f"/{reply.shortcut} is already used.") from exc
    _audit("canned_update", actor=actor, canned_reply_id=reply.pk)
    return reply


def canned_reply_delete(*, reply: CannedReply, actor: User | None) -> None:
    reply_id = reply.pk
    with transaction.atomic():
        reply.delete()
    _audit("canned_delete", actor=actor, canned_reply_id=reply_id)
