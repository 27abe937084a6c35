"""Every read in the messaging domain. Always inside a tenant scope.

A page of conversations or messages costs a fixed number of queries whatever its size: the
latest message of each conversation comes from one windowed prefetch, and the quoted messages
and reactions of a page of messages from one query each (``message_page_attach``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime

from django.db.models import Exists, F, OuterRef, Prefetch, QuerySet
from django.db.models.functions import Coalesce

from messaging.models import (
    BackfillJob,
    Contact,
    Conversation,
    ConversationLabel,
    Label,
    Message,
    Reaction,
)

# The attribute names a page of messages carries after ``message_page_attach``.
QUOTED_ATTR = "quoted_message"
REACTIONS_ATTR = "reaction_list"
LATEST_ATTR = "latest_messages"
LABELS_ATTR = "label_list"


def _latest_message_prefetch() -> Prefetch:  # type: ignore[type-arg]
    latest = Message.objects.order_by("-sent_at", "-id")[:1]
    return Prefetch("messages", queryset=latest, to_attr=LATEST_ATTR)


def _labels_prefetch() -> Prefetch:  # type: ignore[type-arg]
    return Prefetch(
        "label_links",
        queryset=ConversationLabel.objects.select_related("label").order_by("label__name"),
        to_attr=LABELS_ATTR,
    )


def conversation_labels(conversation: Conversation) -> list[Label]:
    """The conversation's labels by name, from the prefetch when the selector made one."""
    links = getattr(conversation, LABELS_ATTR, None)
    if links is None:
        links = list(
            ConversationLabel.objects.filter(conversation=conversation)
            .select_related("label")
            .order_by("label__name")
        )
    return [link.label for link in links]


def conversation_list(
    *,
    visible_account_ids: Iterable[int] | None = None,
    account_id: int | None = None,
    status: str | None = None,
    assignee_id: int | None = None,
    unassigned: bool = False,
    unread: bool | None = None,
    updated_since: datetime | None = None,
    label_id: int | None = None,
) -> QuerySet[Conversation]:
    """Conversations, most recent activity first (``sort_at``, then id), each with its contact,
    account, assignee, labels and latest message.

    ``visible_account_ids`` narrows to the accounts a member may see (a queryset of ids from
    ``accounts.selectors.visible_account_ids``); ``None`` means every account of the tenant.
    """
    qs = Conversation.objects.select_related("contact", "account", "assignee")
    if visible_account_ids is not None:
        qs = qs.filter(account_id__in=visible_account_ids)
    if account_id is not None:
        qs = qs.filter(account_id=account_id)
    if status:
        qs = qs.filter(status=status)
    if unassigned:
        qs = qs.filter(assignee__isnull=True)
    elif assignee_id is not None:
        qs = qs.filter(assignee_id=assignee_id)
    if unread is True:
        qs = qs.filter(unread_count__gt=0)
    elif unread is False:
        qs = qs.filter(unread_count=0)
    if updated_since is not None:
        qs = qs.filter(updated_at__gte=updated_since)
    if label_id is not None:
        qs = qs.filter(
            Exists(ConversationLabel.objects.filter(conversation=OuterRef("pk"), label=label_id))
        )
    return (
        qs.annotate(sort_at=Coalesce(F("last_message_at"), F("created_at")))
        .prefetch_related(_latest_message_prefetch(), _labels_prefetch())
        .order_by("-sort_at", "-id")
    )


def conversation_get(
    *, conversation_id: int, visible_account_ids: Iterable[int] | None = None
) -> Conversation:
    return conversation_list(visible_account_ids=visible_account_ids).get(pk=conversation_id)


def conversation_latest_message(conversation: Conversation) -> Message | None:
    """The conversation's latest message, from the prefetch when the selector made one."""
    latest = getattr(conversation, LATEST_ATTR, None)
    if latest is None:
        latest = list(conversation.messages.order_by("-sent_at", "-id")[:1])
    return latest[0] if latest else None


def message_list(*, conversation: Conversation) -> QuerySet[Message]:
    """A thread in reading order: Meta's timestamp, then arrival."""
    return (
        Message.objects.filter(conversation=conversation)
        .select_related("sender_user")
        .order_by("sent_at", "id")
    )


def message_page_attach(messages: Sequence[Message]) -> Sequence[Message]:
    """Give each message its quoted message (if stored) and its reactions: two queries."""
    if not messages:
        return messages
    account_ids = {m.account_id for m in messages}
    quoted_mids = {m.reply_to_mid for m in messages if m.reply_to_mid}
    own_mids = {m.mid for m in messages if m.mid}
    quoted: dict[tuple[int, str], Message] = {}
    if quoted_mids:
        for found in Message.objects.filter(account_id__in=account_ids, mid__in=quoted_mids):
            quoted[(found.account_id, found.mid)] = found
    reactions: dict[tuple[int, str], list[Reaction]] = defaultdict(list)
    if own_mids:
        for reaction in Reaction.objects.filter(
            account_id__in=account_ids, message_mid__in=own_mids, removed_at__isnull=True
        ).order_by("reacted_at", "id"):
            reactions[(reaction.account_id, reaction.message_mid)].append(reaction)
    for message in messages:
        setattr(
            message,
            QUOTED_ATTR,
            quoted.get((message.account_id, message.reply_to_mid))
            if message.reply_to_mid
            else None,
        )
        setattr(
            message,
            REACTIONS_ATTR,
            reactions.get((message.account_id, message.mid), []) if message.mid else [],
        )
    return messages


def contact_get(*, contact_id: int) -> Contact:
    return Contact.objects.select_related("account", "conversation").get(pk=contact_id)


def latest_messages_attach(conversations: Sequence[Conversation]) -> list[Message]:
    """Give the latest message of each conversation (from the list's prefetch) its quote and
    reactions, as a page of messages gets them: two queries for the whole page."""
    latest = [m for c in conversations if (m := conversation_latest_message(c)) is not None]
    message_page_attach(latest)
    return latest


def backfill_job_latest(*, account_id: int) -> BackfillJob | None:
    return BackfillJob.objects.filter(account_id=account_id).order_by("-created_at", "-id").first()


def backfill_job_latest_by_account(account_ids: Iterable[int]) -> dict[int, BackfillJob]:
    """The latest import of each account, in one query."""
    jobs: dict[int, BackfillJob] = {}
    for job in BackfillJob.objects.filter(account_id__in=list(account_ids)).order_by(
        "account_id", "-created_at", "-id"
    ):
        jobs.setdefault(job.account_id, job)
    return jobs


def message_list_latest(*, conversation: Conversation, limit: int = 200) -> list[Message]:
    """The newest ``limit`` messages of a thread, in reading order, with quotes and reactions."""
    newest = list(
        Message.objects.filter(conversation=conversation)
        .select_related("sender_user")
        .order_by("-sent_at", "-id")[:limit]
    )
    newest.reverse()
    message_page_attach(newest)
    return newest
