"""Reads behind the agents' inbox: filtered and searched conversation lists, the filter counts,
team-work rows (labels, notes, canned replies), comments, and the cheap fingerprints that live
updates compare.

Always inside a tenant scope. ``visible_account_ids`` (from
``accounts.selectors.visible_account_ids``) narrows every read to the accounts a member may see,
counts included.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.contrib.postgres.search import SearchQuery, SearchVector
from django.core.cache import cache
from django.db.models import (
    Count,
    Exists,
    F,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
)
from django.db.models.functions import Coalesce

from accounts.models import Membership, Role
from config.input_guard import parse_digits
from messaging.models import (
    CannedReply,
    Comment,
    Conversation,
    ConversationLabel,
    Label,
    Message,
    Note,
    Reaction,
)
from messaging.selectors import LABELS_ATTR as LABELS_ATTR  # the inbox's names for them
from messaging.selectors import _labels_prefetch, _latest_message_prefetch
from messaging.selectors import conversation_labels as conversation_labels

SEARCH_CONFIG = "simple"
STORY_KINDS = (Message.Kind.STORY_MENTION, Message.Kind.STORY_REPLY)
COUNTS_TTL = 300  # seconds; a new fingerprint (any change) makes a new key anyway
BOXES = ("all", "mine", "unassigned")
STATUSES = ("open", "resolved")
MATCH_ATTR = "match_text"


@dataclass(frozen=True)
class InboxFilter:
    """What the conversation list shows: a box, a status and optional narrowing."""

    box: str = "all"
    status: str = "open"
    unread: bool = False
    story_mentions: bool = False
    account_id: int | None = None
    label_id: int | None = None
    query: str = ""

    @classmethod
    def from_params(cls, params: Any) -> InboxFilter:
        box = params.get("box", "all")
        status = params.get("status", "open")
        return cls(
            box=box if box in BOXES else "all",
            status=status if status in STATUSES else "open",
            unread=params.get("unread") == "1",
            story_mentions=params.get("kind") == "story_mentions",
            account_id=parse_digits(params.get("account")),
            label_id=parse_digits(params.get("label")),
            query=(params.get("q") or "").strip()[:200],
        )

    def params(self, **changes: Any) -> dict[str, str]:
        """Query parameters for this filter with ``changes`` applied (defaults left out)."""
        values = {
            "box": self.box,
            "status": self.status,
            "unread": self.unread,
            "kind": "story_mentions" if self.story_mentions else "",
            "account": self.account_id,
            "label": self.label_id,
            "q": self.query,
        }
        values.update(changes)
        out: dict[str, str] = {}
        for key, value in values.items():
            if key == "box" and value == "all":
                continue
            if key == "status" and value == "open":
                continue
            if value is True:
                out[key] = "1"
            elif value:
                out[key] = str(value)
        return out


def _story_messages() -> QuerySet[Message]:
    return Message.objects.filter(kind__in=STORY_KINDS, deleted_at__isnull=True)


def _base(visible_account_ids: Iterable[int] | None, account_id: int | None) -> QuerySet:
    qs = Conversation.objects.all()
    if visible_account_ids is not None:
        qs = qs.filter(account_id__in=visible_account_ids)
    if account_id is not None:
        qs = qs.filter(account_id=account_id)
    return qs


def _search(qs: QuerySet, query: str) -> QuerySet:
    """Contacts by name or username (full text and substring), and message text (full text).

    Unsent messages have no content left and are never matched.
    """
    search = SearchQuery(query, search_type="websearch", config=SEARCH_CONFIG)
    matching_messages = (
        Message.objects.filter(conversation=OuterRef("pk"), deleted_at__isnull=True)
        .annotate(document=SearchVector("text", config=SEARCH_CONFIG))
        .filter(document=search)
    )
    plain = query.lstrip("@")
    qs = qs.annotate(
        contact_document=SearchVector("contact__name", "contact__username", config=SEARCH_CONFIG),
        **{MATCH_ATTR: Subquery(matching_messages.order_by("-sent_at").values("text")[:1])},
    )
    return qs.filter(
        Q(contact_document=search)
        | Q(contact__username__icontains=plain)
        | Q(contact__name__icontains=plain)
        | Exists(matching_messages)
    )


def conversation_inbox_list(
    *,
    inbox_filter: InboxFilter,
    user_id: int | None,
    visible_account_ids: Iterable[int] | None,
) -> QuerySet[Conversation]:
    """Conversations for the list, newest activity first, with contact, account, assignee,
    latest message and labels (a fixed number of queries per page)."""
    f = inbox_filter
    qs = _base(visible_account_ids, f.account_id).select_related("contact", "account", "assignee")
    if not f.query:
        qs = qs.filter(status=f.status)
    if f.box == "mine":
        qs = qs.filter(assignee_id=user_id)
    elif f.box == "unassigned":
        qs = qs.filter(assignee__isnull=True)
    if f.unread:
        qs = qs.filter(unread_count__gt=0)
    if f.story_mentions:
        # A semi-join on the partially indexed story messages: a few rows, not a probe per
        # conversation.
        qs = qs.filter(pk__in=_story_messages().values("conversation_id"))
    if f.label_id is not None:
        qs = qs.filter(
            Exists(ConversationLabel.objects.filter(conversation=OuterRef("pk"), label=f.label_id))
        )
    if f.query:
        qs = _search(qs, f.query)
    # Ordered by the indexed column itself so a page is an index scan, not a sort of every
    # conversation; a conversation without any message has nothing to show yet.
    return (
        qs.filter(last_message_at__isnull=False)
        .annotate(sort_at=F("last_message_at"))
        .prefetch_related(_latest_message_prefetch(), _labels_prefetch())
        .order_by("-last_message_at", "-id")
    )


def _shared_counts(visible_account_ids: Iterable[int] | None, account_id: int | None) -> dict:  # type: ignore[type-arg]
    is_open = Q(status=Conversation.Status.OPEN)
    base = _base(visible_account_ids, account_id)
    counts = base.aggregate(
        all=Count("pk", filter=is_open),
        unassigned=Count("pk", filter=is_open & Q(assignee__isnull=True)),
        unread=Count("pk", filter=is_open & Q(unread_count__gt=0)),
        resolved=Count("pk", filter=Q(status=Conversation.Status.RESOLVED)),
        unread_messages=Coalesce(Sum("unread_count", filter=is_open), 0),
    )
    # Story mentions from the (partially indexed) story messages, not a subquery per row.
    counts["story_mentions"] = (
        _story_messages()
        .filter(conversation__in=base.filter(is_open).values("pk"))
        .values("conversation_id")
        .distinct()
        .count()
    )
    by_account = (
        _base(visible_account_ids, None)
        .filter(is_open, unread_count__gt=0)
        .values("account_id")
        .annotate(n=Count("pk"))
    )
    counts["by_account"] = {row["account_id"]: row["n"] for row in by_account}
    return counts


def inbox_counts(
    *,
    user_id: int | None,
    visible_account_ids: Iterable[int] | None,
    account_id: int | None = None,
    fingerprint: str = "",
) -> dict[str, Any]:
    """How many open conversations each filter holds, within the member's accounts, and the
    open conversations with unread messages per account (``by_account``).

    With the list ``fingerprint`` the workspace-wide part is cached until any conversation
    changes, so agents opening pages share one computation; "mine" is one indexed count.
    """
    ids = None if visible_account_ids is None else sorted(int(i) for i in visible_account_ids)
    counts = None
    key = ""
    if fingerprint:
        scope_key = "all" if ids is None else ",".join(map(str, ids))
        digest = hashlib.sha256(f"{scope_key}|{account_id}|{fingerprint}".encode()).hexdigest()
        key = f"inbox-counts:{digest}"
        counts = cache.get(key)
    if counts is None:
        counts = _shared_counts(ids, account_id)
        if key:
            cache.set(key, counts, COUNTS_TTL)
    mine = (
        _base(ids, account_id).filter(status=Conversation.Status.OPEN, assignee_id=user_id).count()
        if user_id is not None
        else 0
    )
    return {**counts, "mine": mine}


def conversation_neighbours(
    *, conversations: Sequence[Conversation], current_id: int
) -> tuple[int | None, int | None]:
    ids = [c.pk for c in conversations]
    if current_id not in ids:
        return (None, ids[0] if ids else None)
    at = ids.index(current_id)
    return (ids[at - 1] if at > 0 else None, ids[at + 1] if at + 1 < len(ids) else None)


def contact_past_conversations(*, conversation: Conversation) -> QuerySet[Conversation]:
    """The same person's conversations with the workspace's other accounts (by username)."""
    username = conversation.contact.username
    if not username:
        return Conversation.objects.none()
    from messaging.models import Contact

    same_person = Contact.objects.filter(username=username).values("pk")
    return (
        Conversation.objects.filter(contact__in=same_person)
        .exclude(pk=conversation.pk)
        .select_related("account")
        .order_by("-last_message_at")[:5]
    )


# -- team work ---------------------------------------------------------------------------------


def assignable_members() -> QuerySet[Membership]:
    """Members who may answer, by name."""
    return (
        Membership.objects.filter(role__in=[Role.OWNER, Role.ADMIN, Role.AGENT])
        .select_related("user")
        .order_by("user__first_name", "user__email")
    )


def label_list() -> QuerySet[Label]:
    return Label.objects.order_by("name")


def label_get(*, label_id: int) -> Label:
    return Label.objects.get(pk=label_id)


def note_list(*, conversation: Conversation) -> QuerySet[Note]:
    return (
        Note.objects.filter(conversation=conversation)
        .select_related("author")
        .order_by("created_at", "id")
    )


def canned_reply_list() -> QuerySet[CannedReply]:
    return CannedReply.objects.order_by("shortcut")


def canned_reply_get(*, reply_id: int) -> CannedReply:
    return CannedReply.objects.get(pk=reply_id)


# -- comments ----------------------------------------------------------------------------------


def comment_list(*, account_id: int | None = None, pending_only: bool = False) -> QuerySet[Comment]:
    """Comments, newest first: of one account, or (``None``) of every account."""
    qs = Comment.objects.select_related("private_reply")
    if account_id is not None:
        qs = qs.filter(account_id=account_id)
    if pending_only:
        qs = qs.filter(private_reply_at__isnull=True)
    return qs.order_by("-commented_at", "-id")


def comment_pending_reply_ids(comment_ids: Iterable[int]) -> set[int]:
    """Comments whose private reply is queued or on its way (not yet accepted by Meta)."""
    from messaging.models import OutboundJob

    return set(
        OutboundJob.objects.filter(
            comment_id__in=list(comment_ids),
            action=OutboundJob.Action.PRIVATE_REPLY,
            status__in=[*OutboundJob.ACTIVE, OutboundJob.Status.SENT],
        ).values_list("comment_id", flat=True)
    )


def comment_get(*, comment_id: int, visible_account_ids: Iterable[int] | None) -> Comment:
    qs = Comment.objects.select_related("account")
    if visible_account_ids is not None:
        qs = qs.filter(account_id__in=visible_account_ids)
    return qs.get(pk=comment_id)


def comments_by_media(comments: Sequence[Comment]) -> list[tuple[str, str, list[Comment]]]:
    """Comments grouped under their post: (media id, product type, comments)."""
    groups: dict[str, list[Comment]] = defaultdict(list)
    kinds: dict[str, str] = {}
    for comment in comments:
        groups[comment.media_id].append(comment)
        kinds.setdefault(comment.media_id, comment.media_product_type)
    return [(media, kinds[media], items) for media, items in groups.items()]


def message_page_before(
    *, conversation: Conversation, before_id: int, limit: int
) -> tuple[list[Message], bool]:
    """Up to ``limit`` messages just older than message ``before_id``, in reading order, with
    quotes and reactions, and whether older ones remain."""
    from messaging.selectors import message_page_attach

    anchor = Message.objects.filter(conversation=conversation, pk=before_id).first()
    if anchor is None:
        return [], False
    older = list(
        Message.objects.filter(conversation=conversation)
        .filter(Q(sent_at__lt=anchor.sent_at) | Q(sent_at=anchor.sent_at, pk__lt=anchor.pk))
        .select_related("sender_user")
        .order_by("-sent_at", "-id")[: limit + 1]
    )
    more = len(older) > limit
    page = older[:limit]
    page.reverse()
    message_page_attach(page)
    return page, more


# -- live updates ------------------------------------------------------------------------------


def list_fingerprint(*, visible_account_ids: Iterable[int] | None) -> str:
    """A value that changes whenever any visible conversation changes (every write to a
    conversation moves its ``updated_at``). One indexed query."""
    latest = _base(visible_account_ids, None).aggregate(latest=Max("updated_at"))["latest"]
    return latest.isoformat() if latest else "-"


def thread_fingerprint(
    *, conversation_id: int, visible_account_ids: Iterable[int] | None
) -> str | None:
    """A value that changes with the thread: new, edited, unsent or re-stated messages, new
    reactions, and the conversation itself (assignment, status, notes, labels, read receipts).
    ``None`` when the conversation is not visible. One query."""
    messages = Message.objects.filter(conversation=OuterRef("pk")).values("conversation")
    mids = Message.objects.filter(
        conversation=OuterRef(OuterRef("pk")), mid=OuterRef("message_mid")
    )
    reactions = (
        Reaction.objects.filter(account=OuterRef("account")).filter(Exists(mids)).values("account")
    )
    row = (
        _base(visible_account_ids, None)
        .filter(pk=conversation_id)
        .annotate(
            n=Subquery(messages.annotate(c=Count("pk")).values("c")[:1]),
            last_id=Subquery(messages.annotate(m=Max("pk")).values("m")[:1]),
            edits=Subquery(messages.annotate(m=Max("edited_at")).values("m")[:1]),
            unsent=Subquery(messages.annotate(m=Max("deleted_at")).values("m")[:1]),
            states=Subquery(
                messages.annotate(
                    s=Count("pk", filter=Q(status=Message.Status.SENT))
                    + 1000 * Count("pk", filter=Q(status=Message.Status.FAILED))
                ).values("s")[:1]
            ),
            reacted=Subquery(reactions.annotate(m=Max("reacted_at")).values("m")[:1]),
        )
        .values(
            "updated_at",
            "customer_read_up_to",
            "n",
            "last_id",
            "edits",
            "unsent",
            "states",
            "reacted",
        )
        .first()
    )
    if row is None:
        return None
    return "|".join(str(row[key]) for key in sorted(row))
