"""The outbox: from a queued row to Meta, once, in order, within each account's budget.

- ``pump`` hands an account's due rows to the ``outbound`` queue. Only the oldest unfinished
  row of a conversation is ever handed on (so a thread's messages reach the customer in the
  order they were written), and an account has at most its share of rows in the broker or in
  a worker at once (``account_share``: the workers' threads split between the accounts with
  work, capped by ``OUTBOUND_ACCOUNT_MAX_IN_FLIGHT``), so busy accounts never stand in front
  of the others. It also re-publishes rows whose wake-up the broker lost, and rows whose
  worker died while sending. The relay process (``manage.py outbound_relay``) pumps every
  account with work; a worker pumps its account after each row, so a thread flows without
  waiting.
- ``job_run`` (the ``outbound.send`` task) claims a row for a lease, re-asks the policy, takes a
  token from the account's budget, calls the Send API with the row's id as ``metadata``, and
  finishes the row. A row found in ``sending`` by a dead worker is first looked for at Meta
  (the echo's metadata, or the thread through the Conversations API) and never sent twice.
- Retries wait in the row (``next_attempt_at``), never in the broker: no countdown or ETA is
  ever published, so nothing depends on the broker's visibility timeout.
"""

from __future__ import annotations

import logging
import math
import os
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as all_done
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, connections, transaction
from django.db.models import F, Q, QuerySet, TextField, Value
from django.db.models.functions import Cast, Coalesce
from django.db.models.query import get_related_populators  # type: ignore[attr-defined]
from django.utils import timezone
from django_scopes import get_scope, scope

from accounts import onboarding as accounts_onboarding
from accounts.models import InstagramAccount, Tenant
from config.input_guard import parse_digits
from integrations.meta.client import AccountClient, MetaClient, client_from_settings
from integrations.meta.errors import (
    MetaAuthError,
    MetaError,
    MetaRateLimitError,
    MetaTransientError,
    Reason,
)
from integrations.meta.models import Button, QuickReply, SendResult, TemplateElement
from messaging import policy, ratelimit
from messaging.models import Comment, Conversation, Message, OutboundJob, SendAttempt
from messaging.policy import MessageKind
from messaging.services import outbound as outbound_services
from messaging.services.common import (
    clean_mid,
    clean_text,
    contact_get_or_create,
    conversation_lock,
    message_assign_mid,
)
from webhooks import partner_events

logger = logging.getLogger(__name__)

Status = OutboundJob.Status
Action = OutboundJob.Action
METADATA_PREFIX = "outbox:"
_ACTIVE = list(OutboundJob.ACTIVE)
_IN_FLIGHT = [Status.PUBLISHED, Status.SENDING]


# -- small helpers --------------------------------------------------------------------------


def metadata_for(job_id: int) -> str:
    return f"{METADATA_PREFIX}{job_id}"


def job_id_from_metadata(metadata: str | None) -> int | None:
    if not metadata or not metadata.startswith(METADATA_PREFIX):
        return None
    return parse_digits(metadata[len(METADATA_PREFIX) :])


def backoff_delay(attempt: int) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2^attempt)]."""
    ceiling = min(settings.OUTBOUND_BACKOFF_CAP, settings.OUTBOUND_BACKOFF_BASE * 2**attempt)
    return random.uniform(0, ceiling)  # noqa: S311 - jitter, not a secret


def _id(value: int | None) -> int:
    if value is None:
        raise ValueError("this outbox row lacks the row it sends for")
    return value


def worker_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _claim_orphaned(job: OutboundJob, now: datetime) -> bool:
    """The worker holding the row is gone: its lease ran out, or its process died here."""
    if not job.claimed_by or job.lease_until is None or job.lease_until <= now:
        return True
    host, _, rest = job.claimed_by.partition(":")
    pid = parse_digits(rest.split(":", 1)[0])
    if host == socket.gethostname() and pid is not None:
        return pid != os.getpid() and not _process_alive(pid)
    return False


_clients = threading.local()


def meta_client() -> MetaClient:
    """One Graph client per worker thread and configuration: its connection is kept alive
    between sends, and no two threads share a session or a connection pool."""
    key = (
        settings.META_GRAPH_URL,
        settings.META_INSTAGRAM_GRAPH_URL,
        settings.META_TIMEOUT_SECONDS,
        settings.META_APP_SECRET,
    )
    held: tuple[tuple[Any, ...], MetaClient] | None = getattr(_clients, "held", None)
    if held is not None and held[0] == key:
        return held[1]
    client = client_from_settings()
    if held is not None:
        held[1].close()
    _clients.held = (key, client)
    return client


# Account clients per thread, for a short while: the access token is decrypted once per
# account and thread, not once per send. Keyed by the stored (encrypted) token, so a new token
# is used from the next send on.
CLIENT_TTL = 60.0


def _account_client(account: InstagramAccount) -> AccountClient:
    client = meta_client()
    stored = getattr(account, "stored_token", None)
    if stored is None:
        return accounts_onboarding.account_client(client, account)
    cache: dict[int, tuple[str, float, MetaClient, AccountClient]] | None = getattr(
        _clients, "accounts", None
    )
    if cache is None:
        cache = _clients.accounts = {}
    now = time.monotonic()
    hit = cache.get(account.pk)
    if hit is not None and hit[0] == stored and hit[1] > now and hit[2] is client:
        return hit[3]
    made = accounts_onboarding.account_client(client, account)
    if len(cache) > 256:
        cache.clear()
    cache[account.pk] = (stored, now + CLIENT_TTL, client, made)
    return made


# How many rows every account together may hold in the broker and the workers: about the
# workers' threads, so a row handed on finds a thread at once and a quiet account never queues
# behind the busy ones. Each account with work gets an equal share of it (at least
# ``_MIN_SHARE``, at most ``OUTBOUND_ACCOUNT_MAX_IN_FLIGHT``); the number of accounts with
# work is counted at most once a second per process.
_MIN_SHARE = 2
_sharing: dict[str, tuple[float, int]] = {}
_sharing_lock = threading.Lock()


def total_in_flight() -> int:
    configured = getattr(settings, "OUTBOUND_TOTAL_IN_FLIGHT", None)
    if configured is None:
        configured = int(os.environ.get("OUTBOUND_TOTAL_IN_FLIGHT", "64"))
    return int(configured)


def _accounts_sending() -> int:
    """Accounts with rows to send, counted at most once a second per process (not per thread:
    a worker's threads share the figure)."""
    now = time.monotonic()
    held = _sharing.get("held")
    if held is not None and held[0] > now:
        return held[1]
    with _sharing_lock:
        held = _sharing.get("held")
        if held is not None and held[0] > now:
            return held[1]
        if held is not None:
            # Claimed first: the other threads keep the last figure instead of counting too.
            _sharing["held"] = (now + 1.0, held[1])
    sending = [Status.PENDING, Status.PUBLISHED, Status.SENDING]
    table = OutboundJob._meta.db_table
    with connection.cursor() as cursor:
        if _postgresql():
            # A skip scan over the index of unfinished rows by account: one step per account
            # sending, however many rows wait (a plain count(DISTINCT) reads every one of them,
            # 77 ms at 130,000 waiting, and every worker runs it once a second).
            cursor.execute(
                f"""
                WITH RECURSIVE sending(account_id) AS (
                    (SELECT account_id FROM {table} WHERE status = ANY(%s)
                     ORDER BY account_id LIMIT 1)
                    UNION ALL
                    SELECT (
                        SELECT j.account_id FROM {table} AS j
                        WHERE j.status = ANY(%s) AND j.account_id > s.account_id
                        ORDER BY j.account_id LIMIT 1
                    )
                    FROM sending AS s WHERE s.account_id IS NOT NULL
                )
                SELECT count(account_id) FROM sending
                """,  # noqa: S608 - the table name is the model's own
                [sending, sending],
            )
        else:
            cursor.execute(
                f"SELECT count(DISTINCT account_id) FROM {table} "  # noqa: S608
                "WHERE status IN (%s, %s, %s)",
                sending,
            )
        count = max(1, int(cursor.fetchone()[0]))
    _sharing["held"] = (now + 1.0, count)
    return count


def account_share() -> int:
    """Rows one account may have in flight now: its share of ``total_in_flight``, and no more
    than its text budget can send in about half a second (more would only hold worker threads
    waiting for the budget)."""
    share = total_in_flight() // _accounts_sending()
    limit, window = settings.OUTBOUND_RATE_LIMITS[ratelimit.TEXT]
    by_rate = math.ceil(float(limit) / float(window) * 0.5) + 1
    return max(_MIN_SHARE, min(settings.OUTBOUND_ACCOUNT_MAX_IN_FLIGHT, share, by_rate))


def bucket_for(job: OutboundJob) -> str:
    if job.action == Action.PRIVATE_REPLY:
        return ratelimit.PRIVATE_REPLY
    if job.payload.get("kind") in (MessageKind.VIDEO, MessageKind.AUDIO):
        return ratelimit.MEDIA
    return ratelimit.TEXT


# -- the relay side: handing rows to the queue ------------------------------------------------


def accounts_with_work(now: datetime | None = None) -> list[tuple[int, int]]:
    """(tenant id, account id) of every account with rows to hand on, re-publish or release.

    Crosses tenants: call it where the scope guard is off (the relay command).
    """
    now = now or timezone.now()
    stale = now - timedelta(seconds=settings.OUTBOUND_REPUBLISH_AFTER)
    due = (
        Q(status=Status.PENDING, next_attempt_at__isnull=True)
        | Q(status=Status.PENDING, next_attempt_at__lte=now)
        | Q(status=Status.PUBLISHED, published_at__lt=stale)
        | Q(status=Status.SENDING, lease_until__lt=now)
        | Q(status=Status.HELD)
    )
    return sorted(
        set(
            OutboundJob.objects.filter(status__in=_ACTIVE)
            .filter(due)
            .values_list("tenant_id", "account_id")
        )
    )


def batch_size() -> int:
    """Rows of one account handed to a worker in one task (``OUTBOUND_BATCH_SIZE``)."""
    return max(1, int(settings.OUTBOUND_BATCH_SIZE))


def _publish(tenant_id: int, job_ids: Iterable[int]) -> int:
    """Wake workers for these rows (all of one account): one task per batch of rows."""
    from messaging.tasks_outbound import send_batch

    published = 0
    ids = list(job_ids)
    if not ids:
        return 0
    size = batch_size()
    try:
        # One broker connection for the whole lot, not one per task.
        with send_batch.app.producer_or_acquire() as producer:
            for start in range(0, len(ids), size):
                chunk = ids[start : start + size]
                send_batch.apply_async(args=(tenant_id, chunk), retry=False, producer=producer)
                published += len(chunk)
    except Exception:
        # The broker is down: the rows stay published and are handed on again later.
        logger.warning(
            "outbound: broker unavailable, %s rows wait in the outbox", len(ids) - published
        )
    return published


def _settle_account_state(account: InstagramAccount) -> None:
    if account.status == InstagramAccount.Status.ACTIVE:
        OutboundJob.objects.filter(account=account, status=Status.HELD).update(
            status=Status.PENDING, next_attempt_at=None
        )
    elif account.status == InstagramAccount.Status.DISCONNECTED:
        for job in OutboundJob.objects.filter(
            account=account, status__in=[Status.PENDING, Status.PUBLISHED, Status.HELD]
        ):
            _finish_failed(
                job,
                code="account_disconnected",
                message="The Instagram account was disconnected before this could be sent.",
            )


def _postgresql() -> bool:
    """The statements below lean on PostgreSQL (data-modifying CTEs, SKIP LOCKED, ANY); the
    embedded default (SQLite: one writer at a time, so nothing to skip) takes plain ones."""
    return connection.vendor == "postgresql"


def _pump_portable(
    account: InstagramAccount, rows: QuerySet[OutboundJob], now: datetime, stale: datetime
) -> int:
    """``pump`` in plain statements, for a database that serialises its writers."""
    with transaction.atomic():
        lost = list(
            rows.filter(status=Status.PUBLISHED, published_at__lt=stale).values_list(
                "id", flat=True
            )
        )
        rows.filter(id__in=lost).update(published_at=now)
        orphaned = list(
            rows.filter(status=Status.SENDING, lease_until__lt=now).values_list("id", flat=True)
        )
        rows.filter(id__in=orphaned).update(
            claimed_by="", lease_until=now + timedelta(seconds=settings.OUTBOUND_LEASE_SECONDS)
        )
        to_publish = sorted([*lost, *orphaned])
        room = account_share() - rows.filter(status__in=_IN_FLIGHT).count()
        if room > 0 and account.status == InstagramAccount.Status.ACTIVE:
            due = (
                rows.filter(status=Status.PENDING)
                .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
                .order_by("id")
                .values_list("id", "conversation_id")
            )
            picked: list[int] = []
            for job_id, conversation_id in due:
                if (
                    conversation_id is None
                    or not rows.filter(
                        conversation_id=conversation_id, id__lt=job_id, status__in=_ACTIVE
                    ).exists()
                ):
                    picked.append(job_id)
                if len(picked) >= room:
                    break
            rows.filter(id__in=picked, status=Status.PENDING).update(
                status=Status.PUBLISHED, published_at=now
            )
            to_publish += picked
    if not to_publish:
        return 0
    return _publish(account.tenant_id, to_publish)


def pump(*, account_id: int) -> int:
    """Hand the account's due rows to the outbound queue; how many were published."""
    account = InstagramAccount.objects.filter(pk=account_id).first()
    if account is None:
        return 0
    now = timezone.now()
    rows = OutboundJob.objects.filter(account_id=account_id)
    stale = now - timedelta(seconds=settings.OUTBOUND_REPUBLISH_AFTER)
    if not _postgresql():
        if account.status != InstagramAccount.Status.NEEDS_REAUTH:
            _settle_account_state(account)
        return _pump_portable(account, rows, now, stale)
    active = account.status == InstagramAccount.Status.ACTIVE
    if not active and account.status != InstagramAccount.Status.NEEDS_REAUTH:
        _settle_account_state(account)
    table = OutboundJob._meta.db_table
    tenant_id = account.tenant_id
    # Each step is one statement that picks its rows (skipping rows another relay or worker
    # holds) and changes them: an active account's held rows wait again, lost wake-ups are
    # stamped again, rows of dead workers are taken from them (the next worker looks at Meta
    # before sending; re-woken once per lease, so looked at, not hammered), and due heads of
    # threads turn ``published``. The first statement also counts the rows in flight (none of
    # its changes moves a row in or out of flight).
    # ``id = ANY(ARRAY(subquery))`` picks the rows once, before the update: as ``id IN
    # (subquery)`` the planner may instead walk every waiting row of the table and run the
    # locking subquery again for each of them, which under concurrent rounds never finishes.
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH released AS (
                UPDATE {table} SET status = %s, next_attempt_at = NULL
                WHERE tenant_id = %s AND account_id = %s AND status = %s AND %s
                RETURNING id
            ), lost AS (
                UPDATE {table} SET published_at = %s
                WHERE id = ANY(ARRAY(
                    SELECT id FROM {table}
                    WHERE tenant_id = %s AND account_id = %s AND status = %s
                    AND published_at < %s
                    FOR UPDATE SKIP LOCKED
                ))
                RETURNING id
            ), orphaned AS (
                UPDATE {table} SET claimed_by = '', lease_until = %s
                WHERE id = ANY(ARRAY(
                    SELECT id FROM {table}
                    WHERE tenant_id = %s AND account_id = %s AND status = %s
                    AND lease_until < %s
                    FOR UPDATE SKIP LOCKED
                ))
                RETURNING id
            )
            SELECT id, false FROM lost UNION ALL SELECT id, false FROM orphaned
            UNION ALL SELECT count(*), true FROM {table}
            WHERE tenant_id = %s AND account_id = %s AND status = ANY(%s)
            """,  # noqa: S608 - the table name is the model's own
            [
                Status.PENDING,
                tenant_id,
                account_id,
                Status.HELD,
                active,
                now,
                tenant_id,
                account_id,
                Status.PUBLISHED,
                stale,
                now + timedelta(seconds=settings.OUTBOUND_LEASE_SECONDS),
                tenant_id,
                account_id,
                Status.SENDING,
                now,
                tenant_id,
                account_id,
                _IN_FLIGHT,
            ],
        )
        found = cursor.fetchall()
    to_publish = sorted(value for value, is_count in found if not is_count)
    in_flight = sum(value for value, is_count in found if is_count)
    room = account_share() - in_flight
    if room > 0 and active:
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                UPDATE {table} SET status = %s, published_at = %s
                WHERE id = ANY(ARRAY(
                    SELECT j.id FROM {table} AS j
                    WHERE j.tenant_id = %s AND j.account_id = %s AND j.status = %s
                    AND (j.next_attempt_at IS NULL OR j.next_attempt_at <= %s)
                    AND NOT EXISTS (
                        SELECT 1 FROM {table} AS e
                        WHERE e.conversation_id = j.conversation_id AND e.id < j.id
                        AND e.status = ANY(%s)
                    )
                    ORDER BY j.id
                    LIMIT %s
                    FOR UPDATE SKIP LOCKED
                ))
                AND status = %s
                RETURNING id
                """,  # noqa: S608 - the table name is the model's own
                [
                    Status.PUBLISHED,
                    now,
                    tenant_id,
                    account_id,
                    Status.PENDING,
                    now,
                    _ACTIVE,
                    room,
                    Status.PENDING,
                ],
            )
            to_publish += sorted(row[0] for row in cursor.fetchall())
    if not to_publish:
        return 0
    return _publish(tenant_id, to_publish)


# -- the worker side: one row ------------------------------------------------------------------


def _pump_next_portable(job: OutboundJob) -> int:
    """``pump_next`` in plain statements, for a database that serialises its writers."""
    now = timezone.now()
    conversation_id = _id(job.conversation_id)
    # Called after commit too, where no scope is open: the row's own tenant, as the raw
    # statement of ``pump_next`` filters by it.
    with scope(tenant=job.tenant_id), transaction.atomic():
        head = (
            OutboundJob.objects.filter(
                tenant_id=job.tenant_id, conversation_id=conversation_id, status__in=_ACTIVE
            )
            .order_by("id")
            .first()
        )
        if (
            head is None
            or head.status != Status.PENDING
            or (head.next_attempt_at is not None and head.next_attempt_at > now)
            or OutboundJob.objects.filter(account_id=job.account_id, status__in=_IN_FLIGHT).count()
            >= account_share()
        ):
            return 0
        if not OutboundJob.objects.filter(pk=head.pk, status=Status.PENDING).update(
            status=Status.PUBLISHED, published_at=now
        ):
            return 0
    return _publish(job.tenant_id, [head.pk])


def pump_next(job: OutboundJob) -> int:
    """After a row: hand on the next row of its conversation, if the account has room.

    The cheap path that keeps a thread flowing (one statement); everything else waits for the
    relay's round. The thread's oldest unfinished row is published only while it is waiting and
    due, and only while the account has fewer rows in flight than its share.
    """
    if job.conversation_id is None:
        return 0
    if not _postgresql():
        return _pump_next_portable(job)
    table = OutboundJob._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE {table} SET status = %s, published_at = %s
            WHERE id = (
                SELECT id FROM {table}
                WHERE tenant_id = %s AND conversation_id = %s AND status = ANY(%s)
                ORDER BY id LIMIT 1
            )
            AND status = %s AND (next_attempt_at IS NULL OR next_attempt_at <= %s)
            AND (
                SELECT count(*) FROM {table}
                WHERE account_id = %s AND status = ANY(%s)
            ) < %s
            RETURNING id
            """,  # noqa: S608 - the table name is the model's own
            [
                Status.PUBLISHED,
                timezone.now(),
                job.tenant_id,
                job.conversation_id,
                _ACTIVE,
                Status.PENDING,
                timezone.now(),
                job.account_id,
                _IN_FLIGHT,
                account_share(),
            ],
        )
        row = cursor.fetchone()
    if row is None:
        return 0
    return _publish(job.tenant_id, [row[0]])


def _is_head(job: OutboundJob) -> bool:
    if job.conversation_id is None:
        return True
    return not OutboundJob.objects.filter(
        conversation_id=job.conversation_id, pk__lt=job.pk, status__in=_ACTIVE
    ).exists()


def _with_everything() -> QuerySet[OutboundJob]:
    """Rows with what a send reads: account (its stored token kept encrypted), conversation,
    contact and message, in one query."""
    return (
        OutboundJob.objects.select_related(
            "account", "conversation", "conversation__contact", "message"
        )
        .defer("account__access_token")
        .annotate(stored_token=Cast("account__access_token", TextField()))
    )


def _load_queryset(job_ids: list[int]) -> QuerySet[OutboundJob]:
    return _with_everything().filter(pk__in=job_ids).order_by("pk")


# ``_load``'s query joins five tables; building its SQL costs more CPU than running it, so
# it is built once per process with two stand-in values (one row's id and the workspace's id)
# and run with the real ones, its ``IN (one id)`` turned into ``= ANY(the ids)``; rows are
# turned into models as the ORM does it.
_STAND_IN_JOB = -770_000_000_001
_STAND_IN_TENANT = -770_000_000_002


@dataclass(frozen=True)
class _LoadPlan:
    db: str
    sql: str
    params: tuple[Any, ...]
    job_at: int
    tenant_at: int
    compiler: Any
    init_list: list[str]
    fields: tuple[int, int]
    populators: list[Any]
    annotations: dict[str, int]


_plans: dict[str, _LoadPlan | None] = {}


def _load_plan() -> _LoadPlan | None:
    if "load" in _plans:
        return _plans["load"]
    plan: _LoadPlan | None = None
    with scope(tenant=_STAND_IN_TENANT):
        queryset = _load_queryset([_STAND_IN_JOB])
        compiler = queryset.query.get_compiler(using=queryset.db)
        sql, params = compiler.as_sql()
    job_at = [i for i, v in enumerate(params) if v == _STAND_IN_JOB]
    tenant_at = [i for i, v in enumerate(params) if v == _STAND_IN_TENANT]
    pieces = sql.split("%s")
    if (
        len(job_at) == 1
        and len(tenant_at) == 1
        and len(pieces) == len(params) + 1
        and pieces[job_at[0]].endswith(" IN (")
        and pieces[job_at[0] + 1].startswith(")")
    ):
        at = job_at[0]
        pieces[at] = pieces[at].removesuffix(" IN (") + " = ANY("
        sql = "%s".join(pieces)
        select, klass_info = compiler.select, compiler.klass_info
        first, last = klass_info["select_fields"][0], klass_info["select_fields"][-1] + 1
        plan = _LoadPlan(
            db=queryset.db,
            sql=sql,
            params=tuple(params),
            job_at=job_at[0],
            tenant_at=tenant_at[0],
            compiler=compiler,
            init_list=[f[0].target.attname for f in select[first:last]],
            fields=(first, last),
            populators=get_related_populators(klass_info, select, queryset.db),
            annotations=dict(compiler.annotation_col_map or {}),
        )
    _plans["load"] = plan
    return plan


def _scope_tenant() -> int | None:
    current = get_scope()
    if not current.get("_enabled", True):
        return None
    value = current.get("tenant")
    if isinstance(value, Tenant):
        value = value.pk
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _load_rows(job_ids: list[int]) -> list[OutboundJob]:
    """The rows of ``job_ids`` in the current workspace, by id, as ``_load_queryset`` reads them."""
    plan = _load_plan()
    tenant_id = _scope_tenant()
    if plan is None or tenant_id is None:
        return list(_load_queryset(job_ids))
    params = list(plan.params)
    params[plan.job_at] = list(job_ids)
    params[plan.tenant_at] = tenant_id
    with connections[plan.db].cursor() as cursor:
        cursor.execute(plan.sql, params)
        rows = cursor.fetchall()
    if not rows:
        return []
    first, last = plan.fields
    jobs = []
    for row in plan.compiler.results_iter(results=[rows]):
        job = OutboundJob.from_db(plan.db, plan.init_list, row[first:last])
        for populator in plan.populators:
            populator.populate(row, job)
        for name, at in plan.annotations.items():
            setattr(job, name, row[at])
        jobs.append(job)
    return jobs


def _load_row(job_id: int) -> OutboundJob | None:
    rows = _load_rows([job_id])
    return rows[0] if rows else None


def _load(job_id: int) -> OutboundJob | None:
    """The row with everything a send reads, in one query: account (its stored token kept
    encrypted), conversation, contact and message."""
    job = _load_row(job_id)
    if job is None:
        return None
    return _link(job)


def _link(job: OutboundJob) -> OutboundJob:
    """Point the loaded objects at each other, so nothing is read twice."""
    job.account.stored_token = job.stored_token  # type: ignore[attr-defined]
    if job.conversation is not None:
        job.conversation.account = job.account
        if job.message is not None:
            job.message.conversation = job.conversation
    return job


# The end of both claiming statements: the row must head its thread (no older unfinished row
# of the conversation), and its message turns ``sending`` in the same statement. Parameters:
# the unfinished statuses, then the message's new and expected statuses.
_CLAIM_TAIL = """AND (j.conversation_id IS NULL OR NOT EXISTS (
                    SELECT 1 FROM {table} AS e
                    WHERE e.conversation_id = j.conversation_id AND e.id < j.id
                    AND e.status = ANY(%s)
                ))
                RETURNING j.id, j.message_id
            ), marked AS (
                UPDATE {messages} AS m SET status = %s
                FROM claimed WHERE m.id = claimed.message_id AND m.status = %s
                RETURNING m.id
            )"""


def _claim_tail() -> str:
    return _CLAIM_TAIL.format(table=OutboundJob._meta.db_table, messages=Message._meta.db_table)


def _claim_fast(job_id: int, me: str) -> tuple[OutboundJob | None, str]:
    """The common case in two statements: a waiting, due row at the head of its thread.

    The row is read, then taken by one conditional UPDATE that also checks nothing changed in
    between (status and counters as read); the message turns ``sending`` in the same statement.
    Anything else (a row in ``sending`` whose worker died, not due, not the head, gone) is left
    to ``_claim``.
    """
    if not _postgresql():
        return None, "slow"
    job = _load(job_id)
    if job is None or job.status not in (Status.PENDING, Status.PUBLISHED):
        return None, "slow"
    now = timezone.now()
    lease = now + timedelta(seconds=settings.OUTBOUND_LEASE_SECONDS)
    table = OutboundJob._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH claimed AS (
                UPDATE {table} AS j
                SET status = %s, claimed_by = %s, claimed_at = %s, lease_until = %s
                WHERE j.id = %s AND j.tenant_id = %s AND j.status = %s
                AND j.attempts = %s AND j.crashes = %s AND j.uncertain = %s
                AND (j.next_attempt_at IS NULL OR j.next_attempt_at <= %s)
                {_claim_tail()}
            SELECT (SELECT count(*) FROM claimed), (SELECT count(*) FROM marked)
            """,  # noqa: S608 - the table names are the models' own
            [
                Status.SENDING,
                me,
                now,
                lease,
                job.pk,
                job.tenant_id,
                job.status,
                job.attempts,
                job.crashes,
                job.uncertain,
                now,
                _ACTIVE,
                Message.Status.SENDING,
                Message.Status.QUEUED,
            ],
        )
        claimed, marked = cursor.fetchone()
    if not claimed:
        return None, "slow"
    job.status = Status.SENDING
    job.claimed_by = me
    job.claimed_at = now
    job.lease_until = lease
    if marked and job.message is not None:
        job.message.status = Message.Status.SENDING
    return job, "claimed"


def _claim(job_id: int, me: str) -> tuple[OutboundJob | None, str]:
    job, state = _claim_fast(job_id, me)
    if job is not None:
        return job, state
    return _claim_slow(job_id, me)


def _claim_slow(job_id: int, me: str) -> tuple[OutboundJob | None, str]:
    now = timezone.now()
    with transaction.atomic():
        job = (
            OutboundJob.objects.select_for_update(of=("self",))
            .select_related("account")
            .filter(pk=job_id)
            .first()
        )
        if job is None:
            return None, "gone"
        if job.status in OutboundJob.FINISHED:
            return None, str(job.status)
        if job.status == Status.HELD:
            return None, "held"
        if job.status == Status.SENDING:
            if not _claim_orphaned(job, now):
                return None, "busy"
            job.crashes += 1
            job.uncertain = True
        else:
            if job.next_attempt_at is not None and job.next_attempt_at > now:
                job.status = Status.PENDING
                job.save(update_fields=["status"])
                return None, "later"
            if not _is_head(job):
                job.status = Status.PENDING
                job.save(update_fields=["status"])
                return None, "waiting"
        job.status = Status.SENDING
        job.claimed_by = me
        job.claimed_at = now
        job.lease_until = now + timedelta(seconds=settings.OUTBOUND_LEASE_SECONDS)
        job.save(
            update_fields=[
                "status",
                "claimed_by",
                "claimed_at",
                "lease_until",
                "crashes",
                "uncertain",
            ]
        )
    if job.message_id is not None:
        Message.objects.filter(pk=job.message_id, status=Message.Status.QUEUED).update(
            status=Message.Status.SENDING
        )
    return job, "claimed"


def _renew_lease(job: OutboundJob, me: str) -> bool:
    """Still ours? Extend the lease and count the attempt, right before calling Meta."""
    return bool(
        OutboundJob.objects.filter(pk=job.pk, status=Status.SENDING, claimed_by=me).update(
            lease_until=timezone.now() + timedelta(seconds=settings.OUTBOUND_LEASE_SECONDS),
            attempts=F("attempts") + 1,
        )
    )


def _release(job: OutboundJob, *, delay: float, **fields: Any) -> None:
    """Back to the outbox, to be handed on again after ``delay`` seconds."""
    values = {
        "status": Status.PENDING,
        "next_attempt_at": timezone.now() + timedelta(seconds=max(delay, 0.0)),
        "claimed_by": "",
        "lease_until": None,
        **fields,
    }
    OutboundJob.objects.filter(pk=job.pk).update(**values)
    if job.message_id is not None:
        Message.objects.filter(pk=job.message_id, status=Message.Status.SENDING).update(
            status=Message.Status.QUEUED
        )


def _hold_account(account: InstagramAccount) -> None:
    """The token is dead: every unfinished row of the account waits for the reconnect."""
    OutboundJob.objects.filter(
        account=account, status__in=[Status.PENDING, Status.PUBLISHED, Status.SENDING]
    ).update(status=Status.HELD, claimed_by="", lease_until=None)


def _finish_failed(job: OutboundJob, *, code: str, message: str, dead: bool = False) -> None:
    now = timezone.now()
    with transaction.atomic():
        OutboundJob.objects.filter(pk=job.pk).update(
            status=Status.DEAD if dead else Status.FAILED,
            error_code=code[:64],
            error_message=message,
            finished_at=now,
            claimed_by="",
            lease_until=None,
        )
        if job.message_id is not None:
            Message.objects.filter(pk=job.message_id).update(
                status=Message.Status.FAILED, error_code=code[:64], error_message=message
            )
            failed = Message.objects.select_related("conversation").get(pk=job.message_id)
            partner_events.message_failed(message=failed)


def _attempt(job: OutboundJob, number: int, started: datetime, outcome: str, **extra: Any) -> None:
    SendAttempt.objects.create(
        tenant_id=job.tenant_id,
        job=job,
        number=number,
        started_at=started,
        duration_ms=int((timezone.now() - started).total_seconds() * 1000),
        outcome=outcome,
        **extra,
    )


def _note_send(account: InstagramAccount) -> None:
    last = account.last_send_at
    if last is None or timezone.now() - last > timedelta(seconds=10):
        accounts_onboarding.instagram_account_record_send(account=account)


def finish_sent(job: OutboundJob, *, mid: str | None, recipient_id: str | None = None) -> None:
    """Meta has the message: record its id and mark the row and the message sent."""
    now = timezone.now()
    with transaction.atomic():
        locked = OutboundJob.objects.select_for_update().select_related("account").get(pk=job.pk)
        if locked.status == Status.SENT and (locked.mid or not mid):
            return
        message: Message | None = None
        if locked.message_id is not None:
            message = Message.objects.select_for_update().get(pk=locked.message_id)
            message.status = Message.Status.SENT
            message.error_code = ""
            message.error_message = ""
            message.save(update_fields=["status", "error_code", "error_message"])
        elif locked.action == Action.PRIVATE_REPLY:
            message = _private_reply_record(locked, mid=mid, recipient_id=recipient_id, at=now)
        if message is not None and mid and message.mid != mid:
            message_assign_mid(message=message, mid=mid)
        if locked.action in (Action.REACT, Action.UNREACT):
            outbound_services.reaction_record(job=locked, at=now)
        if message is not None:
            partner_events.message_sent(message=message)
        locked.status = Status.SENT
        locked.mid = mid or locked.mid
        locked.sent_at = locked.sent_at or now
        locked.finished_at = now
        locked.error_code = ""
        locked.error_message = ""
        locked.claimed_by = ""
        locked.lease_until = None
        locked.uncertain = False
        if message is not None:
            locked.message = message
            locked.conversation_id = message.conversation_id
        locked.save()
    _note_send(job.account)


def _private_reply_record(
    job: OutboundJob, *, mid: str | None, recipient_id: str | None, at: datetime
) -> Message | None:
    """The comment is answered; the reply joins the commenter's thread once Meta names it."""
    comment = Comment.objects.select_for_update().get(pk=_id(job.comment_id))
    message = None
    if recipient_id:
        account = job.account
        contact, _ = contact_get_or_create(account=account, igsid=recipient_id)
        conversation = conversation_lock(account=account, contact=contact)
        payload = job.payload
        message = Message.objects.create(
            tenant_id=job.tenant_id,
            account=account,
            conversation=conversation,
            direction=Message.Direction.OUTBOUND,
            kind=Message.Kind.TEXT,
            text=clean_text(payload.get("text", "")),
            sender_kind={
                "agent": Message.SenderKind.AGENT,
                "automation": Message.SenderKind.AUTOMATION,
            }.get(job.sender_kind, Message.SenderKind.PARTNER),
            sender_user_id=payload.get("sender_user_id"),
            sender_label=clean_text(payload.get("sender_label", ""), max_length=120),
            sent_at=at,
            status=Message.Status.SENT,
        )
        if conversation.last_message_at is None or at > conversation.last_message_at:
            conversation.last_message_at = at
        conversation.save()
    comment.private_reply_at = at
    comment.private_reply = message
    comment.save(update_fields=["private_reply_at", "private_reply"])
    return message


def _call(client: AccountClient, job: OutboundJob, decision: policy.Decision) -> SendResult:
    payload = job.payload
    metadata = metadata_for(job.pk)
    if job.action == Action.PRIVATE_REPLY:
        comment = Comment.objects.get(pk=_id(job.comment_id))
        return client.send_private_reply(comment.comment_id, payload["text"])
    conversation = job.conversation
    if conversation is None:
        raise ValueError("this row names no conversation")
    igsid = conversation.contact.igsid
    if job.action == Action.REACT:
        return client.react(igsid, payload["message_mid"], payload.get("reaction") or "love")
    if job.action == Action.UNREACT:
        return client.unreact(igsid, payload["message_mid"])
    if job.action in (Action.TYPING_ON, Action.TYPING_OFF, Action.MARK_SEEN):
        return client.send_sender_action(igsid, job.action)  # type: ignore[arg-type]
    content = outbound_services.content_from_payload(payload)
    kind = content.policy_kind
    human = decision.human_agent
    reply_to = content.reply_to_mid or None
    if kind in (MessageKind.TEXT, MessageKind.QUICK_REPLIES):
        return client.send_text(
            igsid,
            content.text,
            quick_replies=[
                QuickReply(title=q.title, payload=q.payload) for q in content.quick_replies
            ],
            human_agent=human,
            reply_to_mid=reply_to,
            metadata=metadata,
        )
    if kind in outbound_services.MEDIA_KINDS:
        return client.send_attachment(
            igsid,
            kind.value,  # type: ignore[arg-type]
            url=content.url or None,
            attachment_id=content.attachment_id or None,
            human_agent=human,
            reply_to_mid=reply_to,
            metadata=metadata,
        )
    if kind == MessageKind.LIKE_HEART:
        return client.send_like_heart(igsid, human_agent=human, metadata=metadata)
    if kind == MessageKind.POST_SHARE:
        return client.send_media_share(
            igsid, content.media_id, human_agent=human, metadata=metadata
        )
    if kind == MessageKind.GENERIC_TEMPLATE:
        elements = [
            TemplateElement(
                title=card.title,
                subtitle=card.subtitle or None,
                image_url=card.image_url or None,
                default_action_url=card.default_action_url or None,
                buttons=tuple(
                    Button(
                        type=b.type,  # type: ignore[arg-type]
                        title=b.title,
                        url=b.url or None,
                        payload=b.payload or None,
                    )
                    for b in card.buttons
                ),
            )
            for card in content.elements
        ]
        return client.send_generic_template(igsid, elements, human_agent=human, metadata=metadata)
    raise ValueError(f"unknown message kind {kind!r}")


def _policy_kind(job: OutboundJob) -> MessageKind:
    if job.action == Action.PRIVATE_REPLY:
        return MessageKind.PRIVATE_REPLY
    if job.action in (Action.REACT, Action.UNREACT):
        return MessageKind.REACTION
    if job.action == Action.MARK_SEEN:
        return MessageKind.MARK_SEEN
    if job.action in (Action.TYPING_ON, Action.TYPING_OFF):
        return MessageKind.TYPING
    return outbound_services.content_from_payload(job.payload).policy_kind


def _recheck(job: OutboundJob) -> policy.Decision:
    """The policy again, at send time: a row may have waited past a window."""
    if job.action == Action.PRIVATE_REPLY:
        comment = Comment.objects.select_related("account").get(pk=_id(job.comment_id))
        return policy.check(
            conversation=None,
            sender=job.sender_kind,
            kind=MessageKind.PRIVATE_REPLY,
            account=job.account,
            comment=comment,
        )
    conversation = job.conversation
    if conversation is None or conversation.pk != job.conversation_id:
        conversation = Conversation.objects.select_related("account", "contact").get(
            pk=_id(job.conversation_id)
        )
        job.conversation = conversation
    # The window, the thread's owner and the account are decided afresh on the conversation
    # read with the row; the disclosure was settled when the row was written.
    return policy.check(
        conversation=conversation,
        sender=job.sender_kind,
        kind=_policy_kind(job),
        account=job.account,
        settings=policy.settings_for_sending(job.account),
        disclosure=False,
    )


def reconcile(job: OutboundJob, client: AccountClient) -> str | None:
    """Meta's id of this row's message if an earlier call delivered it, else None.

    The echo webhook (its ``metadata`` is the row's id) may have told us already; otherwise the
    thread is read through the Conversations API: a message from the business written after
    the row, not known as another of our messages, with the same text. A thread has one row in
    flight at a time, so the match cannot be a neighbour's.
    """
    job.refresh_from_db(fields=["mid"])
    if job.mid:
        return job.mid
    if job.action != Action.MESSAGE or job.conversation_id is None:
        return None
    conversation = Conversation.objects.select_related("contact").get(pk=job.conversation_id)
    igsid = conversation.contact.igsid
    meta_id = conversation.meta_conversation_id
    if not meta_id:
        found = client.find_conversation(igsid)
        if found is None:
            return None
        meta_id = found.id
        Conversation.objects.filter(pk=conversation.pk).update(meta_conversation_id=meta_id)
    page = client.conversation_messages(meta_id, fields="id,created_time,from,message")
    since = job.created_at - timedelta(seconds=settings.OUTBOUND_RECONCILE_SKEW)
    ids = [m.id for m in page.items]
    claimed = set(
        Message.objects.filter(account_id=job.account_id, mid__in=ids)
        .exclude(sender_kind=Message.SenderKind.EXTERNAL)
        .exclude(pk=job.message_id or 0)
        .values_list("mid", flat=True)
    )
    text = job.payload.get("text")
    for item in page.items:  # newest first
        if item.created_time is not None and item.created_time < since:
            break
        if item.sender is not None and item.sender.id == igsid:
            continue
        if item.id in claimed:
            continue
        if text and (item.text or "") != text:
            continue
        return item.id
    return None


def _reconcile_first(job: OutboundJob, client: AccountClient) -> str:
    """Settle an uncertain row before anything is sent again: sent, clear, or unknown."""
    try:
        mid = reconcile(job, client)
    except MetaAuthError:
        raise
    except MetaError as exc:
        logger.info("outbound %s: Meta could not be asked yet (%s)", job.pk, exc.reason)
        return "unknown"
    if mid:
        _attempt(job, job.attempts, timezone.now(), "reconciled")
        finish_sent(job, mid=mid)
        return "sent"
    OutboundJob.objects.filter(pk=job.pk).update(uncertain=False)
    job.uncertain = False
    return "clear"


def job_run(*, job_id: int) -> str:
    """Send one outbox row (the ``outbound.send`` task's body); a word saying what happened."""
    me = worker_identity()
    job, state = _claim(job_id, me)
    if job is None:
        return state
    try:
        return _work(job, me)
    except Exception:
        return _unexpected(job)
    finally:
        pump_next(job)


def _unexpected(job: OutboundJob) -> str:
    """A bug or an outage while sending a row: logged, and the row waits for a later try.
    Call it from an ``except`` block."""
    logger.exception("outbound %s failed unexpectedly", job.pk)
    _release(job, delay=backoff_delay(job.attempts + 1))
    return "error"


def _ready(job: OutboundJob) -> str | tuple[AccountClient, policy.Decision]:
    """Everything decided before the budget is asked: the account's state, an uncertain row
    settled with Meta, the crash count, the policy again. A word when the row is done with for
    now, else the client and the decision to send with."""
    account = job.account
    if account.status == InstagramAccount.Status.NEEDS_REAUTH:
        _hold_account(account)
        return "held"
    if account.status == InstagramAccount.Status.DISCONNECTED:
        _finish_failed(
            job,
            code="account_disconnected",
            message="The Instagram account was disconnected before this could be sent.",
        )
        return "failed"
    client = _account_client(account)
    if job.uncertain:
        try:
            settled = _reconcile_first(job, client)
        except MetaAuthError as exc:
            accounts_onboarding.instagram_account_mark_needs_reauth(account=account, error=exc)
            _hold_account(account)
            return "held"
        if settled == "sent":
            return "reconciled"
        if settled == "unknown":
            _release(job, delay=settings.OUTBOUND_RECONCILE_RETRY)
            return "unknown"
    if job.crashes >= settings.OUTBOUND_MAX_CRASHES:
        _finish_failed(
            job,
            code="worker_crashed",
            message=(
                f"Sending this stopped the sending worker {job.crashes} times; it was put aside "
                "so other messages keep flowing. Retry it, or contact support if it happens again."
            ),
            dead=True,
        )
        return "dead"
    decision = _recheck(job)
    if not decision.allowed:
        _finish_failed(job, code=decision.code, message=decision.message)
        return "refused"
    return client, decision


def _work(job: OutboundJob, me: str) -> str:
    ready = _ready(job)
    if isinstance(ready, str):
        return ready
    client, decision = ready
    return _send_one(job, me, client, decision)


def _send_one(job: OutboundJob, me: str, client: AccountClient, decision: policy.Decision) -> str:
    """Budget, lease, the call to Meta and its outcome, for one claimed and checked row."""
    grant = ratelimit.acquire(
        job.account.pk, bucket_for(job), max_wait=settings.OUTBOUND_TOKEN_MAX_WAIT
    )
    if not grant.granted:
        _release(job, delay=grant.wait)
        return "paused" if grant.paused else "throttled"
    answered: float | None = None
    try:
        if not _renew_lease(job, me):
            return "lost"
        number = job.attempts + 1
        job.attempts = number
        started = timezone.now()
        try:
            if job.take_control or decision.take_control:
                _take_control(client, job)
            try:
                result = _call(client, job, decision)
            finally:
                answered = time.monotonic()
        except (MetaError, ValueError) as exc:
            return _settle_error(job, exc, number=number, started=started, client=client)
        return _settle_sent(job, me, result, number=number, started=started)
    finally:
        ratelimit.ended(job.account.pk, bucket_for(job), {grant.slot: answered})


def _settle_sent(
    job: OutboundJob, me: str, result: SendResult, *, number: int, started: datetime
) -> str:
    if not _finish_sent_fast(job, me, mid=result.message_id, number=number, started=started):
        _attempt(job, number, started, "sent")
        finish_sent(job, mid=result.message_id, recipient_id=result.recipient_id)
    return "sent"


def _settle_error(
    job: OutboundJob,
    exc: MetaError | ValueError,
    *,
    number: int,
    started: datetime,
    client: AccountClient,
) -> str:
    """What a failed call to Meta leaves: a pause, a hold, a retry later, or a readable end."""
    account = job.account
    if isinstance(exc, MetaRateLimitError):
        _attempt(job, number, started, "rate_limited", error_code=exc.reason, meta_code=exc.code)
        pause = min(
            exc.retry_after or settings.OUTBOUND_RATE_LIMIT_PAUSE,
            settings.OUTBOUND_RATE_LIMIT_PAUSE_MAX,
        )
        ratelimit.pause(account.pk, pause)
        # A rate limit is not the message's fault: the attempt is given back.
        _release(job, delay=pause, attempts=F("attempts") - 1)
        OutboundJob.objects.filter(
            account=account, status=Status.PENDING, next_attempt_at__isnull=True
        ).update(next_attempt_at=timezone.now() + timedelta(seconds=pause))
        return "rate_limited"
    if isinstance(exc, MetaAuthError):
        _attempt(job, number, started, "auth", error_code=exc.reason, meta_code=exc.code)
        OutboundJob.objects.filter(pk=job.pk).update(
            attempts=F("attempts") - 1, error_code=exc.reason, error_message=exc.user_message
        )
        accounts_onboarding.instagram_account_mark_needs_reauth(account=account, error=exc)
        _hold_account(account)
        return "held"
    if isinstance(exc, MetaTransientError):
        _attempt(job, number, started, "transient", error_code=exc.reason, meta_code=exc.code)
        if exc.may_have_succeeded:
            OutboundJob.objects.filter(pk=job.pk).update(uncertain=True)
            job.uncertain = True
        if number >= settings.OUTBOUND_MAX_ATTEMPTS:
            if job.uncertain and _reconcile_first(job, client) == "sent":
                return "reconciled"
            _finish_failed(
                job,
                code=exc.reason,
                message=f"{exc.user_message} It failed {number} times; it was given up.",
                dead=True,
            )
            accounts_onboarding.instagram_account_record_error(account=account, error=exc)
            return "dead"
        _release(
            job,
            delay=backoff_delay(number),
            error_code=exc.reason,
            error_message=exc.user_message,
        )
        return "retry"
    if isinstance(exc, MetaError):
        _attempt(job, number, started, "failed", error_code=exc.reason, meta_code=exc.code)
        if (
            job.action == Action.PRIVATE_REPLY
            and exc.reason == Reason.ALREADY_REPLIED
            and (job.crashes or number > 1)
        ):
            # An earlier call that we lost track of answered the comment.
            finish_sent(job, mid=None)
            return "reconciled"
        if (
            exc.reason in (Reason.NOT_THREAD_OWNER, Reason.THREAD_OWNED_BY_OTHER_APP)
            and job.conversation_id is not None
        ):
            Conversation.objects.filter(pk=job.conversation_id).update(owned_by_other_app=True)
        _finish_failed(job, code=exc.reason, message=exc.user_message)
        accounts_onboarding.instagram_account_record_error(account=account, error=exc)
        return "failed"
    _attempt(job, number, started, "failed", error_code="invalid_message")
    _finish_failed(job, code="invalid_message", message=f"This message can't be sent: {exc}.")
    return "failed"


class _NotOurs(Exception):
    pass


def _finish_sent_fast(
    job: OutboundJob, me: str, *, mid: str | None, number: int, started: datetime
) -> bool:
    """The common end of a message send in one transaction: row, message and attempt written,
    the partner event emitted. False (nothing written) leaves it to ``finish_sent``: the row is
    no longer ours, or an echo already stored a message under this id."""
    message = job.message
    if job.action != Action.MESSAGE or message is None or not mid:
        return False
    try:
        clean = clean_mid(mid)
    except ValueError:
        return False
    now = timezone.now()
    try:
        with transaction.atomic():
            if not OutboundJob.objects.filter(
                pk=job.pk, status=Status.SENDING, claimed_by=me
            ).update(
                status=Status.SENT,
                mid=mid,
                sent_at=Coalesce("sent_at", Value(now)),
                finished_at=now,
                error_code="",
                error_message="",
                claimed_by="",
                lease_until=None,
                uncertain=False,
            ):
                raise _NotOurs
            Message.objects.filter(pk=message.pk).update(
                status=Message.Status.SENT, error_code="", error_message="", mid=clean
            )
            _attempt(job, number, started, "sent")
            message.status = Message.Status.SENT
            message.error_code = ""
            message.error_message = ""
            message.mid = clean
            partner_events.message_sent(message=message)
    except (_NotOurs, IntegrityError):
        message.refresh_from_db()
        return False
    job.status = Status.SENT
    job.mid = mid
    _note_send(job.account)
    return True


def _take_control(client: AccountClient, job: OutboundJob) -> None:
    conversation = job.conversation
    if conversation is None:
        return
    client.take_thread_control(conversation.contact.igsid, metadata="An agent is answering")
    Conversation.objects.filter(pk=conversation.pk).update(owned_by_other_app=False)


# -- the worker side: a batch of rows ----------------------------------------------------------
#
# A worker handed several rows of one account claims them in one statement, reads them in one
# query, asks the account's budget once for all of them, sends them to Meta side by side on the
# process's call threads, and writes the sent ones in one transaction: the same states, leases
# and checks as one row at a time, with a fraction of the statements. Anything uncommon (a row
# another worker holds, one to reconcile, a reaction, a private reply, a media send, a call
# that failed) takes the one-row path.

_call_pools: dict[str, ThreadPoolExecutor] = {}
_call_pools_lock = threading.Lock()


def _call_pool() -> ThreadPoolExecutor:
    """The process's threads for calls to Meta (made lazily, so a forked worker has its own).
    They never touch the database: everything a call needs is read before it is handed over."""
    pool = _call_pools.get("pool")
    if pool is None:
        with _call_pools_lock:
            pool = _call_pools.get("pool")
            if pool is None:
                pool = ThreadPoolExecutor(
                    max_workers=max(1, int(settings.OUTBOUND_CALL_THREADS)),
                    thread_name_prefix="meta-call",
                )
                _call_pools["pool"] = pool
    return pool


def _call_on_pool(flight: _Flight) -> SendResult:
    """``_call`` on a call thread: the same account through that thread's own session. When
    the answer came back is noted for the send budget."""
    try:
        return _call(flight.client.rebound(meta_client()), flight.job, flight.decision)
    finally:
        flight.answered = time.monotonic()


def _batchable(job: OutboundJob) -> bool:
    """A plain message of an active account, nothing to settle first: the common case."""
    return (
        job.action == Action.MESSAGE
        and job.message is not None
        and job.conversation is not None
        and not job.uncertain
        and not job.take_control
        and job.crashes < settings.OUTBOUND_MAX_CRASHES
        and job.account.status == InstagramAccount.Status.ACTIVE
        and bucket_for(job) == ratelimit.TEXT
    )


def _claim_many(job_ids: list[int], me: str, tenant_id: int) -> list[int]:
    """Claim every waiting, due row at the head of its thread among ``job_ids``, in one
    statement; rows another worker or the relay holds are skipped, not waited for."""
    now = timezone.now()
    table = OutboundJob._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH claimed AS (
                UPDATE {table} AS j
                SET status = %s, claimed_by = %s, claimed_at = %s, lease_until = %s
                WHERE j.id = ANY(ARRAY(
                    SELECT id FROM {table}
                    WHERE id = ANY(%s) AND tenant_id = %s
                    ORDER BY id
                    FOR UPDATE SKIP LOCKED
                ))
                AND j.status = ANY(%s)
                AND (j.next_attempt_at IS NULL OR j.next_attempt_at <= %s)
                {_claim_tail()}
            SELECT id FROM claimed
            """,  # noqa: S608 - the table names are the models' own
            [
                Status.SENDING,
                me,
                now,
                now + timedelta(seconds=settings.OUTBOUND_LEASE_SECONDS),
                job_ids,
                tenant_id,
                [Status.PENDING, Status.PUBLISHED],
                now,
                _ACTIVE,
                Message.Status.SENDING,
                Message.Status.QUEUED,
            ],
        )
        return sorted(row[0] for row in cursor.fetchall())


def _load_many(job_ids: list[int]) -> list[OutboundJob]:
    return [_link(job) for job in _load_rows(job_ids)]


def _renew_many(jobs: list[OutboundJob], me: str, tenant_id: int) -> set[int]:
    """``_renew_lease`` for several rows in one statement: the ones still ours."""
    table = OutboundJob._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE {table} SET lease_until = %s, attempts = attempts + 1
            WHERE id = ANY(%s) AND tenant_id = %s AND status = %s AND claimed_by = %s
            RETURNING id
            """,  # noqa: S608 - the table name is the model's own
            [
                timezone.now() + timedelta(seconds=settings.OUTBOUND_LEASE_SECONDS),
                [job.pk for job in jobs],
                tenant_id,
                Status.SENDING,
                me,
            ],
        )
        return {row[0] for row in cursor.fetchall()}


@dataclass
class _Flight:
    job: OutboundJob
    client: AccountClient
    decision: policy.Decision
    number: int = 0
    started: datetime = field(default_factory=timezone.now)
    future: Future[SendResult] | None = None
    slot: str = ""  # the send budget's name for this call
    answered: float | None = None  # time.monotonic() when Meta's answer came back


def _budget_ended(account_id: int, flights: list[_Flight], *, settled: bool) -> None:
    """Tell the send budget when the calls of ``flights`` were answered, for the ones that have
    been (all of them once ``settled``: a call never made gives its slot back)."""
    done = {}
    for flight in flights:
        if flight.slot and (settled or flight.answered is not None):
            done[flight.slot] = flight.answered
            flight.slot = ""
    ratelimit.ended(account_id, ratelimit.TEXT, done)


def _send_together(flights: list[_Flight], me: str, tenant_id: int) -> Counter[str]:
    """One account's checked rows: budget, lease and calls in waves, then their outcomes."""
    outcomes: Counter[str] = Counter()
    account_id = flights[0].job.account_id
    waiting = list(flights)
    flying: list[_Flight] = []
    deadline = time.monotonic() + settings.OUTBOUND_TOKEN_MAX_WAIT
    pool = _call_pool()
    granted: list[_Flight] = []
    while waiting:
        # Calls answered since the last wave leave room in the budget a window after.
        _budget_ended(account_id, granted, settled=False)
        grants = ratelimit.take(account_id, ratelimit.TEXT, len(waiting))
        wave, waiting = waiting[: grants.granted], waiting[grants.granted :]
        for flight, slot in zip(wave, grants.slots, strict=False):
            flight.slot = slot
        granted += wave
        if wave:
            live = _renew_many([f.job for f in wave], me, tenant_id)
            for flight in wave:
                if flight.job.pk not in live:
                    outcomes["lost"] += 1
                    continue
                flight.job.attempts += 1
                flight.number = flight.job.attempts
                flight.started = timezone.now()
                flight.future = pool.submit(_call_on_pool, flight)
                flying.append(flight)
        if not waiting:
            break
        if grants.paused or time.monotonic() + grants.wait > deadline:
            for flight in waiting:
                _release(flight.job, delay=grants.wait)
                outcomes["paused" if grants.paused else "throttled"] += 1
            break
        time.sleep(grants.wait)
    all_done([flight.future for flight in flying if flight.future is not None])
    _budget_ended(account_id, granted, settled=True)
    answered: list[tuple[_Flight, SendResult]] = []
    for flight in flying:
        if flight.future is None:
            continue
        try:
            result = flight.future.result()
        except (MetaError, ValueError) as exc:
            outcomes[
                _settle_error(
                    flight.job,
                    exc,
                    number=flight.number,
                    started=flight.started,
                    client=flight.client,
                )
            ] += 1
            continue
        except Exception:
            outcomes[_unexpected(flight.job)] += 1
            continue
        answered.append((flight, result))
    outcomes.update(_finish_many(answered, me, tenant_id))
    return outcomes


def _finish_many(
    answered: list[tuple[_Flight, SendResult]], me: str, tenant_id: int
) -> Counter[str]:
    """``_finish_sent_fast`` for several rows: rows, messages and attempts in one transaction.
    A row no longer ours, an answer without a usable id, or an id an echo already stored goes
    the one-row way."""
    outcomes: Counter[str] = Counter()
    together: list[tuple[_Flight, SendResult, str]] = []
    alone: list[tuple[_Flight, SendResult]] = []
    for flight, result in answered:
        try:
            clean = clean_mid(result.message_id) if result.message_id else ""
        except ValueError:
            clean = ""
        if clean:
            together.append((flight, result, clean))
        else:
            alone.append((flight, result))
    finished: set[int] = set()
    if together:
        now = timezone.now()
        try:
            with transaction.atomic():
                finished = _mark_sent_many(together, me, tenant_id, now)
                ours = [row for row in together if row[0].job.pk in finished]
                SendAttempt.objects.bulk_create(
                    [
                        SendAttempt(
                            tenant_id=flight.job.tenant_id,
                            job=flight.job,
                            number=flight.number,
                            started_at=flight.started,
                            duration_ms=int((now - (flight.started or now)).total_seconds() * 1000),
                            outcome="sent",
                        )
                        for flight, _, _ in ours
                    ]
                )
                for flight, _, clean in ours:
                    message = flight.job.message
                    if message is not None:
                        message.status = Message.Status.SENT
                        message.error_code = ""
                        message.error_message = ""
                        message.mid = clean
                        partner_events.message_sent(message=message)
        except IntegrityError:
            # An echo stored one of these messages under its id first: each row alone.
            finished = set()
            for flight, _, _ in together:
                if flight.job.message is not None:
                    flight.job.message.refresh_from_db()
        for flight, result, _ in together:
            if flight.job.pk in finished:
                flight.job.status = Status.SENT
                flight.job.mid = result.message_id or ""
                outcomes["sent"] += 1
            else:
                alone.append((flight, result))
        noted = {flight.job.account_id: flight.job.account for flight, _, _ in together}
        for account in noted.values():
            _note_send(account)
    for flight, result in alone:
        outcomes[
            _settle_sent(flight.job, me, result, number=flight.number, started=flight.started)
        ] += 1
    return outcomes


def _mark_sent_many(
    rows: list[tuple[_Flight, SendResult, str]], me: str, tenant_id: int, now: datetime
) -> set[int]:
    jobs = OutboundJob._meta.db_table
    messages = Message._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH v AS (
                SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::text[], %s::text[])
                AS v(job_id, message_id, mid, clean)
            ), done AS (
                UPDATE {jobs} AS j
                SET status = %s, mid = v.mid, sent_at = COALESCE(j.sent_at, %s),
                    finished_at = %s, error_code = '', error_message = '', claimed_by = '',
                    lease_until = NULL, uncertain = false
                FROM v
                WHERE j.id = v.job_id AND j.tenant_id = %s AND j.status = %s
                AND j.claimed_by = %s
                RETURNING j.id, v.message_id, v.clean
            ), marked AS (
                UPDATE {messages} AS m
                SET status = %s, error_code = '', error_message = '', mid = done.clean
                FROM done WHERE m.id = done.message_id AND m.tenant_id = %s
                RETURNING m.id
            )
            SELECT id FROM done
            """,  # noqa: S608 - the table names are the models' own
            [
                [flight.job.pk for flight, _, _ in rows],
                [flight.job.message_id for flight, _, _ in rows],
                [result.message_id for _, result, _ in rows],
                [clean for _, _, clean in rows],
                Status.SENT,
                now,
                now,
                tenant_id,
                Status.SENDING,
                me,
                Message.Status.SENT,
                tenant_id,
            ],
        )
        return {row[0] for row in cursor.fetchall()}


def _guarded(job: OutboundJob, step: Callable[[], str]) -> str:
    """One claimed row the one-row way, as ``job_run`` does it after its claim."""
    try:
        return step()
    except Exception:
        return _unexpected(job)


def batch_run(*, job_ids: list[int]) -> dict[str, int]:
    """Send several rows of one account (the ``outbound.send_batch`` task's body); how many
    rows ended each way. Safe to run any number of times, like ``job_run``."""
    ids = sorted(set(job_ids))
    outcomes: Counter[str] = Counter()
    tenant_id = _scope_tenant()
    if tenant_id is None or not _postgresql():
        for job_id in ids:
            outcomes[job_run(job_id=job_id)] += 1
        return dict(outcomes)
    me = worker_identity()
    claimed = _claim_many(ids, me, tenant_id)
    for job_id in ids:
        if job_id not in claimed:
            # Held by another worker, to be reconciled, not due, not the head: the one-row way.
            outcomes[job_run(job_id=job_id)] += 1
    jobs = _load_many(claimed) if claimed else []
    try:
        together: dict[int, list[_Flight]] = {}
        for job in jobs:
            if not _batchable(job):
                outcomes[_guarded(job, partial(_work, job, me))] += 1
                continue
            try:
                ready = _ready(job)
            except Exception:
                outcomes[_unexpected(job)] += 1
                continue
            if isinstance(ready, str):
                outcomes[ready] += 1
                continue
            client, decision = ready
            if decision.take_control:
                outcomes[_guarded(job, partial(_send_one, job, me, client, decision))] += 1
                continue
            together.setdefault(job.account_id, []).append(_Flight(job, client, decision))
        for flights in together.values():
            outcomes.update(_send_together(flights, me, tenant_id))
    finally:
        for account_id in sorted({job.account_id for job in jobs}):
            try:
                pump(account_id=account_id)
            except Exception:
                logger.warning("outbound: account %s not pumped", account_id, exc_info=True)
    return dict(outcomes)


# -- echoes ------------------------------------------------------------------------------------


def echo_received(*, account: InstagramAccount, mid: str, metadata: str | None) -> bool:
    """The echo of one of our sends (its ``metadata`` names the row): match it, never store it
    twice. True when it belonged to a row."""
    job_id = job_id_from_metadata(metadata)
    if job_id is None:
        return False
    job = OutboundJob.objects.filter(pk=job_id, account=account).first()
    if job is None:
        return False
    if job.status == Status.SENT and job.mid:
        return True
    OutboundJob.objects.filter(pk=job.pk, mid="").update(mid=mid)
    if job.status == Status.SENDING and job.uncertain:
        # A worker died after Meta took the message: the echo settles it.
        finish_sent(job, mid=mid)
    elif job.message_id is not None:
        message = Message.objects.filter(pk=job.message_id).first()
        if message is not None and not message.mid:
            message_assign_mid(message=message, mid=mid)
    return True
