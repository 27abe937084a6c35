"""Turning one stored delivery into product state. Runs inside the claiming transaction.

A delivery is decoded, parsed into typed events and split by the business account each event
names (the entry id). Each account's events run inside that account's tenant scope, opened by
the webhook router; nothing is ever looked up by a customer id alone. Dashboard test deliveries
are acknowledged and ignored; events for accounts nobody has connected are counted and kept in
the stored delivery: if nothing in a delivery could be routed, it is quarantined.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from accounts import compliance
from accounts import onboarding as accounts_onboarding
from integrations.meta import webhooks as meta_events
from messaging.models import Message
from messaging.services import inbound
from messaging.services.common import InvalidInboundEvent
from webhooks import services as webhook_services
from webhooks.metrics import count
from webhooks.models import WebhookEvent
from webhooks.router import routed_to_account

logger = logging.getLogger(__name__)


class Unprocessable(Exception):
    """A signed body that can never be processed: quarantined for inspection, not retried."""


def decode_body(raw_body: bytes) -> dict[str, Any]:
    """The delivery as a JSON object, or ``Unprocessable`` with the reason."""
    try:
        payload = meta_events.decode_webhook_body(raw_body)
    except meta_events.UndecodableBody as exc:
        raise Unprocessable(str(exc)) from exc
    if not isinstance(payload, dict):
        raise Unprocessable("body is not a JSON object")
    return payload


# ``instagram_account_record_webhook`` writes at most every 30 s; this process does not even ask
# again for an account it asked about less than ``WEBHOOK_SEEN_INTERVAL`` ago.
WEBHOOK_SEEN_INTERVAL = timedelta(seconds=10)
_webhook_seen: dict[int, datetime] = {}
_webhook_seen_lock = threading.Lock()


def record_webhook(account: Any) -> None:
    now = timezone.now()
    last = _webhook_seen.get(account.pk)
    if last is not None and last <= now < last + WEBHOOK_SEEN_INTERVAL:
        return
    accounts_onboarding.instagram_account_record_webhook(account=account)
    with _webhook_seen_lock:
        if len(_webhook_seen) > 10_000:
            _webhook_seen.clear()
        _webhook_seen[account.pk] = now


def event_order(event: meta_events.WebhookEvent) -> tuple[str, int]:
    # One lock order for every worker (customer by customer), and Meta's time within a thread.
    return (event.customer_id or "", event.timestamp_ms or 0)


def _erased(account: Any, item: meta_events.WebhookEvent, touched: list[Message]) -> bool:
    """Whether the message the event stored or found is an unsent (erased) tombstone.

    The row the event touched was read under the conversation's lock in this transaction, so
    it says so without asking again; other outcomes ask the database.
    """
    mid = getattr(item, "mid", None)
    if touched and mid and touched[-1].mid == mid:
        return touched[-1].deleted_at is not None
    return inbound.message_is_erased(account=account, mid=mid)


def process_event(event: WebhookEvent) -> str:
    """Apply one stored delivery; a note about what was left aside ("" when nothing was).

    Raises ``Unprocessable`` when nothing in it can ever be applied.
    """
    payload = decode_body(bytes(event.raw_body))
    # Kept with the delivery (the relay saves it), so erasures find it through an index.
    event.named_ids = webhook_services.named_ids(payload)
    batch = meta_events.parse_webhook(payload)
    if batch.object not in (None, "instagram"):
        raise Unprocessable(f"deliveries for object {batch.object!r} are not handled")

    by_account: dict[str, list[meta_events.WebhookEvent]] = defaultdict(list)
    malformed: list[str] = []
    tests = 0
    for item in batch.events:
        if item.is_test:
            tests += 1
        elif item.business_id:
            by_account[item.business_id].append(item)
        elif isinstance(item, meta_events.UnknownEvent):
            malformed.append(item.reason)
        else:
            by_account[""].append(item)
    if tests:
        count("webhook.test_delivery", tests)
        logger.info("webhook event %s: %d dashboard test event(s) ignored", event.pk, tests)

    routed = 0
    erase_body = False
    unrouted: list[str] = []
    skipped: list[str] = []
    for business_id in sorted(by_account):
        items = by_account[business_id]
        with routed_to_account(business_id) as account:
            if account is None:
                count("webhook.unrouted", len(items))
                unrouted.append(business_id or "(none)")
                logger.warning(
                    "webhook event %s: %d event(s) for unknown account %r",
                    event.pk,
                    len(items),
                    business_id[:64],
                )
                continue
            record_webhook(account)
            erased = compliance.customers_erased(
                account=account, igsids=[i.customer_id for i in items if i.customer_id]
            )
            for item in sorted(items, key=event_order):
                erased_at = erased.get(item.customer_id or "")
                if erased_at is not None and (
                    event.received_at <= erased_at
                    or inbound.event_time(item, event.received_at) <= erased_at
                ):
                    # Received, or written, before the customer was erased: not applied, and
                    # the delivery keeps no copy of it.
                    count("webhook.event_erased")
                    routed += 1
                    erase_body = True
                    continue
                touched: list[Message] = []
                try:
                    outcome = inbound.inbound_event_apply(
                        account=account, event=item, received_at=event.received_at, touched=touched
                    )
                except InvalidInboundEvent as exc:
                    count("webhook.event_invalid")
                    skipped.append(f"{item.event_type}: {exc}")
                    logger.warning("webhook event %s: %s skipped: %s", event.pk, item, exc)
                    continue
                routed += 1
                if outcome in ("duplicate", "edit", "message") and _erased(account, item, touched):
                    # A late original or edit of an unsent message: its bytes are not kept.
                    erase_body = True
                if outcome.startswith("ignored:"):
                    count("webhook.event_ignored")
                    logger.info("webhook event %s: %s %s", event.pk, item.event_type, outcome)

    notes: list[str] = []
    if unrouted:
        notes.append("no connected account for ids " + ", ".join(unrouted))
    if skipped:
        notes.append("skipped " + "; ".join(skipped))
    if malformed:
        notes.append("malformed " + ", ".join(sorted(set(malformed))))
    if routed == 0 and notes:
        raise Unprocessable("; ".join(notes))
    if erase_body:
        webhook_services.webhook_body_erase(event_id=event.pk)
        event.named_ids = []
    return "; ".join(notes)
