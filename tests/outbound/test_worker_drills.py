"""Reliability drills with real processes: an outbound worker (thread pool) and the relay.

CI sizes here keep the file near eight minutes (the 2,000-send rate test, the 20-account
fairness test and the poison-send test are the long ones); ``OUTBOUND_LONG=1`` runs the
RELIABILITY.md sizes (1,000 sends under repeated kills, 1,000 in one thread, ...).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import redis
from django.conf import settings

from integrations.meta.sandbox.testing import RunningSandbox
from messaging.models import Conversation, Message, OutboundJob, SendAttempt
from messaging.services import outbound
from messaging.services.outbound import OutboundContent, Sender
from tests.outbound.conftest import (
    LONG,
    RELAY_COMMAND,
    Proc,
    World,
    add_conversation,
    customers,
    process_env,
    worker_command,
)

pytestmark = pytest.mark.django_db(transaction=True)


def wait_until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.2)


def sent_texts(sandbox: RunningSandbox, prefix: str = "") -> list[str]:
    """Texts the business sent, oldest first (the default world's own sends left out)."""
    with sandbox.sandbox.lock:
        return [
            m.text or ""
            for m in sandbox.sandbox.world.messages.values()
            if m.direction == "out"
            and (m.text or "").startswith(prefix)
            and m.app_id
            and not (m.text or "").startswith("Anytime")
        ]


def queue(conversations: list[Conversation], n: int, prefix: str) -> list[Message]:
    sender = Sender.automation("drill")
    out = []
    for i in range(n):
        conversation = conversations[i % len(conversations)]
        out.append(
            outbound.message_send(
                conversation=conversation,
                sender=sender,
                content=OutboundContent(kind="text", text=f"{prefix} {i}"),
            )
        )
    return out


def start_all(
    processes: Callable[..., Proc], sandbox: RunningSandbox, workers: int = 1, **extra: Any
) -> tuple[Proc, Proc]:
    env = process_env(sandbox, **extra)
    worker = processes(worker_command(), env, "worker")
    for n in range(1, workers):
        processes(worker_command(), env, f"worker{n}")
    relay = processes(RELAY_COMMAND, env, "relay")
    return worker, relay


def _no_disclosure(world: World) -> None:
    outbound.messaging_settings_update(tenant_id=world.tenant.pk, disclosure_mode="never")


def test_2000_sends_at_the_configured_rate_without_rate_limit_errors(
    world: World, sandbox: RunningSandbox, processes: Callable[..., Proc]
) -> None:
    """D5 (the account's rate, first half) and acceptance 3 of the outbound issue: 2,000 sends
    for one account at the configured rate (production's 80 text sends/s), at least 90 % of
    it, 0 rate-limit errors from Meta. D11's throughput at 200 ms latency is bench/outbound.py.
    Workers send an account's rows in batches; before they did, two workers managed about
    35 sends/s on this 2-core box and this ran at 25/s."""
    rate = int(os.environ.get("DRILL_RATE", str(settings.OUTBOUND_RATE_LIMITS["text"][0])))
    total = int(os.environ.get("DRILL_TOTAL", "2000"))
    _no_disclosure(world)
    conversations = customers(sandbox, world, 50)
    queue(conversations, total, "rate")
    started = time.monotonic()
    start_all(processes, sandbox, workers=2, OUTBOUND_RATE_TEXT=rate)
    wait_until(lambda: OutboundJob.objects.filter(status="sent").count() == total, 180, "all sent")
    first, last = (
        OutboundJob.objects.order_by("sent_at").values_list("sent_at", flat=True)[i]
        for i in (0, total - 1)
    )
    achieved = (total - 1) / (last - first).total_seconds()
    if os.environ.get("DRILL_DEBUG"):
        from django.db.models import Avg

        print(SendAttempt.objects.aggregate(Avg("duration_ms")))
        for job in OutboundJob.objects.order_by("sent_at")[:: max(1, total // 10)]:
            print(
                job.pk,
                job.conversation_id,
                job.published_at - job.created_at,
                job.claimed_at - job.published_at,
                job.sent_at - job.claimed_at,
            )
    print(
        f"\n{total} sends: {achieved:.1f}/s at a configured {rate}/s "
        f"({time.monotonic() - started:.0f} s with start-up)"
    )
    assert achieved >= 0.9 * rate
    assert not SendAttempt.objects.exclude(outcome="sent").exists()
    assert len(sent_texts(sandbox)) == total


def test_a_light_account_never_waits_behind_a_busy_one(
    world: World, sandbox: RunningSandbox, processes: Callable[..., Proc]
) -> None:
    """D5 (second half): a light account's p95 queue wait < 1 s while a busy one is saturated."""
    _no_disclosure(world)
    busy = customers(sandbox, world, 30)
    queue(busy, 1200, "busy")
    start_all(processes, sandbox, workers=2, OUTBOUND_RATE_TEXT=20)
    wait_until(lambda: OutboundJob.objects.filter(status="sent").count() > 100, 60, "busy flowing")
    light = customers(sandbox, world, 5, account="bella.boutique")
    waits = []
    for i in range(20):
        message = queue([light[i % 5]], 1, f"light {i}")[0]
        job = wait_until(
            lambda m=message: OutboundJob.objects.filter(message=m, status="sent").first(),
            20,
            "light sent",
        )
        waits.append((job.sent_at - job.created_at).total_seconds())
        time.sleep(0.1)
    waits.sort()
    p95 = waits[int(len(waits) * 0.95) - 1]
    pending_busy = OutboundJob.objects.filter(account=world.acme).exclude(status="sent").count()
    print(
        f"\nlight account queue wait p50 {waits[10]:.3f} s, p95 {p95:.3f} s "
        f"while {pending_busy} busy sends still waited"
    )
    assert pending_busy > 0, "the busy account must still be saturated"
    assert p95 < 1.0


def test_kill_9_of_the_worker_loses_and_duplicates_nothing(
    world: World, sandbox: RunningSandbox, processes: Callable[..., Proc]
) -> None:
    """D1: kill -9 of the whole worker (main and children) while sends are in flight, then a
    restart: every send delivered, 0 duplicates at Meta (outbox reconciliation). CI: 500 sends,
    2 kills; ``OUTBOUND_LONG=1``: RELIABILITY's 1,000 sends and 5 kills."""
    total, kills = (1000, 5) if LONG else (500, 2)
    _no_disclosure(world)
    sandbox.control("POST", "settings", {"latency_ms": 100})
    conversations = customers(sandbox, world, 40)
    queue(conversations, total, "kill")
    worker, _ = start_all(processes, sandbox, OUTBOUND_RATE_TEXT=80)
    for k in range(kills):
        target = total * (k + 1) // (kills + 2)
        wait_until(
            lambda t=target: OutboundJob.objects.filter(status="sent").count() >= t, 120, "progress"
        )
        worker.kill_group()
        worker.start()
    wait_until(lambda: OutboundJob.objects.filter(status="sent").count() == total, 180, "all sent")
    texts = sent_texts(sandbox, "kill ")
    duplicates = {t for t in texts if texts.count(t) > 1}
    reconciled = SendAttempt.objects.filter(outcome="reconciled").count()
    print(f"\n{total} sends, {kills} kills: {len(texts)} received, {reconciled} reconciled")
    assert duplicates == set()
    assert sorted(texts) == sorted(f"kill {i}" for i in range(total))


def test_rollback_sends_nothing_and_a_commit_without_relay_is_sent_later(
    world: World, sandbox: RunningSandbox, processes: Callable[..., Proc]
) -> None:
    """D3: (a) a reply created in a transaction that rolls back is never sent; (b)/(c) replies
    committed while nothing could publish (web process gone, broker down) are sent by the
    outbox relay within 60 s of it running; 0 lost."""
    from django.db import transaction

    _no_disclosure(world)
    alice = world.conversation("alice")

    class Boom(Exception):
        pass

    def rolled_back() -> None:
        with transaction.atomic():
            queue([alice], 3, "rolled back")
            raise Boom

    with pytest.raises(Boom):
        rolled_back()
    # Committed while nothing could publish (no relay, no worker: as with the broker down).
    queue([alice], 3, "committed")
    time.sleep(1)
    started = time.monotonic()
    start_all(processes, sandbox)
    wait_until(lambda: OutboundJob.objects.filter(status="sent").count() == 3, 60, "sent")
    assert time.monotonic() - started < 60
    assert sorted(sent_texts(sandbox, "committed")) == ["committed 0", "committed 1", "committed 2"]


def test_flushing_the_broker_loses_nothing(
    world: World, sandbox: RunningSandbox, processes: Callable[..., Proc]
) -> None:
    """D8: Redis loses every queued job (500 queued); the outbox relay re-publishes and
    500/500 are delivered with 0 duplicates."""
    total = 500
    _no_disclosure(world)
    conversations = customers(sandbox, world, 50)
    env = process_env(sandbox, OUTBOUND_RATE_TEXT=200)
    relay = processes(RELAY_COMMAND, env, "relay")
    queue(conversations, total, "flush")
    wait_until(
        lambda: OutboundJob.objects.filter(status="published").count() >= 20, 30, "published"
    )
    # Redis restarted without persistence: this run's broker keys are gone.
    prefix = settings.CELERY_BROKER_TRANSPORT_OPTIONS["global_keyprefix"]
    client = redis.Redis.from_url(settings.REDIS_URL)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    processes(worker_command(), env, "worker")
    wait_until(lambda: OutboundJob.objects.filter(status="sent").count() == total, 120, "all sent")
    texts = sent_texts(sandbox, "flush ")
    assert sorted(texts) == sorted(f"flush {i}" for i in range(total))
    relay.stop()


def test_order_in_one_thread_survives_transient_failures(
    world: World, sandbox: RunningSandbox, processes: Callable[..., Proc]
) -> None:
    """D6: replies to one conversation with 10 % transient failures reach Meta in order (0
    inversions). CI: 60 replies; ``OUTBOUND_LONG=1``: 1,000."""
    total = 1000 if LONG else 60
    _no_disclosure(world)
    alice = world.conversation("alice")
    queue([alice], total, "order")
    # Every tenth call fails with a passing error (10 %, spread over the run).
    sandbox.fault(kind="5xx", status=503, count=total // 10, every=10, match="/messages")
    start_all(processes, sandbox)
    # One thread is sent strictly one reply after another: the wait grows with the size.
    wait_until(
        lambda: OutboundJob.objects.filter(status="sent").count() == total,
        max(180, total * 0.6),
        "sent",
    )
    texts = sent_texts(sandbox, "order ")
    assert texts == [f"order {i}" for i in range(total)]
    assert SendAttempt.objects.filter(outcome="transient").count() == total // 10


def test_no_countdown_or_eta_anywhere_reaches_the_visibility_timeout() -> None:
    """D7: delays wait in the database; nothing asks the broker to hold a task for long."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    visibility = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout", 3600)
    offenders = []
    for path in root.rglob("*.py"):
        rel = path.relative_to(root).as_posix()
        if rel.startswith((".venv/", "tests/", "var/")):
            continue
        source = path.read_text(encoding="utf-8")
        for match in re.finditer(r"\b(countdown|eta)\s*=\s*([^,)\n]+)", source):
            value = match.group(2).strip()
            if value.replace(".", "").isdigit() and float(value) >= visibility:
                offenders.append(f"{rel}: {match.group(0)}")
            if rel.startswith("messaging/") and "outbound" in rel + source[:200]:
                offenders.append(f"{rel}: outbound code must not delay in the broker")
    assert offenders == []
    outbound_sources = [
        (root / p).read_text() for p in ("messaging/outbox.py", "messaging/tasks_outbound.py")
    ]
    assert not any(re.search(r"\b(countdown|eta)\s*=", s) for s in outbound_sources)


def test_a_send_that_kills_its_worker_child_every_time_lands_dead(
    world: World, sandbox: RunningSandbox, processes: Callable[..., Proc]
) -> None:
    """D2: a prefork pool child dies (as if out of memory) every time it sends one message. The
    message is put aside as dead with its reason after at most 5 attempts, and the next
    message of the thread still goes out."""
    import signal

    _no_disclosure(world)
    alice = world.conversation("alice")
    poison, after = queue([alice], 2, "poison")
    # Every send to Meta hangs (then fails): the window in which the child is killed.
    sandbox.fault(kind="timeout", delay=3.0, count=6, match="POST ")
    env = process_env(sandbox)
    processes(worker_command(pool="prefork", concurrency=1), env, "worker")
    processes(RELAY_COMMAND, env, "relay")
    job = OutboundJob.objects.get(message=poison)
    kills: list[int] = []
    seen_attempts = 0
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.status in OutboundJob.FINISHED:
            break
        # The call to Meta is in flight once the attempt is counted: kill that child.
        if job.status == "sending" and job.attempts > seen_attempts and job.claimed_by:
            pid = int(job.claimed_by.split(":")[1])
            os.kill(pid, signal.SIGKILL)
            kills.append(pid)
            seen_attempts = job.attempts
        time.sleep(0.05)
    job.refresh_from_db()
    print(f"\npoison send: {len(kills)} children killed, {job.attempts} attempts, {job.status}")
    assert job.status == "dead", (job.status, job.error_code)
    assert job.error_code == "worker_crashed"
    assert "stopped the sending worker" in job.error_message
    assert job.attempts <= 5
    assert len(set(kills)) == len(kills) == job.attempts
    poison.refresh_from_db()
    assert poison.status == "failed"
    assert poison.error_code == "worker_crashed"
    # The worker is still serving: the thread's next message reaches the customer.
    sandbox.control("DELETE", "faults")
    wait_until(
        lambda: OutboundJob.objects.filter(message=after, status="sent").exists(), 60, "next sent"
    )
    assert sent_texts(sandbox, "poison") == ["poison 1"]


def test_a_light_account_never_waits_behind_twenty_busy_ones(
    world: World, sandbox: RunningSandbox, processes: Callable[..., Proc]
) -> None:
    """Issue 6, acceptance 3 (D5's second half, scaled down): 20 accounts each hold a backlog
    at their rate limit; a quiet account's messages are still picked up within a second."""
    from tests.outbound.conftest import _account

    _no_disclosure(world)
    sandbox.control("POST", "settings", {"latency_ms": 100})
    busy_accounts = []
    for n in range(20):
        made = sandbox.control("POST", "accounts", {"username": f"busy{n}.shop"})
        busy_accounts.append(
            _account(world.tenant, made["page_id"], made["id"], made["page_token"], f"busy{n}.shop")
        )
    threads: list[Conversation] = []
    for c in range(3):
        name = f"shopper{c}"
        sandbox.control("POST", "customers", {"username": name})
        for account in busy_accounts:
            got = sandbox.customer(name, "send", account=account.username, text="hello")
            threads.append(add_conversation(account, got["igsid"], timedelta(minutes=1)))
    per_account = 200 if LONG else 60
    queue(threads, per_account * len(busy_accounts), "busy")
    # Every account may send 1/s: the 20 busy ones ask for 20/s together, half of what this
    # (shared, 2-core) box sends, and each has a backlog of a minute.
    start_all(processes, sandbox, workers=2, OUTBOUND_RATE_TEXT=1)
    wait_until(lambda: OutboundJob.objects.filter(status="sent").count() > 60, 90, "busy flowing")
    light = customers(sandbox, world, 20, account="bella.boutique")
    # Written one at a time, as people would (within the light account's own 1/s), each in its
    # own thread.
    messages = []
    for i in range(20):
        messages += queue([light[i]], 1, f"light {i}")
        time.sleep(1.05)
    wait_until(
        lambda: OutboundJob.objects.filter(message__in=messages, status="sent").count() == 20,
        60,
        "light sent",
    )
    jobs = list(OutboundJob.objects.filter(message__in=messages))
    waits = sorted((j.claimed_at - j.created_at).total_seconds() for j in jobs)
    accepted = sorted((j.sent_at - j.created_at).total_seconds() for j in jobs)
    handed = sorted((j.published_at - j.created_at).total_seconds() for j in jobs)
    p95 = waits[18]
    if os.environ.get("DRILL_DEBUG"):
        for j in sorted(jobs, key=lambda j: j.pk):
            print(
                j.pk,
                (j.published_at - j.created_at).total_seconds(),
                (j.claimed_at - j.published_at).total_seconds(),
                (j.sent_at - j.claimed_at).total_seconds(),
                j.attempts,
            )
    still_busy = (
        OutboundJob.objects.filter(account__in=busy_accounts)
        .exclude(status="sent")
        .values("account_id")
        .distinct()
        .count()
    )
    print(
        f"\nlight account queue wait p50 {waits[10]:.3f} s, p95 {p95:.3f} s (handed to the "
        f"queue p95 {handed[18]:.3f} s, accepted by Meta p95 {accepted[18]:.3f} s) while "
        f"{still_busy} busy accounts still had sends waiting"
    )
    assert still_busy == 20, "every busy account must still be saturated"
    assert p95 < 1.0
