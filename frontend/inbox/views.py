"""The agents' inbox: conversation list, thread, contact panel, team work, comments, live updates.

The tenant scope is opened by the request middleware and every row comes from selectors that
are narrowed to the accounts the member may see, so another workspace's (or another account's)
conversation is simply not found (404). Every role reads; writing needs the REPLY capability
(viewers get 403). Pages work without JavaScript; htmx swaps fragments in place when present.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages as flash
from django.core.exceptions import ObjectDoesNotExist
from django.core.exceptions import PermissionDenied as Forbidden
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from accounts import selectors as accounts_selectors
from accounts.models import InstagramAccount, Membership
from accounts.roles import Capability, membership_can
from config.input_guard import parse_digits
from frontend.inbox import outbound_bridge as bridge
from frontend.views import member_required
from integrations.meta.client import INSTAGRAM_INBOX_APP_ID, PAGE_INBOX_APP_ID
from messaging import selectors, selectors_inbox
from messaging.models import BackfillJob, Conversation, Message
from messaging.selectors_inbox import InboxFilter
from messaging.services import handover, teamwork

PAGE_SIZE = 50
THREAD_LIMIT = 60  # the newest messages a thread opens with; older ones load on demand
TEXT_LIMIT_BYTES = 1000
STORY_LIFETIME = timedelta(hours=24)
PRIVATE_REPLY_WINDOW = timedelta(days=7)
INSTAGRAM_APPS = {"", INSTAGRAM_INBOX_APP_ID, PAGE_INBOX_APP_ID}


# -- what templates read -------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportStatus:
    """One account's history import, as the list header shows it."""

    account: InstagramAccount
    job: BackfillJob

    @property
    def summary(self) -> str:
        job = self.job
        done = job.conversations_done
        if job.status == BackfillJob.Status.FAILED:
            return f"History import failed: {job.error or 'unknown reason'}"
        if job.status == BackfillJob.Status.DONE:
            return f"History imported: {done} conversation{'s' if done != 1 else ''}"
        if job.status == BackfillJob.Status.QUEUED:
            return "History import: waiting to start"
        if job.conversations_estimate and job.conversations_estimate > done:
            return f"History import: {done} of ~{job.conversations_estimate} conversations"
        return f"History import: {done} conversations so far"


@dataclass(frozen=True)
class MessageView:
    """A message with what the template needs to know about it."""

    message: Message
    story_url: str
    story_expired: bool
    sender_label: str
    delivery: str  # "" | queued | sent | seen | failed
    day: str
    group: str  # how the template draws it: text, story, image, video, audio, file, share...

    @property
    def is_outbound(self) -> bool:
        return self.message.direction == Message.Direction.OUTBOUND


@dataclass(frozen=True)
class Row:
    """One line of the conversation list."""

    conversation: Conversation
    latest: Message | None
    labels: list[Any]
    window: str  # open | human_agent | closed
    window_text: str

    @property
    def contact(self) -> Any:
        return self.conversation.contact


def _delivery(message: Message, conversation: Conversation) -> str:
    if message.direction != Message.Direction.OUTBOUND or message.is_unsent:
        return ""
    if message.status == Message.Status.FAILED:
        return "failed"
    if message.status in (Message.Status.QUEUED, Message.Status.SENDING):
        return "queued"
    read_up_to = conversation.customer_read_up_to
    if read_up_to is not None and message.sent_at <= read_up_to:
        return "seen"
    return "sent"


def _day(moment: datetime, now: datetime) -> str:
    local, today = timezone.localtime(moment).date(), timezone.localtime(now).date()
    if local == today:
        return "Today"
    if (today - local).days == 1:
        return "Yesterday"
    if (today - local).days < 7:
        return local.strftime("%A")
    return local.strftime("%b %-d, %Y")


_GROUPS: dict[str, str] = {
    Message.Kind.TEXT: "text",
    Message.Kind.STORY_MENTION: "story",
    Message.Kind.STORY_REPLY: "story",
    Message.Kind.IMAGE: "image",
    Message.Kind.STICKER: "image",
    Message.Kind.VIDEO: "video",
    Message.Kind.AUDIO: "audio",
    Message.Kind.FILE: "file",
    Message.Kind.POST_SHARE: "share",
    Message.Kind.REEL_SHARE: "share",
    Message.Kind.STORY_SHARE: "share",
    Message.Kind.POSTBACK: "postback",
    Message.Kind.REFERRAL: "referral",
    Message.Kind.TEMPLATE: "template",
    Message.Kind.UNSUPPORTED: "unsupported",
    Message.Kind.UNKNOWN: "unsupported",
}


def _message_view(message: Message, conversation: Conversation, now: datetime) -> MessageView:
    story_url = ""
    if message.kind == Message.Kind.STORY_MENTION and message.attachments:
        story_url = str(message.attachments[0].get("url") or "")
    elif message.reply_to_story:
        story_url = str(message.reply_to_story.get("url") or "")
    label = ""
    if message.direction == Message.Direction.OUTBOUND:
        if message.sender_kind == Message.SenderKind.EXTERNAL:
            label = (
                "Sent from the Instagram app"
                if message.app_id in INSTAGRAM_APPS
                else "Sent by another app"
            )
        elif message.sender_user is not None:
            label = message.sender_user.display_name
        elif message.sender_kind == Message.SenderKind.AUTOMATION:
            label = f"Automation · {message.sender_label}" if message.sender_label else "Automation"
        elif message.sender_kind == Message.SenderKind.PARTNER:
            label = f"Partner · {message.sender_label}" if message.sender_label else "Partner app"
        else:
            label = message.sender_label or message.get_sender_kind_display()
    return MessageView(
        message=message,
        story_url=story_url,
        story_expired=now - message.sent_at > STORY_LIFETIME,
        sender_label=label,
        delivery=_delivery(message, conversation),
        day=_day(message.sent_at, now),
        group="unsent" if message.is_unsent else _GROUPS.get(message.kind, "text"),
    )


def _window_word(conversation: Conversation, now: datetime) -> tuple[str, str]:
    """The list's short word for the reply window: ("open", "23h left") and so on."""
    closes = conversation.window_closes_at
    human = conversation.human_agent_window_closes_at
    if conversation.owned_by_other_app:
        return "closed", "Other app"
    if closes is not None and now < closes:
        left = closes - now
        hours = int(left.total_seconds() // 3600)
        return "open", f"{hours}h left" if hours else f"{int(left.total_seconds() // 60)}m left"
    if human is not None and now < human:
        return "human_agent", f"Agent only · {(human - now).days or 1}d"
    return "closed", "Closed"


# -- request helpers ----------------------------------------------------------------------------


def _membership(request: HttpRequest) -> Membership:
    membership: Membership | None = getattr(request, "membership", None)
    if membership is None:  # member_required makes this unreachable
        raise Forbidden
    return membership


def _visible(request: HttpRequest) -> list[int]:
    """Ids of the accounts the member may see, as a list: the planner then picks the same
    index paths for every member (a subquery here turns page queries into scans)."""
    cached: list[int] | None = getattr(request, "_inbox_visible", None)
    if cached is None:
        cached = list(accounts_selectors.visible_account_ids(_membership(request)))
        request._inbox_visible = cached  # type: ignore[attr-defined]
    return cached


def _can_reply(request: HttpRequest) -> bool:
    return membership_can(_membership(request), Capability.REPLY)


def _require_reply(request: HttpRequest) -> None:
    if not _can_reply(request):
        raise Forbidden


def _conversation(request: HttpRequest, conversation_id: int) -> Conversation:
    try:
        return selectors.conversation_get(
            conversation_id=conversation_id, visible_account_ids=_visible(request)
        )
    except ObjectDoesNotExist as exc:
        raise Http404("No such conversation.") from exc


def _list_url(inbox_filter: InboxFilter, **changes: Any) -> str:
    query = urlencode(inbox_filter.params(**changes))
    return reverse("inbox:conversation_list") + (f"?{query}" if query else "")


def _rows(
    request: HttpRequest, inbox_filter: InboxFilter, before: str | None = None
) -> tuple[list[Row], str]:
    """A page of list rows and the cursor of the next page ("" when this is the last)."""
    qs = selectors_inbox.conversation_inbox_list(
        inbox_filter=inbox_filter, user_id=request.user.pk, visible_account_ids=_visible(request)
    )
    if before:
        moment, _, last_id = before.rpartition("_")
        at, last_pk = parse_datetime(moment), parse_digits(last_id)
        if at is not None and last_pk is not None:
            qs = qs.filter(Q(sort_at__lt=at) | Q(sort_at=at, pk__lt=last_pk))
    page = list(qs[: PAGE_SIZE + 1])
    more = len(page) > PAGE_SIZE
    page = page[:PAGE_SIZE]
    now = timezone.now()
    rows = [
        Row(
            conversation=c,
            latest=selectors.conversation_latest_message(c),
            labels=selectors_inbox.conversation_labels(c),
            window=window[0],
            window_text=window[1],
        )
        for c, window in ((c, _window_word(c, now)) for c in page)
    ]
    cursor = ""
    if more and page:
        last = page[-1]
        cursor = f"{last.sort_at.isoformat()}_{last.pk}"  # type: ignore[attr-defined]
    return rows, cursor


def _shell_context(
    request: HttpRequest, inbox_filter: InboxFilter, list_token: str = ""
) -> dict[str, Any]:
    """The left column: accounts with health and unread counts, filters with counts.

    ``list_token`` (the list fingerprint taken before anything is read) lets the counts come
    from the cache until a conversation changes.
    """
    membership = _membership(request)
    accounts = list(accounts_selectors.instagram_account_list(membership=membership))
    visible = [a.pk for a in accounts]
    if not list_token:
        list_token = selectors_inbox.list_fingerprint(visible_account_ids=visible)
    counts = selectors_inbox.inbox_counts(
        user_id=request.user.pk,
        visible_account_ids=visible,
        account_id=inbox_filter.account_id,
        fingerprint=list_token,
    )
    unread_by_account = counts["by_account"]
    unread_total = counts["unread_messages"]
    if inbox_filter.account_id is not None:
        unread_total = selectors_inbox.inbox_counts(
            user_id=None, visible_account_ids=visible, fingerprint=list_token
        )["unread_messages"]
    selected = next((a for a in accounts if a.pk == inbox_filter.account_id), None)
    f = inbox_filter
    filters = [
        (
            "mine",
            "Assigned to me",
            _list_url(f, box="mine", status="open", unread=False, kind=""),
            counts["mine"],
            f.box == "mine" and f.status == "open" and not f.unread and not f.story_mentions,
        ),
        (
            "unassigned",
            "Unassigned",
            _list_url(f, box="unassigned", status="open", unread=False, kind=""),
            counts["unassigned"],
            f.box == "unassigned" and f.status == "open" and not f.unread and not f.story_mentions,
        ),
        (
            "all",
            "All open",
            _list_url(f, box="all", status="open", unread=False, kind=""),
            counts["all"],
            f.box == "all" and f.status == "open" and not f.unread and not f.story_mentions,
        ),
        (
            "unread",
            "Unread",
            _list_url(f, box="all", status="open", unread=True, kind=""),
            counts["unread"],
            f.unread,
        ),
        (
            "story",
            "Story mentions",
            _list_url(f, box="all", status="open", unread=False, kind="story_mentions"),
            counts["story_mentions"],
            f.story_mentions,
        ),
        (
            "resolved",
            "Resolved",
            _list_url(f, box="all", status="resolved", unread=False, kind=""),
            counts["resolved"],
            f.status == "resolved" and not f.unread and not f.story_mentions,
        ),
    ]
    return {
        "section": "inbox",
        "list_token": list_token,
        "unread_total": unread_total,
        "accounts": accounts,
        "selected_account": selected,
        "unread_by_account": unread_by_account,
        "account_links": [
            (a, _list_url(f, account=a.pk), unread_by_account.get(a.pk, 0)) for a in accounts
        ],
        "all_accounts_url": _list_url(f, account=None),
        "filters": filters,
        "counts": counts,
        "inbox_filter": f,
        "filter_query": urlencode(f.params()),
        "can_reply": membership_can(membership, Capability.REPLY),
        "labels": list(selectors_inbox.label_list()),
    }


def _list_context(
    request: HttpRequest, inbox_filter: InboxFilter, current_id: int | None
) -> dict[str, Any]:
    rows, cursor = _rows(request, inbox_filter, request.GET.get("before"))
    query = inbox_filter.params()
    next_url = ""
    if cursor:
        next_url = reverse("inbox:list_fragment") + "?" + urlencode({**query, "before": cursor})
        if current_id:
            next_url += f"&current={current_id}"
    return {
        "rows": rows,
        "current_id": current_id,
        "next_url": next_url,
        "inbox_filter": inbox_filter,
        "filter_query": urlencode(query),
        "is_more": bool(request.GET.get("before")),
    }


def _thread_context(request: HttpRequest, conversation: Conversation) -> dict[str, Any]:
    now = timezone.now()
    messages = selectors.message_list_latest(conversation=conversation, limit=THREAD_LIMIT + 1)
    truncated = len(messages) > THREAD_LIMIT
    messages = messages[-THREAD_LIMIT:]
    items = [_message_view(m, conversation, now) for m in messages]
    window = bridge.window_for(conversation, now)
    assignee_membership_id = None
    members = list(selectors_inbox.assignable_members())
    names = {}
    for member in members:
        names[member.user_id] = member.user.display_name
        if member.user_id == conversation.assignee_id:
            assignee_membership_id = member.pk
    notes = list(selectors_inbox.note_list(conversation=conversation))
    for note in notes:
        note.mentioned_names = [names[pk] for pk in note.mentions if pk in names]  # type: ignore[attr-defined]
    return {
        "conversation": conversation,
        "contact": conversation.contact,
        "items": items,
        "truncated": truncated,
        "earlier_url": (
            reverse("inbox:earlier", args=[conversation.pk]) + f"?before={messages[0].pk}"
            if truncated and messages
            else ""
        ),
        "window": window,
        "members": members,
        "assignee_membership_id": assignee_membership_id,
        "me_membership_id": _membership(request).pk,
        "notes": notes,
        "conversation_labels": selectors_inbox.conversation_labels(conversation),
        "past_conversations": list(
            selectors_inbox.contact_past_conversations(conversation=conversation)
        ),
        "can_reply": _can_reply(request),
        "can_retry": bridge.can_retry(),
        "text_limit": TEXT_LIMIT_BYTES,
    }


def _tokens(request: HttpRequest, conversation_id: int | None) -> dict[str, str]:
    """The live-update fingerprints, taken before the page reads anything, so a change made
    while it renders is still noticed by the next poll."""
    visible = _visible(request)
    list_token = selectors_inbox.list_fingerprint(visible_account_ids=visible)
    thread_token = ""
    if conversation_id is not None:
        thread_token = (
            selectors_inbox.thread_fingerprint(
                conversation_id=conversation_id, visible_account_ids=visible
            )
            or ""
        )
    return {"list_token": list_token, "thread_token": thread_token}


def _canned() -> list[dict[str, str]]:
    return [{"shortcut": r.shortcut, "body": r.body} for r in selectors_inbox.canned_reply_list()]


def _imports(accounts: list[InstagramAccount], selected: InstagramAccount | None) -> list[Any]:
    jobs = selectors.backfill_job_latest_by_account(
        [selected.pk] if selected else [a.pk for a in accounts]
    )
    by_id = {a.pk: a for a in accounts}
    return [
        ImportStatus(account=by_id[pk], job=job)
        for pk, job in jobs.items()
        if pk in by_id and job.status != BackfillJob.Status.DONE
    ]


# -- pages ---------------------------------------------------------------------------------------


@require_GET
@member_required()
def conversation_list(request: HttpRequest) -> HttpResponse:
    inbox_filter = InboxFilter.from_params(request.GET)
    tokens = _tokens(request, None)
    context = _shell_context(request, inbox_filter, tokens["list_token"])
    context.update(tokens)
    context.update(_list_context(request, inbox_filter, None))
    context["imports"] = _imports(context["accounts"], context["selected_account"])
    context["canned"] = []
    return render(request, "inbox/inbox.html", context)


@require_GET
@member_required()
def conversation_detail(request: HttpRequest, conversation_id: int) -> HttpResponse:
    conversation = _conversation(request, conversation_id)
    if _can_reply(request):
        teamwork.conversation_mark_seen(conversation=conversation, actor=request.user)  # type: ignore[arg-type]
    inbox_filter = InboxFilter.from_params(request.GET)
    tokens = _tokens(request, conversation.pk)
    context = _shell_context(request, inbox_filter, tokens["list_token"])
    context.update(tokens)
    context.update(_list_context(request, inbox_filter, conversation.pk))
    context.update(_thread_context(request, conversation))
    context["imports"] = []
    context["canned"] = _canned() if context["can_reply"] else []
    return render(request, "inbox/inbox.html", context)


# -- fragments for htmx and live updates ---------------------------------------------------------


@require_GET
@member_required()
def list_fragment(request: HttpRequest) -> HttpResponse:
    inbox_filter = InboxFilter.from_params(request.GET)
    context = _list_context(request, inbox_filter, parse_digits(request.GET.get("current")))
    if not context["is_more"]:
        context.update(_shell_context(request, inbox_filter))
        context["oob_filters"] = True
    return render(request, "inbox/_list.html", context)


def _thread_parts(request: HttpRequest, conversation: Conversation, **extra: Any) -> HttpResponse:
    context = _thread_context(request, conversation)
    context["labels"] = list(selectors_inbox.label_list())
    context.update(extra)
    response = render(request, "inbox/_thread_parts.html", context)
    triggers = extra.get("triggers")
    if triggers:
        response["HX-Trigger"] = json.dumps(triggers)
    return response


@require_GET
@member_required()
def thread_fragment(request: HttpRequest, conversation_id: int) -> HttpResponse:
    conversation = _conversation(request, conversation_id)
    if _can_reply(request) and conversation.unread_count:
        teamwork.conversation_mark_seen(conversation=conversation, actor=request.user)  # type: ignore[arg-type]
    return _thread_parts(request, conversation)


@require_GET
@member_required()
def earlier(request: HttpRequest, conversation_id: int) -> HttpResponse:
    """Older messages of a thread, put above the ones shown ("Show earlier messages")."""
    conversation = _conversation(request, conversation_id)
    before = parse_digits(request.GET.get("before"))
    if before is None:
        return HttpResponse("")  # nothing named: nothing earlier to show
    page, more = selectors_inbox.message_page_before(
        conversation=conversation, before_id=before, limit=THREAD_LIMIT
    )
    now = timezone.now()
    context = {
        "items": [_message_view(m, conversation, now) for m in page],
        "truncated": more,
        "earlier_url": (
            reverse("inbox:earlier", args=[conversation.pk]) + f"?before={page[0].pk}"
            if more and page
            else ""
        ),
        "conversation": conversation,
        "can_reply": _can_reply(request),
        "can_retry": bridge.can_retry(),
    }
    return render(request, "inbox/_messages.html", context)


@never_cache
@require_GET
@member_required()
def poll(request: HttpRequest) -> JsonResponse:
    """Cheap fingerprints the page compares every second or two; it fetches what changed."""
    visible = _visible(request)
    list_token = selectors_inbox.list_fingerprint(visible_account_ids=visible)
    unread = selectors_inbox.inbox_counts(
        user_id=None, visible_account_ids=visible, fingerprint=list_token
    )["unread_messages"]
    body: dict[str, Any] = {"list": list_token, "unread": unread}
    conversation_id = parse_digits(request.GET.get("conversation"))
    if conversation_id is not None:
        body["thread"] = selectors_inbox.thread_fingerprint(
            conversation_id=conversation_id, visible_account_ids=visible
        )
    return JsonResponse(body)


# -- team work -----------------------------------------------------------------------------------


def _done(request: HttpRequest, conversation: Conversation, **extra: Any) -> HttpResponse:
    """htmx: the refreshed thread parts; a plain form post: back to the thread."""
    if request.htmx:  # type: ignore[attr-defined]
        return _thread_parts(request, conversation, **extra)
    if extra.get("error"):
        flash.error(request, extra["error"])
    return redirect("inbox:conversation_detail", conversation_id=conversation.pk)


@require_POST
@member_required()
def assign(request: HttpRequest, conversation_id: int) -> HttpResponse:
    _require_reply(request)
    conversation = _conversation(request, conversation_id)
    choice = request.POST.get("member", "")
    member_id = parse_digits(choice)
    assignee: Membership | None
    if choice == "me":
        assignee = _membership(request)
    elif member_id is not None:
        try:
            assignee = accounts_selectors.membership_get(membership_id=member_id)
        except ObjectDoesNotExist as exc:
            raise Http404 from exc
    else:
        assignee = None
    try:
        conversation = teamwork.conversation_assign(
            conversation=conversation,
            assignee=assignee,
            actor=request.user,  # type: ignore[arg-type]
        )
    except teamwork.TeamworkError as exc:
        return _done(request, _conversation(request, conversation_id), error=exc.message)
    return _done(request, _conversation(request, conversation.pk), triggers={"inbox:changed": 1})


@require_POST
@member_required()
def set_mode(request: HttpRequest, conversation_id: int) -> HttpResponse:
    """Take a conversation over from automation, or hand it back."""
    _require_reply(request)
    conversation = _conversation(request, conversation_id)
    mode = request.POST.get("mode", "")
    if mode not in Conversation.Mode.values:
        return _done(request, conversation, error="Choose automation or human.")
    handover.conversation_mode_set(
        conversation=conversation,
        mode=mode,
        actor=request.user,  # type: ignore[arg-type]
        reason="manual",
    )
    return _done(request, _conversation(request, conversation_id), triggers={"inbox:changed": 1})


@require_POST
@member_required()
def set_status(request: HttpRequest, conversation_id: int) -> HttpResponse:
    _require_reply(request)
    conversation = _conversation(request, conversation_id)
    if request.POST.get("status") == "resolved":
        teamwork.conversation_resolve(conversation=conversation, actor=request.user)  # type: ignore[arg-type]
    else:
        teamwork.conversation_reopen(conversation=conversation, actor=request.user)  # type: ignore[arg-type]
    return _done(request, _conversation(request, conversation_id), triggers={"inbox:changed": 1})


@require_POST
@member_required()
def note_add(request: HttpRequest, conversation_id: int) -> HttpResponse:
    _require_reply(request)
    conversation = _conversation(request, conversation_id)
    try:
        teamwork.note_add(
            conversation=conversation,
            author=request.user,  # type: ignore[arg-type]
            body=request.POST.get("body", ""),
        )
    except teamwork.TeamworkError as exc:
        return _done(request, conversation, error=exc.message, error_target="note")
    return _done(request, _conversation(request, conversation_id), triggers={"inbox:noted": 1})


@require_POST
@member_required()
def label_apply(request: HttpRequest, conversation_id: int) -> HttpResponse:
    _require_reply(request)
    conversation = _conversation(request, conversation_id)
    label_id = parse_digits(request.POST.get("label"))
    try:
        if label_id is not None:
            label = _found_label(label_id)
            teamwork.label_apply(conversation=conversation, label=label, actor=request.user)  # type: ignore[arg-type]
        else:
            teamwork.label_apply_by_name(
                conversation=conversation,
                name=request.POST.get("name", ""),
                actor=request.user,  # type: ignore[arg-type]
            )
    except teamwork.TeamworkError as exc:
        return _done(request, conversation, error=exc.message, error_target="label")
    return _done(request, _conversation(request, conversation_id), triggers={"inbox:changed": 1})


@require_POST
@member_required()
def label_remove(request: HttpRequest, conversation_id: int, label_id: int) -> HttpResponse:
    _require_reply(request)
    conversation = _conversation(request, conversation_id)
    teamwork.label_remove(
        conversation=conversation,
        label=_found_label(label_id),
        actor=request.user,  # type: ignore[arg-type]
    )
    return _done(request, _conversation(request, conversation_id), triggers={"inbox:changed": 1})


def _found_label(label_id: int) -> Any:
    try:
        return selectors_inbox.label_get(label_id=label_id)
    except ObjectDoesNotExist as exc:
        raise Http404 from exc


# -- sending -------------------------------------------------------------------------------------


def _content(request: HttpRequest) -> tuple[dict[str, Any], str]:
    """The composer's fields, or a reason they can't be sent."""
    text = request.POST.get("text", "").replace("\r\n", "\n").strip()
    url = request.POST.get("attachment_url", "").strip()
    kind = request.POST.get("attachment_type", "image")
    if kind not in ("image", "video", "audio", "file"):
        kind = "image"
    if not text and not url:
        return {}, "Write a message or add an attachment."
    if len(text.encode()) > TEXT_LIMIT_BYTES:
        return {}, f"Instagram accepts at most {TEXT_LIMIT_BYTES} bytes in one message."
    if url and not url.lower().startswith("https://"):
        return {}, "Attachments must be a public https:// link."
    replies = [r.strip() for r in request.POST.get("quick_replies", "").split("|") if r.strip()]
    return {
        "text": text,
        "attachment": {"type": kind, "url": url} if url else None,
        "quick_replies": replies if text else [],
    }, ""


def _refusal(exc: BaseException) -> str:
    return str(getattr(exc, "message", "") or exc)


@require_POST
@member_required()
def send(request: HttpRequest, conversation_id: int) -> HttpResponse:
    _require_reply(request)
    conversation = _conversation(request, conversation_id)
    content, problem = _content(request)
    if problem:
        return _done(request, conversation, error=problem, error_target="composer")
    key = (request.POST.get("idempotency_key") or uuid.uuid4().hex)[:100]
    try:
        bridge.send(conversation=conversation, user=request.user, idempotency_key=key, **content)
    except bridge.SendUnavailable as exc:
        return _done(request, conversation, error=str(exc), error_target="composer")
    except bridge.refusal_types() as exc:
        return _done(
            request,
            _conversation(request, conversation_id),
            error=_refusal(exc),
            error_target="composer",
            triggers={"inbox:send-refused": {"code": str(getattr(exc, "code", ""))}},
        )
    return _done(
        request,
        _conversation(request, conversation_id),
        triggers={"inbox:sent": 1, "inbox:changed": 1},
    )


@require_POST
@member_required()
def retry(request: HttpRequest, conversation_id: int, message_id: int) -> HttpResponse:
    _require_reply(request)
    conversation = _conversation(request, conversation_id)
    message = selectors.message_list(conversation=conversation).filter(pk=message_id).first()
    if message is None:
        raise Http404
    if message.status != Message.Status.FAILED:
        return _done(request, conversation)  # already on its way or sent: nothing to retry
    try:
        bridge.retry(message=message)
    except bridge.SendUnavailable as exc:
        return _done(request, conversation, error=str(exc), error_target="composer")
    except bridge.refusal_types() as exc:
        return _done(request, conversation, error=_refusal(exc), error_target="composer")
    return _done(request, _conversation(request, conversation_id), triggers={"inbox:changed": 1})


# -- comments ------------------------------------------------------------------------------------


def _account(request: HttpRequest, account_id: int) -> InstagramAccount:
    try:
        return accounts_selectors.instagram_account_get(
            account_id=account_id, membership=_membership(request)
        )
    except ObjectDoesNotExist as exc:
        raise Http404 from exc


@require_GET
@member_required()
def comments(request: HttpRequest, account_id: int) -> HttpResponse:
    account = _account(request, account_id)
    inbox_filter = InboxFilter(account_id=account.pk)
    pending = request.GET.get("show") != "all"
    items = list(selectors_inbox.comment_list(account_id=account.pk, pending_only=pending)[:200])
    now = timezone.now()
    context = _shell_context(request, inbox_filter)
    context.update(
        {
            "account": account,
            "groups": selectors_inbox.comments_by_media(items),
            "pending_reply_ids": selectors_inbox.comment_pending_reply_ids(c.pk for c in items),
            "pending": pending,
            "now": now,
            "reply_deadline": now - PRIVATE_REPLY_WINDOW,
            "comments_page": True,
        }
    )
    return render(request, "inbox/comments.html", context)


@require_POST
@member_required()
def private_reply(request: HttpRequest, comment_id: int) -> HttpResponse:
    _require_reply(request)
    try:
        comment = selectors_inbox.comment_get(
            comment_id=comment_id, visible_account_ids=_visible(request)
        )
    except ObjectDoesNotExist as exc:
        raise Http404 from exc
    back = reverse("inbox:comments", args=[comment.account_id])
    text = request.POST.get("text", "").strip()
    problem = ""
    if comment.private_reply_at is not None:
        problem = "This comment already has its private reply: Instagram allows one."
    elif timezone.now() - comment.commented_at > PRIVATE_REPLY_WINDOW:
        problem = "Private replies are possible within 7 days of the comment."
    elif not text:
        problem = "Write the reply first."
    elif len(text.encode()) > TEXT_LIMIT_BYTES:
        problem = f"Instagram accepts at most {TEXT_LIMIT_BYTES} bytes in one message."
    if not problem:
        try:
            bridge.private_reply(comment=comment, user=request.user, text=text)
        except bridge.SendUnavailable as exc:
            problem = str(exc)
        except bridge.refusal_types() as exc:
            problem = _refusal(exc)
    if problem:
        flash.error(request, problem)
    else:
        flash.success(request, f"Private reply sent to @{comment.from_username or 'the customer'}.")
    return redirect(back + f"#comment-{comment.pk}")
