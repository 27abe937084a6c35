"""Draining stored deliveries many at a time: the common ones together, the rest one by one.

``drain_together`` claims up to ``WEBHOOK_BATCH_SIZE`` pending deliveries in one statement.
Those that are only customers' messages for one connected account (the common delivery) are
stored together by ``inbound_batch.messages_receive_together`` and marked processed with
them in the claiming transaction: a worker killed meanwhile leaves all of them pending, and
their effects and marks commit together, as one at a time.

Everything else (other events, new customers, erased customers, unknown accounts, bodies that
do not parse) and everything that fails in the batch is processed one at a time after the
batch commits, each claimed anew, by the same code as before (``relay.process_one``). Once
one delivery of a customer goes that way, every later one of that customer in the batch does
too: a thread's deliveries are applied in the order they were stored.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts import compliance
from config.bulk_sql import rows_update
from integrations.meta import webhooks as meta_events
from messaging.services import inbound_batch
from webhooks import processing
from webhooks import services as webhook_services
from webhooks.metrics import count
from webhooks.models import WebhookEvent
from webhooks.router import routed_to_account

logger = logging.getLogger(__name__)


@dataclass
class _Parsed:
    event: WebhookEvent
    business_id: str
    items: list[meta_events.MessageEvent]

    @property
    def customers(self) -> set[str]:
        return {i.customer_id or "" for i in self.items}


def _parsed(event: WebhookEvent) -> tuple[_Parsed | None, set[tuple[str, str]]]:
    """The delivery if it can go with the batch; else the threads (account, customer) it names.

    With the batch: customers' messages of any content kind, all for one account. Echoes,
    postbacks, referrals, reads, reactions, unsends, edits, comments and the rest go alone.
    """
    try:
        payload = processing.decode_body(bytes(event.raw_body))
        batch = meta_events.parse_webhook(payload)
    except Exception:
        # Quarantined one at a time, with the reason; it names no thread we could order by.
        return None, set()
    threads = {(i.business_id or "", i.customer_id or "") for i in batch.events}
    items = batch.events
    if (
        batch.object not in (None, "instagram")
        or not items
        or len({i.business_id for i in items}) != 1
        or not items[0].business_id
        or any(
            not isinstance(i, meta_events.MessageEvent)
            or i.is_test
            or i.is_from_business
            or i.is_echo
            or i.is_self
            or i.is_standby
            or not i.customer_id
            for i in items
        )
    ):
        return None, threads
    event.named_ids = webhook_services.named_ids(payload)
    ordered = sorted(items, key=processing.event_order)
    return _Parsed(event, items[0].business_id or "", ordered), threads  # type: ignore[arg-type]


def _plan(events: list[WebhookEvent]) -> tuple[list[_Parsed], list[WebhookEvent]]:
    """Split claimed deliveries (in id order) into those to store together and the rest."""
    together: list[_Parsed] = []
    alone: list[WebhookEvent] = []
    blocked: set[tuple[str, str]] = set()
    for event in events:
        parsed, threads = _parsed(event)
        if parsed is None or threads & blocked:
            alone.append(event)
            blocked |= threads
        else:
            together.append(parsed)
    return together, alone


def _store_together(together: list[_Parsed]) -> set[int]:
    """Store the deliveries of each account together; the ids of those handed back."""
    handed_back: set[int] = set()
    by_account: dict[str, list[_Parsed]] = defaultdict(list)
    for parsed in together:
        by_account[parsed.business_id].append(parsed)
    for business_id in sorted(by_account):
        group = by_account[business_id]
        with routed_to_account(business_id) as account:
            if account is None:
                # Counted, logged and kept with the delivery one at a time.
                handed_back.update(p.event.pk for p in group)
                continue
            processing.record_webhook(account)
            erased = compliance.customers_erased(
                account=account, igsids=[c for p in group for c in p.customers]
            )
            deliveries = []
            gone: set[str] = set()
            for parsed in group:
                if parsed.customers & (gone | set(erased)):
                    # An erased customer's delivery: dropped (and its body) one at a time.
                    handed_back.add(parsed.event.pk)
                    gone |= parsed.customers
                    continue
                deliveries.append(
                    inbound_batch.Delivery(
                        key=parsed.event.pk,
                        received_at=parsed.event.received_at,
                        events=parsed.items,
                    )
                )
            handed_back.update(
                inbound_batch.messages_receive_together(account=account, deliveries=deliveries)
            )
    return handed_back


def _mark_processed(events: list[WebhookEvent]) -> None:
    now = timezone.now()
    for event in events:
        event.attempts += 1
        event.status = WebhookEvent.Status.PROCESSED
        event.processed_at = now
        event.last_error = ""
    rows_update(events, ["status", "attempts", "processed_at", "last_error", "named_ids"])


def drain_together(limit: int | None = None) -> tuple[int, list[int]]:
    """Claim up to ``limit`` due deliveries and store the common ones together.

    Returns how many were claimed and the ids of those left to process one at a time (they
    are pending again once this returns; the caller claims each anew).
    """
    from webhooks import relay

    size = limit if limit is not None else settings.WEBHOOK_BATCH_SIZE
    with transaction.atomic():
        events = list(relay.due_claim()[:size])
        if not events:
            return 0, []
        if len(events) == 1:
            # Nothing to share a transaction with: the one-at-a-time path, as it is.
            relay.process_one(events[0])
            return 1, []
        together, alone = _plan(events)
        handed_back: set[int] = set()
        if together:
            try:
                with transaction.atomic():
                    handed_back = _store_together(together)
            except Exception:
                # Nothing of the batch stays; each delivery gets its own try, its own error.
                logger.exception("webhook batch of %d failed; one at a time instead", len(events))
                count("webhook.batch_failed")
                handed_back = {p.event.pk for p in together}
        done = [p.event for p in together if p.event.pk not in handed_back]
        if done:
            _mark_processed(done)
        left = [e.pk for e in alone] + [p.event.pk for p in together if p.event.pk in handed_back]
    return len(events), sorted(left)
