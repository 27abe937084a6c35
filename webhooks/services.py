"""Writes of the webhooks domain."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db import connection, transaction

from webhooks.models import WebhookEvent

NOTIFY_CHANNEL = "webhook_events"


def webhook_event_store(*, raw_body: bytes, signed_with: str) -> bool:
    """Store one delivery durably in a single statement; False when it was already stored.

    On PostgreSQL the same statement notifies the relay, so no broker is touched here.
    """
    digest = hashlib.sha256(raw_body).hexdigest()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                WITH stored AS (
                    INSERT INTO {WebhookEvent._meta.db_table}
                        (received_at, raw_body, body_sha256, signed_with, status, attempts,
                         last_error)
                    VALUES (now(), %s, %s, %s, %s, 0, '')
                    ON CONFLICT (body_sha256) DO NOTHING
                    RETURNING id
                )
                SELECT pg_notify(%s, id::text) FROM stored
                """,  # noqa: S608 (the table name is ours, every value is a parameter)
                [raw_body, digest, signed_with, WebhookEvent.Status.PENDING, NOTIFY_CHANNEL],
            )
            return cursor.fetchone() is not None
    created = WebhookEvent.objects.bulk_create(
        [WebhookEvent(raw_body=raw_body, body_sha256=digest, signed_with=signed_with)],
        ignore_conflicts=True,
    )
    return bool(created and created[0].pk)


# -- erasure of raw deliveries -----------------------------------------------------------------

ERASABLE = (WebhookEvent.Status.PROCESSED, WebhookEvent.Status.QUARANTINED)


def _wire_forms(needle: str) -> list[bytes]:
    """How a value can appear in Meta's raw bytes: as is, and JSON-escaped as Meta sends it."""
    escaped = json.dumps(needle, ensure_ascii=True)[1:-1].replace("/", "\\/")
    return sorted({needle.encode("utf-8"), escaped.encode("ascii")})


def webhook_bodies_erase(
    *,
    needles: Iterable[str],
    received_before: datetime | None = None,
    received_after: datetime | None = None,
) -> int:
    """Blank the raw body of every handled delivery that contains any of ``needles``.

    The row and its hash stay, so a repeated delivery is still recognised and not stored
    again. Deliveries waiting to be processed are left alone: processing decides what of
    them is kept. The number of bodies blanked.
    """
    forms = [form for needle in needles if needle for form in _wire_forms(needle)]
    if not forms:
        return 0
    table = WebhookEvent._meta.db_table
    matches = " OR ".join(["position(%s::bytea in raw_body) > 0"] * len(forms))
    params: list[Any] = [list(ERASABLE), *forms]
    where_time = ""
    if received_before is not None:
        where_time += " AND received_at < %s"
        params.append(received_before)
    if received_after is not None:
        where_time += " AND received_at >= %s"
        params.append(received_after)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE {table} SET raw_body = ''::bytea
            WHERE status = ANY(%s) AND octet_length(raw_body) > 0 AND ({matches}) {where_time}
            """,  # noqa: S608 (the table name is ours, every value is a parameter)
            params,
        )
        return cursor.rowcount


def webhook_bodies_purge(*, received_before: datetime, batch_size: int = 1000) -> int:
    """Blank the raw bodies of handled deliveries older than the retention, in small batches."""
    total = 0
    while True:
        with transaction.atomic():
            ids = list(
                WebhookEvent.objects.filter(status__in=ERASABLE, received_at__lt=received_before)
                .exclude(raw_body=b"")
                .order_by("id")
                .select_for_update(skip_locked=True)
                .values_list("pk", flat=True)[:batch_size]
            )
            if not ids:
                return total
            WebhookEvent.objects.filter(pk__in=ids).update(raw_body=b"")
        total += len(ids)


def webhook_body_erase(*, event_id: int) -> None:
    """Blank one delivery's raw body (it carried content that was erased meanwhile)."""
    WebhookEvent.objects.filter(pk=event_id).update(raw_body=b"")
