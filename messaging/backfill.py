"""History import: an account's conversations and recent messages, read through Meta's
Conversations API and stored as if they had arrived by webhook.

- One call per page of conversations brings each thread's participants and its 20 newest
  messages in detail (Meta shows no more than that for older messages).
- Each page is written in one transaction together with the job's cursor and counts, so a run
  stopped anywhere (rate limit, crash, deploy) resumes at the first page not yet stored, and a
  page read twice stores nothing twice: a message is unique per account and Meta id, and a
  message already stored (by a webhook or an earlier import) is left as it is.
- Calls are spaced to stay within the Conversations API's 2 calls per second per account; when
  Meta still says "slow down", the run stops and the task is scheduled again after Meta's wait.
- A run stops after a time budget and the task continues in a fresh run, so no run gets near
  the worker's time limit.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import InstagramAccount
from integrations.meta.client import MESSAGE_FIELDS, AccountClient, client_from_settings
from integrations.meta.errors import (
    MetaAuthError,
    MetaError,
    MetaRateLimitError,
    MetaTransientError,
    Reason,
)
from integrations.meta.models import Conversation as MetaConversation
from integrations.meta.models import ConversationMessage, Paged, Participant
from messaging.models import BackfillJob, Contact, Conversation, Message, WindowOpener

logger = logging.getLogger(__name__)

# Meta reads only the newest 20 messages of a thread in detail.
MESSAGE_DETAIL_LIMIT = 20
NOT_AVAILABLE = "messaging not available for this account yet"
DEFAULT_RETRY_SECONDS = 60.0
TRANSIENT_RETRY_SECONDS = 30.0


def _setting(name: str, default: Any) -> Any:
    return getattr(settings, name, default)


def conversation_fields(detail_limit: int = MESSAGE_DETAIL_LIMIT) -> str:
    return f"id,updated_time,participants,messages.limit({detail_limit}){{{MESSAGE_FIELDS}}}"


@dataclass(frozen=True)
class RunOutcome:
    """How a run ended. ``again`` and ``throttled`` ask for another run after ``countdown``."""

    state: Literal["done", "failed", "again", "throttled", "transient", "busy", "idle"]
    countdown: float = 0.0
    job_id: int | None = None


# -- the job -----------------------------------------------------------------------------------


def backfill_job_start(*, account: InstagramAccount) -> BackfillJob:
    """Queue an import of the account's history (or return the one already under way)."""
    from messaging import tasks_backfill

    with transaction.atomic():
        job = (
            BackfillJob.objects.select_for_update()
            .filter(
                account=account, status__in=[BackfillJob.Status.QUEUED, BackfillJob.Status.RUNNING]
            )
            .first()
        )
        if job is None:
            job = BackfillJob.objects.create(tenant_id=account.tenant_id, account=account)
        tenant_id, account_id = account.tenant_id, account.pk
        transaction.on_commit(lambda: tasks_backfill.backfill_account.delay(tenant_id, account_id))
    return job


def _job_to_run(account: InstagramAccount) -> BackfillJob | None:
    """The account's job under way, or a failed one to resume, or a new one if none exists."""
    latest = BackfillJob.objects.filter(account=account).order_by("-created_at", "-id").first()
    if latest is not None and latest.status == BackfillJob.Status.DONE:
        return None
    if latest is None:
        try:
            with transaction.atomic():
                latest = BackfillJob.objects.create(tenant_id=account.tenant_id, account=account)
        except IntegrityError:  # another run created it a moment ago
            latest = BackfillJob.objects.filter(account=account).order_by("-created_at").first()
            if latest is None:  # pragma: no cover - the conflicting row is visible now
                return None
    if latest.status != BackfillJob.Status.RUNNING:
        latest.status = BackfillJob.Status.RUNNING
        latest.error = ""
        latest.finished_at = None
        latest.started_at = latest.started_at or timezone.now()
        latest.save(update_fields=["status", "error", "finished_at", "started_at", "updated_at"])
    return latest


def _finish(job: BackfillJob, status: str, error: str = "") -> None:
    job.status = status
    job.error = error
    job.finished_at = timezone.now()
    if status == BackfillJob.Status.DONE:
        job.conversations_estimate = job.conversations_done
    job.save(
        update_fields=["status", "error", "finished_at", "conversations_estimate", "updated_at"]
    )


@contextmanager
def _account_lock(account_id: int, ttl: float) -> Iterator[bool]:
    """One run per account at a time, across every worker (the cache is shared)."""
    key = f"backfill:account:{account_id}"
    token = uuid.uuid4().hex
    acquired = cache.add(key, token, timeout=int(ttl))
    try:
        yield acquired
    finally:
        if acquired and cache.get(key) == token:
            cache.delete(key)


# -- pacing --------------------------------------------------------------------------------------


class _Pacer:
    """Spaces calls to Meta for one account at least ``interval`` seconds apart.

    The time of the last call is kept in the shared cache, so a run that follows another (on
    any worker) keeps the spacing too. The wait is short: never more than ``interval``.
    """

    def __init__(self, account_id: int, interval: float) -> None:
        self.key = f"backfill:account:{account_id}:last_call"
        self.interval = max(0.0, interval)

    def wait(self) -> None:
        if self.interval:
            last = cache.get(self.key)
            if isinstance(last, int | float):
                remaining = self.interval - (time.time() - last)
                if remaining > 0:
                    time.sleep(min(remaining, self.interval))
        cache.set(self.key, time.time(), timeout=60)


# -- the run -----------------------------------------------------------------------------------


def account_client(account: InstagramAccount) -> AccountClient:
    client = client_from_settings()
    if account.login_kind == InstagramAccount.LoginKind.FACEBOOK:
        return client.facebook_page(account.page_id, account.access_token)
    return client.instagram_account(account.access_token, "me")


def backfill_account_run(
    *, account: InstagramAccount, time_budget: float | None = None
) -> RunOutcome:
    """Import pages of the account's history until done, failed, throttled or out of time."""
    budget = float(
        time_budget if time_budget is not None else _setting("BACKFILL_RUN_SECONDS", 120)
    )
    with _account_lock(account.pk, ttl=budget + 120) as acquired:
        if not acquired:
            return RunOutcome("busy")
        job = _job_to_run(account)
        if job is None:
            return RunOutcome("idle")
        return _run(job, account, budget)


def _run(job: BackfillJob, account: InstagramAccount, budget: float) -> RunOutcome:
    started = time.monotonic()
    page_size = int(_setting("BACKFILL_PAGE_SIZE", 25))
    pacer = _Pacer(account.pk, float(_setting("BACKFILL_MIN_CALL_INTERVAL", 0.55)))
    if not account.access_token:
        _finish(job, BackfillJob.Status.FAILED, "The account has no Instagram connection.")
        return RunOutcome("failed", job_id=job.pk)
    client = account_client(account)
    while True:
        if time.monotonic() - started > budget:
            return RunOutcome("again", job_id=job.pk)
        pacer.wait()
        try:
            page = client.list_conversations(
                fields=conversation_fields(), limit=page_size, after=job.cursor or None
            )
        except MetaRateLimitError as exc:
            wait = exc.retry_after if exc.retry_after else DEFAULT_RETRY_SECONDS
            logger.info("backfill %s throttled by Meta, again in %.0fs", job.pk, wait)
            return RunOutcome("throttled", countdown=wait, job_id=job.pk)
        except MetaTransientError:
            logger.info("backfill %s: Meta had a temporary problem", job.pk, exc_info=True)
            return RunOutcome("transient", countdown=TRANSIENT_RETRY_SECONDS, job_id=job.pk)
        except MetaError as exc:
            _finish(job, BackfillJob.Status.FAILED, failure_reason(exc))
            logger.info("backfill %s failed: %s", job.pk, exc.reason)
            return RunOutcome("failed", job_id=job.pk)
        _store_page(job, account, page)
        if not page.has_next or not page.after or not page.items:
            _finish(job, BackfillJob.Status.DONE)
            return RunOutcome("done", job_id=job.pk)


def failure_reason(exc: MetaError) -> str:
    """What a person reads on the import's status line."""
    if exc.reason == Reason.NOT_ELIGIBLE:
        return NOT_AVAILABLE
    if isinstance(exc, MetaAuthError):
        return exc.user_message
    return exc.user_message or "Instagram refused the history import."


def backfill_give_up(*, account: InstagramAccount, error: str) -> None:
    """Mark the account's running import failed (after too many temporary failures)."""
    job = BackfillJob.objects.filter(account=account, status=BackfillJob.Status.RUNNING).first()
    if job is not None:
        _finish(job, BackfillJob.Status.FAILED, error)


# -- storing a page ------------------------------------------------------------------------------


@transaction.atomic
def _store_page(job: BackfillJob, account: InstagramAccount, page: Paged[MetaConversation]) -> None:
    messages_seen = 0
    for thread in page.items:
        messages_seen += _store_thread(account, thread)
    job.cursor = page.after or job.cursor
    job.conversations_done += len(page.items)
    job.messages_done += messages_seen
    if page.has_next:
        job.conversations_estimate = max(
            job.conversations_estimate or 0, job.conversations_done + len(page.items)
        )
    else:
        job.conversations_estimate = job.conversations_done
    job.save(
        update_fields=[
            "cursor",
            "conversations_done",
            "messages_done",
            "conversations_estimate",
            "updated_at",
        ]
    )


def _customer_of(account: InstagramAccount, thread: MetaConversation) -> Participant | None:
    """The participant who is not the business (Meta lists both)."""
    business_ids = {account.ig_user_id}
    candidates = [
        p
        for p in thread.participants
        if p.id
        and p.id not in business_ids
        and not (account.username and p.username == account.username)
    ]
    return candidates[-1] if candidates else None


def _store_thread(account: InstagramAccount, thread: MetaConversation) -> int:
    customer = _customer_of(account, thread)
    if customer is None or not customer.id:
        logger.info("backfill: thread without a recognisable customer skipped")
        return 0
    details = [m for m in thread.messages if m.id][:MESSAGE_DETAIL_LIMIT]
    erased_at = _erased_at(account, customer.id)
    if erased_at is not None:
        # The customer's data was erased here: what Meta still holds from before stays out.
        details = [m for m in details if m.created_time is not None and m.created_time > erased_at]
        if not details:
            logger.info("backfill: thread of an erased customer skipped")
            return 0
    contact, _ = Contact.objects.get_or_create(
        account=account,
        igsid=customer.id,
        defaults={
            "tenant_id": account.tenant_id,
            "username": customer.username or "",
            "name": customer.name or "",
        },
    )
    if customer.username and not contact.username:
        contact.username = customer.username
        contact.save(update_fields=["username"])
    conversation, _ = Conversation.objects.get_or_create(
        contact=contact,
        defaults={
            "tenant_id": account.tenant_id,
            "account": account,
            "meta_conversation_id": thread.id,
        },
    )
    known = set(
        Message.objects.filter(account=account, mid__in=[m.id for m in details]).values_list(
            "mid", flat=True
        )
    )
    fresh = [
        message_from_meta(account=account, conversation=conversation, igsid=customer.id, item=m)
        for m in details
        if m.id not in known
    ]
    if fresh:
        # A webhook may store the same message meanwhile: the unique (account, mid) wins.
        Message.objects.bulk_create(fresh, ignore_conflicts=True)
    _update_conversation(conversation, thread, fresh)
    return len(details)


def _erased_at(account: InstagramAccount, igsid: str) -> datetime | None:
    from accounts.compliance import customers_erased

    return customers_erased(account=account, igsids=[igsid]).get(igsid)


def _update_conversation(
    conversation: Conversation, thread: MetaConversation, fresh: list[Message]
) -> None:
    changed: set[str] = set()
    if not conversation.meta_conversation_id and thread.id:
        conversation.meta_conversation_id = thread.id
        changed.add("meta_conversation_id")
    newest = max((m.sent_at for m in fresh), default=None)
    if newest and (conversation.last_message_at is None or newest > conversation.last_message_at):
        conversation.last_message_at = newest
        changed.add("last_message_at")
    inbound = [m for m in fresh if m.direction == Message.Direction.INBOUND]
    latest_in = max(inbound, key=lambda m: m.sent_at, default=None)
    if latest_in is not None and (
        conversation.customer_last_message_at is None
        or latest_in.sent_at > conversation.customer_last_message_at
    ):
        conversation.customer_last_message_at = latest_in.sent_at
        conversation.window_opened_by = _window_opener(latest_in.kind)
        changed |= {"customer_last_message_at", "window_opened_by"}
    if changed:
        conversation.save(update_fields=[*sorted(changed), "updated_at"])


def _window_opener(kind: str) -> str:
    if kind == Message.Kind.STORY_MENTION:
        return WindowOpener.STORY_MENTION
    if kind == Message.Kind.STORY_REPLY:
        return WindowOpener.STORY_REPLY
    return WindowOpener.MESSAGE


# -- Meta's message → our message ----------------------------------------------------------------


_ATTACHMENT_KIND_BY_MIME = {
    "image": Message.Kind.IMAGE,
    "video": Message.Kind.VIDEO,
    "audio": Message.Kind.AUDIO,
}


def _attachment_kind(mime_type: str | None) -> str:
    head = (mime_type or "").split("/", 1)[0].lower()
    return _ATTACHMENT_KIND_BY_MIME.get(head, Message.Kind.FILE)


def _share_kind(url: str) -> str:
    return Message.Kind.REEL_SHARE if "/reel" in url else Message.Kind.POST_SHARE


def message_from_meta(
    *,
    account: InstagramAccount,
    conversation: Conversation,
    igsid: str,
    item: ConversationMessage,
) -> Message:
    """An unsaved ``Message`` for one message read through the Conversations API.

    The kinds are those the webhooks give: story mention and story reply first (they may carry
    an attachment or text too), then a shared post or reel, then media by MIME type, then text;
    anything else is kept as unsupported content.
    """
    inbound = item.sender is not None and item.sender.id == igsid
    text = item.text or ""
    attachments: list[dict[str, Any]] = []
    reply_to_story: dict[str, Any] | None = None
    kind: str
    if item.is_unsupported:
        kind = Message.Kind.UNSUPPORTED
    elif item.story is not None and item.story.kind == "mention":
        kind = Message.Kind.STORY_MENTION
        attachments.append(
            {"type": "story_mention", "url": item.story.link, "media_id": item.story.id}
        )
    elif item.story is not None:
        kind = Message.Kind.STORY_REPLY
        reply_to_story = {"id": item.story.id, "url": item.story.link}
    elif item.share_urls:
        kind = _share_kind(item.share_urls[0])
        attachments.extend({"type": kind, "url": url} for url in item.share_urls)
    elif item.attachments:
        kind = _attachment_kind(item.attachments[0].mime_type)
        attachments.extend(
            {
                "type": _attachment_kind(a.mime_type),
                "url": a.url,
                "title": a.name,
                "media_id": a.id,
            }
            for a in item.attachments
        )
    elif text:
        kind = Message.Kind.TEXT
    else:
        kind = Message.Kind.UNSUPPORTED
    sent_at: datetime = item.created_time or timezone.now()
    return Message(
        tenant_id=account.tenant_id,
        account=account,
        conversation=conversation,
        mid=item.id,
        direction=Message.Direction.INBOUND if inbound else Message.Direction.OUTBOUND,
        sender_kind=Message.SenderKind.CUSTOMER if inbound else Message.SenderKind.EXTERNAL,
        kind=kind,
        text=text,
        attachments=attachments,
        reply_to_mid=item.reply_to_mid or "",
        reply_to_story=reply_to_story,
        sent_at=sent_at,
        status=Message.Status.RECEIVED if inbound else Message.Status.SENT,
    )
