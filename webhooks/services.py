"""Writes of the webhooks domain."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db import InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from webhooks.models import WebhookEvent

NOTIFY_CHANNEL = "webhook_events"


def webhook_event_store(*, raw_body: bytes, signed_with: str) -> bool:
    """Store one delivery durably in a single statement; False when it was already stored.

    On PostgreSQL the same statement notifies the relay, so no broker is touched here, and it
    is the connection's health check as well: Django's own check (``CONN_HEALTH_CHECKS``) would
    send a ``SELECT 1`` before it on every request, a second round trip per acknowledgement.
    A reused connection the server has dropped (a restart, an idle timeout) fails the insert
    instead; the insert is then sent once more on a new connection. That is safe because it is
    idempotent: a delivery already stored is not stored twice.
    """
    digest = hashlib.sha256(raw_body).hexdigest()
    if connection.vendor == "postgresql":
        values = [raw_body, digest, signed_with, WebhookEvent.Status.PENDING, NOTIFY_CHANNEL]
        db: Any = connection  # the type stubs omit Django's health-check flag
        may_reconnect = (
            db.connection is not None and not db.health_check_done and not db.in_atomic_block
        )
        db.health_check_done = True
        try:
            return _insert_and_notify(values)
        except (OperationalError, InterfaceError):
            if not may_reconnect:
                raise
        connection.close()
        return _insert_and_notify(values)
    created = WebhookEvent.objects.bulk_create(
        [WebhookEvent(raw_body=raw_body, body_sha256=digest, signed_with=signed_with)],
        ignore_conflicts=True,
    )
    return bool(created and created[0].pk)


def _insert_and_notify(values: list[Any]) -> bool:
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
            values,
        )
        return cursor.fetchone() is not None


# -- erasure of raw deliveries -----------------------------------------------------------------

ERASABLE = (WebhookEvent.Status.PROCESSED, WebhookEvent.Status.QUARANTINED)
# A delivery naming more ids than this is not indexed: erasures read its body instead.
MAX_NAMED_IDS = 1000
_ID_KEYS = frozenset({"id", "mid"})


def named_ids(payload: Any) -> list[str] | None:
    """Every id a decoded delivery names (the values of its ``id`` and ``mid`` keys: business
    accounts, customers, messages, replied-to messages, comments, media), sorted; None when
    they cannot all be indexed."""
    found: set[str] = set()
    stack = [payload]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                if key in _ID_KEYS and isinstance(item, str | int) and not isinstance(item, bool):
                    found.add(str(item))
                elif isinstance(item, dict | list):
                    stack.append(item)
        elif isinstance(value, list):
            stack.extend(item for item in value if isinstance(item, dict | list))
    if len(found) > MAX_NAMED_IDS or not all(i.isascii() and i.isprintable() for i in found):
        return None  # too many, or odd ones (NULs, lone surrogates): the body is read instead
    return sorted(i for i in found if i)


def _wire_forms(needle: str) -> list[bytes]:
    """How a value can appear in Meta's raw bytes: as is, and JSON-escaped as Meta sends it."""
    escaped = json.dumps(needle, ensure_ascii=True)[1:-1].replace("/", "\\/")
    return sorted({needle.encode("utf-8"), escaped.encode("ascii")})


def _body_contains_any(forms: list[bytes]) -> str:
    """A condition true when ``raw_body`` contains any of ``forms`` (one parameter each)."""
    if connection.vendor == "postgresql":
        test = "position(%s::bytea in raw_body) > 0"
    else:
        test = "instr(raw_body, %s) > 0"
    return "(" + " OR ".join([test] * len(forms)) + ")"


def _names_any() -> str:
    """A condition true when ``named_ids`` holds any id of the list parameter (GIN-indexed on
    PostgreSQL)."""
    if connection.vendor == "postgresql":
        return "named_ids ?| %s::text[]"
    return (
        "EXISTS (SELECT 1 FROM json_each(named_ids) "
        "WHERE json_each.value IN (SELECT value FROM json_each(%s)))"
    )


def bodies_erase_statements(
    *,
    needles: Iterable[str],
    received_before: datetime | None = None,
    received_after: datetime | None = None,
) -> list[tuple[str, list[Any]]]:
    """The statements ``webhook_bodies_erase`` runs: one finds deliveries through the ids they
    name (an index lookup), one reads the bodies of the few whose ids were never recorded."""
    ids = sorted({n for n in needles if n})
    if not ids:
        return []
    forms = [form for needle in ids for form in _wire_forms(needle)]
    table = WebhookEvent._meta.db_table
    when = ""
    when_params: list[Any] = []
    if received_before is not None:
        when += " AND received_at < %s"
        when_params.append(received_before)
    if received_after is not None:
        when += " AND received_at >= %s"
        when_params.append(received_after)
    handled = "status IN ('processed', 'quarantined')"
    size = "octet_length" if connection.vendor == "postgresql" else "length"
    blank = "raw_body = %s, named_ids = %s"
    blank_params: list[Any] = [b"", "[]"]
    ids_param: Any = ids if connection.vendor == "postgresql" else json.dumps(ids)
    return [
        (
            f"UPDATE {table} SET {blank} "  # noqa: S608 (the table name is ours)
            f"WHERE {handled} AND named_ids IS NOT NULL AND {_names_any()}{when}",
            [*blank_params, ids_param, *when_params],
        ),
        (
            f"UPDATE {table} SET {blank} "  # noqa: S608 (the table name is ours)
            f"WHERE {handled} AND named_ids IS NULL AND {size}(raw_body) > 0 "
            f"AND {_body_contains_any(forms)}{when}",
            [*blank_params, *forms, *when_params],
        ),
    ]


def webhook_bodies_erase(
    *,
    needles: Iterable[str],
    received_before: datetime | None = None,
    received_after: datetime | None = None,
) -> int:
    """Blank the raw body of every handled delivery that names any of ``needles`` (ids:
    customers, business accounts, messages).

    The row and its hash stay, so a repeated delivery is still recognised and not stored
    again. Deliveries waiting to be processed are ``webhook_pending_bodies_erase``'s. The
    number of bodies blanked.
    """
    erased = 0
    with connection.cursor() as cursor:
        for sql, params in bodies_erase_statements(
            needles=needles, received_before=received_before, received_after=received_after
        ):
            cursor.execute(sql, params)
            erased += cursor.rowcount
    return erased


def _names(value: Any, needles: list[str]) -> bool:
    text = json.dumps(value)
    return any(needle in text for needle in needles)


def _body_without(raw_body: bytes, needles: list[str]) -> bytes | None:
    """The delivery without the events (or whole entries) that name a needle; None when
    nothing else is left, or when what is left cannot be told apart from it."""
    try:
        payload = json.loads(raw_body)
    except ValueError:
        return None
    entries = payload.get("entry") if isinstance(payload, dict) else None
    if not isinstance(entries, list):
        return None
    kept: list[Any] = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        head = {k: v for k, v in entry.items() if not isinstance(v, list)}
        if _names(head, needles):
            continue  # the entry is about the erased id itself
        lists = {
            k: [i for i in v if not _names(i, needles)]
            for k, v in entry.items()
            if isinstance(v, list)
        }
        if any(lists.values()):
            kept.append({**head, **{k: v for k, v in lists.items() if v}})
    if not kept:
        return None
    rest = json.dumps({**payload, "entry": kept}, separators=(",", ":")).encode("ascii")
    if any(form in rest for needle in needles for form in _wire_forms(needle)):
        return None
    return rest


def webhook_pending_bodies_erase(*, needles: Iterable[str]) -> int:
    """Take every event naming any of ``needles`` out of the deliveries still waiting to be
    processed; the number of deliveries changed. In the caller's transaction.

    Meta batches several customers' events into one delivery, so the body is rewritten without
    those events and the rest is processed as usual; a delivery left with nothing is marked
    processed with a blank body. The hash of the bytes Meta sent stays, so a retry of them is
    still recognised. A delivery a worker holds right now is skipped: processing consults the
    erasure itself (``accounts.compliance.customers_erased``) and blanks what it did not apply.
    """
    wanted = sorted({n for n in needles if n})
    if not wanted:
        return 0
    forms = [form for needle in wanted for form in _wire_forms(needle)]
    table = WebhookEvent._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id FROM {table} WHERE status = %s AND {_body_contains_any(forms)}",  # noqa: S608
            [WebhookEvent.Status.PENDING, *forms],
        )
        ids = [row[0] for row in cursor.fetchall()]
    if not ids:
        return 0
    rows = WebhookEvent.objects.filter(pk__in=ids, status=WebhookEvent.Status.PENDING)
    if connection.features.has_select_for_update_skip_locked:
        rows = rows.select_for_update(skip_locked=True)
    changed = 0
    for event in rows:
        rest = _body_without(bytes(event.raw_body), wanted)
        if rest is None:
            event.raw_body = b""
            event.named_ids = []
            event.status = WebhookEvent.Status.PROCESSED
            event.processed_at = timezone.now()
            event.last_error = "erased before it was processed"
        else:
            event.raw_body = rest
        event.save(update_fields=["raw_body", "named_ids", "status", "processed_at", "last_error"])
        changed += 1
    return changed


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
            WebhookEvent.objects.filter(pk__in=ids).update(raw_body=b"", named_ids=[])
        total += len(ids)


def webhook_body_erase(*, event_id: int) -> None:
    """Blank one delivery's raw body (it carried content that was erased meanwhile)."""
    WebhookEvent.objects.filter(pk=event_id).update(raw_body=b"", named_ids=[])
