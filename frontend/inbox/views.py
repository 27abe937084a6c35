"""Inbox pages: the workspace's conversations and one thread, read-only.

The tenant scope is opened by the request middleware; every row comes from selectors, so a
conversation of another workspace is simply not found (404). Every role may read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.exceptions import ObjectDoesNotExist
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from accounts import selectors as accounts_selectors
from accounts.models import InstagramAccount
from frontend.views import member_required
from integrations.meta.client import INSTAGRAM_INBOX_APP_ID, PAGE_INBOX_APP_ID
from messaging import selectors
from messaging.models import BackfillJob, Message

PAGE_SIZE = 50
THREAD_LIMIT = 200
STORY_LIFETIME = timedelta(hours=24)
INSTAGRAM_APPS = {"", INSTAGRAM_INBOX_APP_ID, PAGE_INBOX_APP_ID}


@dataclass(frozen=True)
class ImportStatus:
    """One account's history import, as the list page header shows it."""

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

    @property
    def is_outbound(self) -> bool:
        return self.message.direction == Message.Direction.OUTBOUND


def _message_view(message: Message, now: datetime) -> MessageView:
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
        else:
            label = message.sender_label or message.get_sender_kind_display()
    return MessageView(
        message=message,
        story_url=story_url,
        story_expired=now - message.sent_at > STORY_LIFETIME,
        sender_label=label,
    )


@require_GET
@member_required()
def conversation_list(request: HttpRequest) -> HttpResponse:
    membership = getattr(request, "membership", None)
    accounts = list(accounts_selectors.instagram_account_list(membership=membership))
    account_id = request.GET.get("account", "")
    selected = next((a for a in accounts if str(a.pk) == account_id), None)
    conversations = selectors.conversation_list(
        visible_account_ids=[a.pk for a in accounts],
        account_id=selected.pk if selected else None,
    )
    page = Paginator(conversations, PAGE_SIZE).get_page(request.GET.get("page"))
    jobs = selectors.backfill_job_latest_by_account(
        [selected.pk] if selected else [a.pk for a in accounts]
    )
    by_id = {a.pk: a for a in accounts}
    imports = [ImportStatus(account=by_id[pk], job=job) for pk, job in jobs.items() if pk in by_id]
    context = {
        "section": "inbox",
        "accounts": accounts,
        "selected_account": selected,
        "page": page,
        "conversations": [(c, selectors.conversation_latest_message(c)) for c in page.object_list],
        "imports": imports,
    }
    return render(request, "inbox/conversation_list.html", context)


@require_GET
@member_required()
def conversation_detail(request: HttpRequest, conversation_id: int) -> HttpResponse:
    membership = getattr(request, "membership", None)
    try:
        conversation = selectors.conversation_get(
            conversation_id=conversation_id,
            visible_account_ids=accounts_selectors.visible_account_ids(membership),
        )
    except ObjectDoesNotExist as exc:
        raise Http404("No such conversation.") from exc
    now = timezone.now()
    messages = selectors.message_list_latest(conversation=conversation, limit=THREAD_LIMIT)
    context = {
        "section": "inbox",
        "conversation": conversation,
        "contact": conversation.contact,
        "items": [_message_view(m, now) for m in messages],
        "truncated": len(messages) >= THREAD_LIMIT,
        "window_open": conversation.window_closes_at is not None
        and conversation.window_closes_at > now,
    }
    return render(request, "inbox/conversation_detail.html", context)
