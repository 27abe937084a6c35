"""Writes of the webhooks domain."""

from __future__ import annotations

import hashlib

from django.db import connection

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
