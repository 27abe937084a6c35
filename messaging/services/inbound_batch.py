"""Customers' messages in threads we know, many stored at once: the common delivery, cheaply.

Most deliveries are one customer's new message in a conversation the account already has.
``messages_receive_together`` stores many such deliveries in a handful of statements (the
conversations locked in one, in id order, so two workers never wait on each other in a
cycle; the messages inserted in one; the conversations written in one) and ends every row
exactly as ``inbound.message_receive`` would have, one delivery after another.

Anything uncommon is handed back, not handled: a customer without a conversation yet, an
account with automation rules, a message id stored already or twice in the batch, an id
Meta should never send. Once one delivery of a customer is handed back, every later one of
that customer is too, so the caller, applying the handed-back ones after this batch in their
order, keeps each thread in Meta's order.

Runs inside the tenant scope of ``account`` and inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from accounts.models import InstagramAccount
from config.bulk_sql import rows_update
from integrations.meta import webhooks as meta_events
from messaging.models import Conversation, Message
from messaging.services import inbound
from messaging.services.common import InvalidInboundEvent, clean_igsid, clean_mid
from webhooks import partner_events

# What ``Conversation.save()`` would write for an arrival (``inbound.note_arrival``), and its time.
_ARRIVAL_FIELDS = [
    "last_message_at",
    "unread_count",
    "status",
    "customer_last_message_at",
    "window_opened_by",
    "updated_at",
]


@dataclass(frozen=True)
class Delivery:
    """One stored delivery's customer messages for the account, in the order to apply them."""

    key: int
    received_at: datetime
    events: Sequence[meta_events.MessageEvent]


@dataclass
class _Planned:
    delivery: Delivery
    items: list[tuple[str, str, meta_events.MessageEvent]]  # (igsid, mid, event)


def _customers(delivery: Delivery) -> set[str]:
    return {e.customer_id or "" for e in delivery.events}


def _cleaned(account: InstagramAccount, delivery: Delivery) -> _Planned | None:
    items = []
    for event in delivery.events:
        if event.is_from_business or event.is_self or event.is_standby:
            return None
        try:
            igsid, mid = clean_igsid(event.customer_id), clean_mid(event.mid)
        except InvalidInboundEvent:
            return None
        if igsid == account.ig_user_id:
            return None
        items.append((igsid, mid, event))
    return _Planned(delivery, items) if items else None


def messages_receive_together(
    *, account: InstagramAccount, deliveries: Iterable[Delivery]
) -> list[int]:
    """Store these deliveries' messages; the keys of the deliveries handed back, in order."""
    handed_back: list[int] = []
    blocked: set[str] = set()
    planned: list[_Planned] = []

    def hand_back(delivery: Delivery) -> None:
        handed_back.append(delivery.key)
        blocked.update(_customers(delivery))

    ordered = list(deliveries)
    for delivery in ordered:
        plan = None if _customers(delivery) & blocked else _cleaned(account, delivery)
        if plan is None:
            hand_back(delivery)
        else:
            planned.append(plan)
    if not planned:
        return handed_back

    igsids = sorted({igsid for p in planned for igsid, _, _ in p.items})
    threads = {
        c.contact.igsid: c
        for c in inbound.threads_locked(account).filter(contact__igsid__in=igsids).order_by("pk")
    }
    # A customer without a thread yet, or an account whose rules may answer: one at a time.
    known: list[_Planned] = []
    for plan in planned:
        found = [threads.get(igsid) for igsid, _, _ in plan.items]
        if _customers(plan.delivery) & blocked or any(
            t is None or t.account_has_enabled_rules for t in found
        ):
            hand_back(plan.delivery)
        else:
            known.append(plan)
    mids = [mid for p in known for _, mid, _ in p.items]
    stored = (
        set(Message.objects.filter(account=account, mid__in=mids).values_list("mid", flat=True))
        if mids
        else set()
    )

    tell = partner_events.wanted(account.tenant_id)
    accepted: list[tuple[Message, str, dict | None]] = []  # message, status before, as of
    touched: dict[int, Conversation] = {}
    seen_mids: set[str] = set()
    for plan in known:
        plan_mids = [mid for _, mid, _ in plan.items]
        if (
            _customers(plan.delivery) & blocked
            or any(m in stored or m in seen_mids for m in plan_mids)
            or len(set(plan_mids)) != len(plan_mids)
        ):
            # Stored already (a redelivery, an unsend's placeholder): one at a time decides.
            hand_back(plan.delivery)
            continue
        seen_mids.update(plan_mids)
        for igsid, mid, event in plan.items:
            conversation = threads[igsid]
            content = inbound.message_content(event)
            message = Message(
                tenant_id=account.tenant_id,
                account=account,
                conversation=conversation,
                mid=mid,
                **inbound.message_values(
                    direction=Message.Direction.INBOUND,
                    sender_kind=Message.SenderKind.CUSTOMER,
                    sent_at=inbound.event_time(event, plan.delivery.received_at),
                    app_id=event.app_id or "",
                    is_standby=False,
                ),
                **inbound.content_fields(content),
            )
            status_before = conversation.status
            inbound.note_arrival(conversation, message, inbound.window_opener(content))
            as_of = partner_events.conversation_data(conversation) if tell else None
            accepted.append((message, status_before, as_of))
            touched[conversation.pk] = conversation

    if not accepted:
        return handed_back
    Message.objects.bulk_create([m for m, _, _ in accepted])
    now = timezone.now()
    for conversation in touched.values():
        conversation.updated_at = now
    rows_update(list(touched.values()), _ARRIVAL_FIELDS)
    for conversation in touched.values():
        inbound.refresh_profile_if_stale(conversation.contact)
    if tell:
        for message, status_before, as_of in accepted:
            inbound.partner_events_of_arrival(
                message.conversation, message, status_before, as_of=as_of
            )
    return handed_back
