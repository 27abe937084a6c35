"""Deletion as a product feature: unsend, contact erasure and export, retention, Meta's data
deletion requests, and the deletion of a whole workspace.

One erasure serves every path: ``messages_erase`` blanks a batch of messages (the same fields
an unsend blanks, from ``messaging.services.common.ERASED_CONTENT``) and then removes the
copies of that content kept elsewhere (``copies_erase``): outbound payloads waiting to be sent,
raw Meta deliveries, partner callback events, partner responses and delivery logs. Each path
appends one audit entry that says what was erased, never the content itself.

A contact's erasure is also remembered (``ErasedCustomer``, a keyed hash per account): stored
deliveries not yet processed lose that customer's events at once, and webhook processing
consults the mark (``customers_erased``), under a per-customer lock, so a delivery received or
written before the erasure never brings the contact back.

Everything tenant-owned runs inside the tenant's scope (a request, a partner key, or a task
decorated with ``tenant_task``); the few lookups across workspaces live in ``accounts.tenancy``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts import onboarding, tenancy
from accounts.audit import Action, audit_record
from accounts.exceptions import AccountsError
from accounts.models import (
    ApiKey,
    DataDeletionRequest,
    InstagramAccount,
    OnboardingAttempt,
    Tenant,
    TenantCompliance,
    TenantDeletionJob,
    User,
)
from accounts.tenancy import tenant_task
from automation import models as automation_models
from messaging import models as messaging_models
from messaging.services.common import ERASED_CONTENT
from webhooks import partner_events
from webhooks import services as webhook_services
from webhooks.models import ErasedCustomer

logger = logging.getLogger(__name__)

ERASE_BATCH = 500
MIN_RETENTION_DAYS = 1
MAX_RETENTION_DAYS = 3650
# A repeated deletion request for the same person within this time answers with the same code.
DATA_DELETION_REPEAT_WINDOW = timedelta(days=1)
# How long before a message was stored its raw deliveries may have been received.
UNSEND_DELIVERY_WINDOW = timedelta(days=2)

Message = messaging_models.Message


class ComplianceError(AccountsError):
    pass


# -- the one erasure ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ErasedMessage:
    pk: int
    mid: str
    conversation_id: int


def copies_erase(
    *,
    messages: Iterable[ErasedMessage] = (),
    igsids: Iterable[str] = (),
    contact_ids: Iterable[int] = (),
    comment_ids: Iterable[int] = (),
    conversation_ids: Iterable[int] = (),
    delivered_after: datetime | None = None,
) -> None:
    """Remove erased content from every place it was copied to. In the caller's transaction."""
    messages = list(messages)
    message_ids = [m.pk for m in messages]
    _outbound_erase(message_ids)
    partner_events.callback_content_erase(
        conversation_ids=conversation_ids,
        message_ids=message_ids,
        contact_ids=contact_ids,
        comment_ids=comment_ids,
    )
    needles = [m.mid for m in messages if m.mid and ":" not in m.mid] + [i for i in igsids if i]
    webhook_services.webhook_bodies_erase(needles=needles, received_after=delivered_after)


def _outbound_erase(message_ids: list[int]) -> None:
    """Sends not yet made are cancelled (their text is gone), and no payload keeps it."""
    if not message_ids:
        return
    jobs = messaging_models.OutboundJob.objects.filter(message_id__in=message_ids)
    jobs.filter(status__in=messaging_models.OutboundJob.ACTIVE).update(
        status=messaging_models.OutboundJob.Status.FAILED,
        error_code="erased",
        error_message="The message was erased before it was sent.",
        finished_at=timezone.now(),
    )
    jobs.exclude(payload={}).update(payload={})


def messages_erase(
    *,
    message_ids: list[int],
    at: datetime | None = None,
    search_copies: bool = True,
    reason: str = "",
) -> int:
    """Blank a batch of messages (tombstones stay) and every copy of their content.

    ``search_copies=False`` is for callers that sweep the copies themselves in one pass
    (retention by age, a contact by its id, a workspace by its accounts): queued sends are
    still cancelled here, by their message. ``reason`` (a ``Message.ErasedReason``) is what
    the tombstone says happened; blank reads as unsent.
    """
    if not message_ids:
        return 0
    moment = at or timezone.now()
    rows = [
        ErasedMessage(pk, mid, conversation_id)
        for pk, mid, conversation_id in Message.objects.filter(pk__in=message_ids).values_list(
            "pk", "mid", "conversation_id"
        )
    ]
    extra = {"erased_reason": reason} if reason else {}
    Message.objects.filter(pk__in=message_ids).update(
        **ERASED_CONTENT, deleted_at=Coalesce("deleted_at", moment), **extra
    )
    if search_copies:
        copies_erase(messages=rows)
    else:
        _outbound_erase([m.pk for m in rows])
    return len(rows)


def message_unsent(*, message: Message, first_time: bool) -> None:
    """An unsend was applied to ``message`` (inbound): its copies go, and the log says so once."""
    # Meta delivers a message (and retries it) around when it is stored; a backlog of
    # deliveries waiting to be processed can make that earlier, never by days.
    copies_erase(
        messages=[ErasedMessage(message.pk, message.mid, message.conversation_id)],
        delivered_after=(message.created_at or timezone.now()) - UNSEND_DELIVERY_WINDOW,
    )
    if first_time:
        audit_record(
            tenant=message.tenant_id,
            action=Action.MESSAGE_UNSENT,
            actor_label="Customer, through Meta",
            target_type="message",
            target_id=message.pk,
        )


# -- contact export and erasure ----------------------------------------------------------------


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def contact_export(
    *,
    contact: messaging_models.Contact,
    actor_user: User | None = None,
    actor_api_key: ApiKey | None = None,
) -> dict[str, Any]:
    """Everything held about a contact, as JSON-ready data; the export is logged."""
    conversation = messaging_models.Conversation.objects.filter(contact=contact).first()
    messages = (
        list(Message.objects.filter(conversation=conversation).order_by("sent_at", "pk"))
        if conversation is not None
        else []
    )
    mids = [m.mid for m in messages if m.mid]
    reactions = messaging_models.Reaction.objects.filter(
        account_id=contact.account_id, message_mid__in=mids
    ).order_by("pk")
    comments = _contact_comments(contact).order_by("commented_at", "pk")
    notes = (
        messaging_models.Note.objects.filter(conversation=conversation).order_by("created_at")
        if conversation is not None
        else messaging_models.Note.objects.none()
    )
    labels = (
        list(
            messaging_models.ConversationLabel.objects.filter(conversation=conversation)
            .select_related("label")
            .values_list("label__name", flat=True)
        )
        if conversation is not None
        else []
    )
    data: dict[str, Any] = {
        "exported_at": _iso(timezone.now()),
        "contact": {
            "id": contact.pk,
            "instagram_account": contact.account.username or contact.account.ig_user_id,
            "igsid": contact.igsid,
            "username": contact.username,
            "name": contact.name,
            "profile_pic_url": contact.profile_pic_url,
            "follower_count": contact.follower_count,
            "follows_business": contact.follows_business,
            "business_follows": contact.business_follows,
            "is_verified": contact.is_verified,
            "first_seen_at": _iso(contact.created_at),
        },
        "conversation": None
        if conversation is None
        else {
            "id": conversation.pk,
            "status": conversation.status,
            "created_at": _iso(conversation.created_at),
            "last_message_at": _iso(conversation.last_message_at),
            "labels": labels,
        },
        "messages": [
            {
                "id": m.pk,
                "mid": m.mid,
                "direction": m.direction,
                "sender_kind": m.sender_kind,
                "kind": m.kind,
                "text": m.text,
                "attachments": m.attachments,
                "reply_to_mid": m.reply_to_mid,
                "reply_to_story": m.reply_to_story,
                "quick_reply_payload": m.quick_reply_payload,
                "postback": m.postback,
                "referral": m.referral,
                "sent_at": _iso(m.sent_at),
                "edited_at": _iso(m.edited_at),
                "unsent_at": _iso(m.deleted_at),
                "erased_reason": m.erasure,
            }
            for m in messages
        ],
        "reactions": [
            {
                "message_mid": r.message_mid,
                "actor": r.actor,
                "emoji": r.emoji,
                "reaction": r.reaction,
                "reacted_at": _iso(r.reacted_at),
                "removed_at": _iso(r.removed_at),
            }
            for r in reactions
        ],
        "comments": [
            {
                "comment_id": c.comment_id,
                "media_id": c.media_id,
                "text": c.text,
                "from_username": c.from_username,
                "commented_at": _iso(c.commented_at),
            }
            for c in comments
        ],
        "notes": [{"body": n.body, "created_at": _iso(n.created_at)} for n in notes],
    }
    audit_record(
        tenant=contact.tenant_id,
        action=Action.CONTACT_EXPORTED,
        actor_user=actor_user,
        actor_api_key=actor_api_key,
        target_type="contact",
        target_id=contact.pk,
        detail={"messages": len(messages), "comments": len(data["comments"])},
    )
    return data


def _contact_comments(contact: messaging_models.Contact) -> Any:
    who = Q(from_id=contact.igsid)
    if contact.username:
        who |= Q(from_username__iexact=contact.username)
    return messaging_models.Comment.objects.filter(account_id=contact.account_id).filter(who)


def contact_erasure_request(
    *,
    contact: messaging_models.Contact,
    actor_user: User | None = None,
    actor_api_key: ApiKey | None = None,
) -> None:
    """Log the request and queue the erasure once the request's transaction commits."""
    audit_record(
        tenant=contact.tenant_id,
        action=Action.CONTACT_ERASURE_REQUESTED,
        actor_user=actor_user,
        actor_api_key=actor_api_key,
        target_type="contact",
        target_id=contact.pk,
    )
    tenant_id, contact_id = contact.tenant_id, contact.pk
    transaction.on_commit(partial(_enqueue, "accounts.erase_contact", tenant_id, contact_id))


def contact_erase(
    *,
    contact: messaging_models.Contact,
    actor_user: User | None = None,
    actor_api_key: ApiKey | None = None,
) -> dict[str, int]:
    """Erase everything held about a contact: messages (batch by batch), reactions, comments,
    notes, the profile and the contact itself, and their copies. Safe to run twice."""
    conversation = messaging_models.Conversation.objects.filter(contact=contact).first()
    counts = {"messages": 0, "reactions": 0, "comments": 0}
    last_id = 0
    while conversation is not None:
        with transaction.atomic():
            ids = list(
                Message.objects.filter(conversation=conversation, pk__gt=last_id)
                .order_by("pk")
                .values_list("pk", flat=True)[:ERASE_BATCH]
            )
            if not ids:
                break
            messages_erase(message_ids=ids, search_copies=False)
        counts["messages"] += len(ids)
        last_id = ids[-1]
    with transaction.atomic():
        # Webhook processing of this customer waits until the erasure commits, and the erasure
        # waits for processing already under way: either sees all of the other's work.
        _customer_erasure_lock(contact.account_id, contact.igsid)
        locked = messaging_models.Contact.objects.select_for_update().filter(pk=contact.pk).first()
        if locked is None:
            return counts
        if conversation is not None:
            # Whoever writes to the thread (a send, a delivery) finishes first or not at all.
            messaging_models.Conversation.objects.select_for_update().filter(
                pk=conversation.pk
            ).first()
        mids = (
            list(Message.objects.filter(conversation=conversation).values_list("mid", flat=True))
            if conversation is not None
            else []
        )
        comments = _contact_comments(locked)
        comment_ids = list(comments.values_list("pk", flat=True))
        copies_erase(
            igsids=[locked.igsid],
            contact_ids=[locked.pk],
            comment_ids=comment_ids,
            conversation_ids=[conversation.pk] if conversation is not None else [],
        )
        # Deliveries about them still waiting to be processed lose their events too.
        webhook_services.webhook_pending_bodies_erase(needles=[locked.igsid])
        counts["reactions"] = messaging_models.Reaction.objects.filter(
            account_id=locked.account_id, message_mid__in=[m for m in mids if m]
        ).delete()[0]
        counts["comments"] = len(comment_ids)
        # Automation history names the customer (their Instagram id, the thread, the comment).
        theirs = Q(contact_id=locked.pk) | Q(customer_igsid=locked.igsid)
        if comment_ids:
            theirs |= Q(comment_id__in=comment_ids)
        if conversation is not None:
            theirs |= Q(conversation_id=conversation.pk)
        counts["rule_runs"] = (
            automation_models.RuleRun.objects.filter(account_id=locked.account_id)
            .filter(theirs)
            .delete()[0]
        )
        comments.delete()
        _customer_erased_mark(
            tenant_id=locked.tenant_id, account_id=locked.account_id, igsid=locked.igsid
        )
        # The contact row goes with its conversation, messages, notes, labels and sends.
        locked.delete()
        audit_record(
            tenant=locked.tenant_id,
            action=Action.CONTACT_ERASED,
            actor_user=actor_user,
            actor_api_key=actor_api_key,
            actor_label="" if actor_user or actor_api_key else "System",
            target_type="contact",
            target_id=contact.pk,
            detail=dict(counts),
        )
    return counts


# -- erased customers and the deliveries that still name them ---------------------------------

# The advisory lock space of customer erasures; each customer of an account is one key in it.
_ERASURE_LOCK_SPACE = 0x45524153


def _customer_key(account_id: int, igsid: str) -> int:
    """A 32-bit lock key for a customer of an account (a collision only costs a wait)."""
    return zlib.crc32(f"{account_id}:{igsid}".encode()) - 2**31


def _customer_hash(account_id: int, igsid: str) -> str:
    """The keyed hash an erased customer is remembered by: their id is not kept."""
    key = f"erased-customer:{settings.SECRET_KEY}".encode()
    return hmac.new(key, f"{account_id}:{igsid}".encode(), hashlib.sha256).hexdigest()


def _customer_erasure_lock(account_id: int, igsid: str) -> None:
    """Hold the exclusive side of the customer's erasure lock until the transaction ends.

    SQLite needs none: a writing transaction there already holds the whole database.
    """
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(%s, %s)",
            [_ERASURE_LOCK_SPACE, _customer_key(account_id, igsid)],
        )


def _customer_erased_mark(*, tenant_id: int, account_id: int, igsid: str) -> None:
    ErasedCustomer.objects.update_or_create(
        account_id=account_id,
        igsid_hash=_customer_hash(account_id, igsid),
        defaults={"tenant_id": tenant_id, "erased_at": timezone.now()},
    )


def customers_erased(*, account: InstagramAccount, igsids: Iterable[str]) -> dict[str, datetime]:
    """When each of these customers of ``account`` was erased, for those who were.

    Webhook processing asks before applying a delivery's events, inside its transaction. It
    first takes the shared side of each customer's erasure lock until that transaction ends:
    an erasure under way finishes first (and its mark is seen here), and an erasure starting
    now waits until this delivery's effects are committed, then erases them too.
    """
    wanted = sorted({i for i in igsids if i})
    if not wanted:
        return {}
    if connection.vendor == "postgresql":
        keys = sorted({_customer_key(account.pk, igsid) for igsid in wanted})
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock_shared(%s, k) FROM unnest(%s::int[]) AS k",
                [_ERASURE_LOCK_SPACE, keys],
            )
    by_hash = {_customer_hash(account.pk, igsid): igsid for igsid in wanted}
    marks = ErasedCustomer.objects.filter(account=account, igsid_hash__in=list(by_hash))
    return {by_hash[h]: at for h, at in marks.values_list("igsid_hash", "erased_at")}


# -- retention ---------------------------------------------------------------------------------


def tenant_compliance_get(*, tenant: Tenant | int) -> TenantCompliance:
    tenant_id = tenant if isinstance(tenant, int) else tenant.pk
    found = TenantCompliance.objects.filter(tenant_id=tenant_id).first()
    return found if found is not None else TenantCompliance(tenant_id=tenant_id)


def _check_days(days: int | None) -> int | None:
    if days is None:
        return None
    if not MIN_RETENTION_DAYS <= days <= MAX_RETENTION_DAYS:
        raise ComplianceError(
            f"Choose between {MIN_RETENTION_DAYS} and {MAX_RETENTION_DAYS} days, or keep messages.",
            code="retention_out_of_range",
        )
    return days


@transaction.atomic
def retention_policy_set(
    *,
    tenant: Tenant,
    days: int | None,
    account_days: dict[int, int | None] | None = None,
    actor_user: User | None = None,
    actor_api_key: ApiKey | None = None,
) -> TenantCompliance:
    """Set the workspace's retention period and, per account, an override (None: inherit)."""
    policy, _ = TenantCompliance.objects.select_for_update().get_or_create(tenant=tenant)
    overrides = dict(policy.account_retention_days or {})
    if account_days:
        known = set(InstagramAccount.objects.values_list("pk", flat=True))
        for account_id, value in account_days.items():
            if account_id not in known:
                raise ComplianceError("No such account.", code="no_such_account")
            if value is None:
                overrides.pop(str(account_id), None)
            else:
                overrides[str(account_id)] = _check_days(value)
    before = (policy.message_retention_days, dict(policy.account_retention_days or {}))
    policy.message_retention_days = _check_days(days)
    policy.account_retention_days = overrides
    policy.save()
    if before != (policy.message_retention_days, overrides):
        audit_record(
            tenant=tenant,
            action=Action.RETENTION_CHANGED,
            actor_user=actor_user,
            actor_api_key=actor_api_key,
            target_type="tenant",
            target_id=tenant.pk,
            detail={"days": policy.message_retention_days, "accounts": overrides},
        )
    return policy


def _retention_days_by_account(policy: TenantCompliance) -> dict[int, int]:
    overrides = {int(k): int(v) for k, v in (policy.account_retention_days or {}).items()}
    result = {}
    for account_id in InstagramAccount.objects.values_list("pk", flat=True):
        days = overrides.get(account_id, policy.message_retention_days)
        if days:
            result[account_id] = days
    return result


def retention_purge(*, tenant_id: int, batch_size: int = ERASE_BATCH) -> dict[str, Any]:
    """Erase message content older than the workspace's (or account's) period.

    Short transactions of ``batch_size`` messages each, claimed with ``FOR UPDATE SKIP
    LOCKED`` so a thread being written to is skipped, not waited for (the next night takes
    it). Walks forward by id, so each batch costs the same however much was erased before.
    """
    started = time.monotonic()
    policy = tenant_compliance_get(tenant=tenant_id)
    counts = {"messages": 0, "comments": 0, "batches": 0}
    now = timezone.now()
    for account_id, days in sorted(_retention_days_by_account(policy).items()):
        cutoff = now - timedelta(days=days)
        last_id = 0
        while True:
            with transaction.atomic():
                ids = list(
                    Message.objects.filter(
                        account_id=account_id,
                        pk__gt=last_id,
                        sent_at__lt=cutoff,
                        deleted_at__isnull=True,
                    )
                    .order_by("pk")
                    .select_for_update(skip_locked=True, of=("self",))
                    .values_list("pk", flat=True)[:batch_size]
                )
                if not ids:
                    break
                counts["messages"] += messages_erase(
                    message_ids=ids,
                    at=now,
                    search_copies=False,
                    reason=Message.ErasedReason.RETENTION,
                )
            counts["batches"] += 1
            last_id = ids[-1]
        with transaction.atomic():
            counts["comments"] += (
                messaging_models.Comment.objects.filter(
                    account_id=account_id, commented_at__lt=cutoff
                )
                .exclude(text="")
                .update(text="")
            )
            partner_events.callback_content_erase(created_before=cutoff, account_id=account_id)
        account = InstagramAccount.objects.filter(pk=account_id).first()
        if account is not None and account.ig_user_id:
            webhook_services.webhook_bodies_erase(
                needles=[account.ig_user_id], received_before=cutoff
            )
    periods = _retention_days_by_account(policy)
    if periods:
        # Partner responses are not per account: those older than the longest period go.
        partner_events.callback_content_erase(
            created_before=now - timedelta(days=max(periods.values()))
        )
    elapsed = round(time.monotonic() - started, 3)
    with transaction.atomic():
        policy, _ = TenantCompliance.objects.select_for_update().get_or_create(tenant_id=tenant_id)
        policy.last_retention_run_at = now
        policy.last_retention_erased = {**counts, "seconds": elapsed}
        policy.save(update_fields=["last_retention_run_at", "last_retention_erased"])
        if counts["messages"] or counts["comments"]:
            audit_record(
                tenant=tenant_id,
                action=Action.RETENTION_PURGED,
                actor_label="Retention policy",
                target_type="tenant",
                target_id=tenant_id,
                detail=dict(counts),
            )
    return {**counts, "seconds": elapsed}


def retention_purge_due() -> list[int]:
    """Beat: the workspaces the nightly purge visits (each gets its own task)."""
    return tenancy.tenants_with_retention_any_tenant()


def webhook_raw_bodies_purge() -> int:
    """Beat: raw Meta deliveries keep their body only for a few days after processing."""
    days = settings.WEBHOOK_RAW_BODY_RETENTION_DAYS
    return webhook_services.webhook_bodies_purge(
        received_before=timezone.now() - timedelta(days=days)
    )


# -- Meta's data deletion callback -------------------------------------------------------------


def subject_hash(meta_user_id: str) -> str:
    """A keyed hash of Meta's id for a person: stable, and useless without the secret key."""
    key = f"data-deletion:{settings.SECRET_KEY}".encode()
    return hmac.new(key, meta_user_id.encode(), hashlib.sha256).hexdigest()


def data_deletion_request_record(
    *, meta_user_id: str, source: str
) -> tuple[DataDeletionRequest, bool]:
    """Record Meta's request; a repeat for the same person answers with the first request.

    The erasure is queued once the request is stored (``(request, created)``).
    """
    digest = subject_hash(meta_user_id)
    recent = timezone.now() - DATA_DELETION_REPEAT_WINDOW
    open_or_recent = Q(status__in=["received", "running", "failed"]) | Q(finished_at__gte=recent)
    for _ in range(2):
        existing = (
            DataDeletionRequest.objects.filter(subject_hash=digest)
            .filter(open_or_recent)
            .order_by("-created_at")
            .first()
        )
        if existing is not None:
            return existing, False
        try:
            with transaction.atomic():
                request = DataDeletionRequest.objects.create(
                    confirmation_code=secrets.token_urlsafe(24),  # 192 random bits
                    subject_hash=digest,
                    subject=meta_user_id,
                    source=source,
                )
                transaction.on_commit(
                    partial(_enqueue, "accounts.process_data_deletion", request.pk)
                )
                return request, True
        except IntegrityError:
            continue  # the same person's request arrived twice at once: answer the other one
    raise ComplianceError("The request could not be recorded.")  # pragma: no cover


def data_deletion_request_by_code(code: str) -> DataDeletionRequest | None:
    if not code or len(code) > 64:
        return None
    return DataDeletionRequest.objects.filter(confirmation_code=code).first()


def data_deletion_process(*, request: DataDeletionRequest) -> DataDeletionRequest:
    """Erase what is tied to the person: their tokens, the accounts they connected
    (disconnected), and their identity wherever it is stored. Safe to run again."""
    if request.status == DataDeletionRequest.Status.DONE:
        return request
    meta_user_id = request.subject
    DataDeletionRequest.objects.filter(pk=request.pk).update(
        status=DataDeletionRequest.Status.RUNNING, started_at=timezone.now()
    )
    # The accounts they connected: tokens deleted, disconnected (Meta removed the app).
    disconnected = onboarding.instagram_accounts_deauthorize(meta_user_id=meta_user_id)
    accounts = tenancy.instagram_accounts_naming_meta_user_any_tenant(meta_user_id)
    attempts = tenancy.onboarding_attempts_of_meta_user_any_tenant(meta_user_id)
    tenants = sorted({t for t, _ in accounts} | {t for t, _ in attempts})
    progress: dict[str, int] = {
        "workspaces": len(tenants),
        "accounts_disconnected": disconnected,
        "accounts_anonymised": 0,
        "logins_erased": 0,
    }
    for tenant_id in tenants:
        done = _erase_person_in_tenant(
            tenant_id,
            meta_user_id=meta_user_id,
            account_ids=[a for t, a in accounts if t == tenant_id],
            attempt_ids=[a for t, a in attempts if t == tenant_id],
            request_id=request.pk,
        )
        if done:
            progress["accounts_anonymised"] += done[0]
            progress["logins_erased"] += done[1]
    with transaction.atomic():
        waiting = webhook_services.webhook_pending_bodies_erase(needles=[meta_user_id])
    progress["deliveries_erased"] = waiting + webhook_services.webhook_bodies_erase(
        needles=[meta_user_id]
    )
    DataDeletionRequest.objects.filter(pk=request.pk).update(
        status=DataDeletionRequest.Status.DONE,
        progress=progress,
        subject="",
        finished_at=timezone.now(),
    )
    request.refresh_from_db()
    return request


@tenant_task
def _erase_person_in_tenant(
    tenant_id: int,
    *,
    meta_user_id: str,
    account_ids: list[int],
    attempt_ids: list[int],
    request_id: int,
) -> tuple[int, int]:
    with transaction.atomic():
        anonymised = 0
        for account in InstagramAccount.objects.select_for_update().filter(pk__in=account_ids):
            account.meta_user_id = ""
            account.access_token = ""
            if account.ig_user_id == meta_user_id:
                # Instagram Login: the account is the person; its identity goes too.
                account.ig_user_id = f"erased-{account.pk}"
                account.username = ""
                account.name = ""
                account.status = InstagramAccount.Status.DISCONNECTED
            account.save()
            anonymised += 1
        logins = OnboardingAttempt.objects.filter(pk__in=attempt_ids).update(
            meta_user_id="", candidates=[], secrets=""
        )
        audit_record(
            tenant=tenant_id,
            action=Action.DATA_DELETION_PROCESSED,
            actor_label="Meta data deletion request",
            target_type="data_deletion_request",
            target_id=request_id,
            detail={"accounts": anonymised, "logins": logins},
        )
    return anonymised, logins


# -- tenant deletion ---------------------------------------------------------------------------

TENANT_DELETION_STEPS = [
    ("tokens", "Disconnecting Instagram accounts and deleting their tokens"),
    ("api_keys", "Revoking API keys"),
    ("messages", "Erasing messages"),
    ("copies", "Erasing stored Meta deliveries and partner event logs"),
    ("workspace", "Deleting the workspace and everything left in it"),
]


def _name_hash(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def tenant_deletion_request(
    *, tenant: Tenant, requested_by: User, confirm_name: str
) -> TenantDeletionJob:
    """An owner asked to delete the workspace: typed confirmation, then an asynchronous job."""
    if confirm_name.strip() != tenant.name:
        raise ComplianceError(
            "Type the workspace's name exactly to confirm.", code="confirmation_mismatch"
        )
    with transaction.atomic():
        existing = TenantDeletionJob.objects.filter(
            tenant_id=tenant.pk, status__in=["queued", "running", "failed"]
        ).first()
        if existing is not None:
            return existing
        job = TenantDeletionJob.objects.create(
            tenant_id=tenant.pk,
            tenant_name_hash=_name_hash(tenant.name),
            requested_by_user_id=requested_by.pk,
            progress={"step": "queued", "done": [], "counts": {}},
        )
        audit_record(
            tenant=tenant,
            action=Action.TENANT_DELETION_REQUESTED,
            actor_user=requested_by,
            target_type="tenant",
            target_id=tenant.pk,
            detail={"job": job.pk},
        )
        transaction.on_commit(partial(_enqueue, "accounts.delete_tenant", job.pk))
    return job


def tenant_deletion_job_for_user(*, job_id: int, user: User) -> TenantDeletionJob | None:
    """A deletion job, shown only to the person who asked for it."""
    return TenantDeletionJob.objects.filter(pk=job_id, requested_by_user_id=user.pk).first()


def _job_progress(job: TenantDeletionJob, step: str, **counts: int) -> None:
    progress = dict(job.progress or {})
    done = list(progress.get("done") or [])
    totals = dict(progress.get("counts") or {})
    for name, value in counts.items():
        totals[name] = totals.get(name, 0) + value
    progress.update(step=step, counts=totals, done=done)
    job.progress = progress
    TenantDeletionJob.objects.filter(pk=job.pk).update(progress=progress)


def _job_step_done(job: TenantDeletionJob, step: str) -> None:
    progress = dict(job.progress or {})
    done = list(progress.get("done") or [])
    if step not in done:
        done.append(step)
    progress["done"] = done
    job.progress = progress
    TenantDeletionJob.objects.filter(pk=job.pk).update(progress=progress)


def tenant_delete(*, job: TenantDeletionJob) -> TenantDeletionJob:
    """Erase the workspace step by step: tokens first (webhooks unsubscribed), then keys,
    messages in batches, stored copies, and finally every remaining row. Resumable."""
    if job.status == TenantDeletionJob.Status.DONE:
        return job
    TenantDeletionJob.objects.filter(pk=job.pk).update(
        status=TenantDeletionJob.Status.RUNNING, started_at=job.started_at or timezone.now()
    )
    try:
        done = set((job.progress or {}).get("done") or [])
        for step, _ in TENANT_DELETION_STEPS:
            if step in done:
                continue
            _job_progress(job, step)
            if step == "workspace":
                _tenant_row_delete(job.tenant_id)
            else:
                _tenant_step(job.tenant_id, step=step, job=job)
            _job_step_done(job, step)
    except Exception:
        TenantDeletionJob.objects.filter(pk=job.pk).update(
            status=TenantDeletionJob.Status.FAILED, error="Interrupted; it will be retried."
        )
        raise
    TenantDeletionJob.objects.filter(pk=job.pk).update(
        status=TenantDeletionJob.Status.DONE, finished_at=timezone.now(), error=""
    )
    job.refresh_from_db()
    return job


@tenant_task
def _tenant_step(tenant_id: int, *, step: str, job: TenantDeletionJob) -> None:
    if step == "tokens":
        for account in InstagramAccount.objects.exclude(
            status=InstagramAccount.Status.DISCONNECTED
        ):
            onboarding.instagram_account_disconnect(account=account)
            _job_progress(job, step, accounts=1)
        InstagramAccount.objects.update(access_token="")
        OnboardingAttempt.objects.update(secrets="", candidates=[])
    elif step == "api_keys":
        revoked = ApiKey.objects.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        _job_progress(job, step, api_keys=revoked)
    elif step == "messages":
        while True:
            with transaction.atomic():
                batch = Message.objects.order_by("pk").values_list("pk", flat=True)
                ids = list(batch[:ERASE_BATCH])
                if not ids:
                    break
                messages_erase(message_ids=ids, search_copies=False)
                Message.objects.filter(pk__in=ids).delete()
            _job_progress(job, step, messages=len(ids))
    elif step == "copies":
        ig_ids = [
            i
            for i in InstagramAccount.objects.values_list("ig_user_id", flat=True)
            if i and not i.startswith("erased-")
        ]
        igsids = list(messaging_models.Contact.objects.values_list("igsid", flat=True))
        erased = 0
        for start in range(0, len(igsids), 200):
            erased += webhook_services.webhook_bodies_erase(needles=igsids[start : start + 200])
        erased += webhook_services.webhook_bodies_erase(needles=ig_ids)
        # Deliveries still waiting name accounts nobody holds any more: nothing of them stays.
        with transaction.atomic():
            erased += webhook_services.webhook_pending_bodies_erase(needles=ig_ids)
        # Partner events and deliveries are rows of the workspace: they go with it.
        _job_progress(job, step, deliveries=erased)


def _tenant_row_delete(tenant_id: int) -> None:
    """The workspace row and everything still hanging from it, audit log included."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL relay.allow_audit_delete = 'on'")
        Tenant.objects.filter(pk=tenant_id).delete()


def unfinished_work() -> tuple[list[int], list[int]]:
    """Deletion requests and workspace deletions left unfinished for more than a few minutes."""
    stale = timezone.now() - timedelta(minutes=10)
    requests = DataDeletionRequest.objects.filter(
        status__in=["received", "running", "failed"], created_at__lt=stale
    ).values_list("pk", flat=True)
    jobs = TenantDeletionJob.objects.filter(
        status__in=["queued", "running", "failed"], created_at__lt=stale
    ).values_list("pk", flat=True)
    return list(requests[:100]), list(jobs[:20])


# -- queueing ----------------------------------------------------------------------------------


def _enqueue(task_name: str, *args: Any) -> None:
    """Publish a task after commit; a broker outage is logged (the beat retries what is left)."""
    from config.celery_app import app as celery_app

    try:
        celery_app.send_task(task_name, args=list(args))
    except Exception:
        logger.warning("%s could not be queued", task_name, exc_info=True)
