"""Moving stored webhook events on: claim, process, mark. The stored row is the truth.

Workers claim pending events with ``SELECT … FOR UPDATE SKIP LOCKED`` and process them inside
the claiming transaction, so a worker killed mid-event leaves it pending for the next one, and
an event's effects and its "processed" mark commit together: exactly once. Customers' messages
for known threads are claimed and stored many at a time (``webhooks.batch``); every other
event is claimed and processed alone.

The relay process (``manage.py webhook_relay``) only wakes workers up: it listens for the
notification the ingest INSERT sends (or polls where there is no LISTEN) and publishes one
``webhooks.drain`` task. If the broker is down nothing is lost: events wait in the table.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

import psycopg
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from webhooks import processing
from webhooks.metrics import count
from webhooks.models import WebhookEvent

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
BATCH_SIZE = 100


def _backoff(attempt: int) -> timedelta:
    return timedelta(seconds=min(600, 5 * 2**attempt))


def pending_exists() -> bool:
    now = timezone.now()
    return (
        WebhookEvent.objects.filter(status=WebhookEvent.Status.PENDING)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .exists()
    )


def due_claim() -> QuerySet[WebhookEvent]:
    """Due pending events, oldest first, each locked as it is read (others skip it)."""
    now = timezone.now()
    claim = (
        WebhookEvent.objects.filter(status=WebhookEvent.Status.PENDING)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .order_by("id")
    )
    if connection.features.has_select_for_update_skip_locked:
        claim = claim.select_for_update(skip_locked=True)
    return claim


def _claim_and_process_one(event_id: int | None = None) -> bool:
    """Claim the oldest due event (or this one, if still due) and process it in its own
    transaction; False if there is none."""
    with transaction.atomic():
        claim = due_claim()
        if event_id is not None:
            claim = claim.filter(pk=event_id)
        event = claim.first()
        if event is None:
            return False
        process_one(event)
    return True


def _batches_enabled() -> bool:
    return (
        int(settings.WEBHOOK_BATCH_SIZE) > 1
        and connection.features.has_select_for_update_skip_locked
    )


def drain_batch(batch_size: int = BATCH_SIZE) -> int:
    """Claim and process up to ``batch_size`` pending events; the number handled.

    Customers' messages for known threads are stored many at a time (``webhooks.batch``),
    everything else one event per transaction: a transaction spanning many arbitrary events
    would hold the contact and conversation locks of all of them in no particular order, so
    two workers whose batches share customers would deadlock.
    """
    handled = 0
    while handled < batch_size:
        if _batches_enabled():
            from webhooks import batch

            claimed, alone = batch.drain_together(
                min(batch_size - handled, int(settings.WEBHOOK_BATCH_SIZE))
            )
            if not claimed:
                break
            for event_id in alone:
                # Another worker may have taken it meanwhile: then it is theirs.
                _claim_and_process_one(event_id)
            handled += claimed
        elif _claim_and_process_one():
            handled += 1
        else:
            break
    return handled


def process_one(event: WebhookEvent) -> None:
    event.attempts += 1
    note = ""
    try:
        with transaction.atomic():
            note = processing.process_event(event) or ""
    except processing.Unprocessable as exc:
        event.status = WebhookEvent.Status.QUARANTINED
        event.last_error = str(exc)[:2000]
        count("webhook.quarantined")
        logger.warning("webhook event %s quarantined: %s", event.pk, exc)
    except Exception as exc:
        # A bug or a passing failure: retry later, and quarantine an event that keeps failing.
        event.last_error = f"{type(exc).__name__}: {exc}"[:2000]
        if event.attempts >= MAX_ATTEMPTS:
            event.status = WebhookEvent.Status.QUARANTINED
            count("webhook.quarantined")
        else:
            event.next_attempt_at = timezone.now() + _backoff(event.attempts)
        logger.exception("webhook event %s failed (attempt %s)", event.pk, event.attempts)
    else:
        event.status = WebhookEvent.Status.PROCESSED
        event.processed_at = timezone.now()
        # What was left aside (events for unknown accounts, invalid items): kept for inspection.
        event.last_error = note[:2000]
    event.save(
        update_fields=[
            "status",
            "attempts",
            "next_attempt_at",
            "last_error",
            "processed_at",
            "named_ids",
        ]
    )


def drain(*, time_budget: float = 10.0, batch_size: int = BATCH_SIZE) -> int:
    """Process pending events until none are left or the time budget is spent."""
    deadline = time.monotonic() + time_budget
    total = 0
    while time.monotonic() < deadline:
        handled = drain_batch(batch_size)
        total += handled
        if handled == 0:
            break
    return total


def wait_for_events(timeout: float) -> bool:
    """Block until the ingest notifies (PostgreSQL) or ``timeout`` passes; True if notified."""
    if connection.vendor != "postgresql":
        time.sleep(timeout)
        return False
    try:
        connection.ensure_connection()
        raw = connection.connection
        with raw.cursor() as cursor:
            cursor.execute("LISTEN webhook_events")
        notified = False
        for _ in raw.notifies(timeout=timeout, stop_after=1):
            notified = True
        return notified
    except (DatabaseError, psycopg.Error):
        # The raw connection raises psycopg's own errors: a database restart must not end the
        # relay, which reconnects on the next round.
        connection.close()
        time.sleep(min(timeout, 1.0))
        return False
