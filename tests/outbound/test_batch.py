"""The ``outbound.send_batch`` task: several rows of one account claimed, budgeted, sent side by
side and written together, ending every row as the one-row path would (D1, D5, D6, D11).

The outbox runs in this process against the sandbox; the task is called as a worker calls it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from django.db import IntegrityError, connection
from django.db.backends.utils import CursorWrapper
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from integrations.meta.sandbox.testing import RunningSandbox
from messaging import outbox, ratelimit
from messaging.models import Conversation, Message, OutboundJob, SendAttempt
from messaging.services import outbound
from messaging.services.outbound import OutboundContent, Sender
from messaging.tasks_outbound import send_batch
from tests.outbound.conftest import World, customers

Drive = Any

# Statements per sent row of a full batch of eight plain replies, everything included: the
# claim, the read, the lease renewal, the one writing transaction, and the account's pump after
# the batch (against 9 one row at a time: tests/outbound/test_throughput_budget.py). 15 for
# the eight; 17 before the pump released held rows and counted the rows in flight in the
# statement that stamps lost wake-ups.
SQL_PER_ROW_IN_A_BATCH = 15 / 8


pytestmark = pytest.mark.usefixtures("fresh_memory")


def _bot() -> Sender:
    return Sender.automation("batch")


def _queue(conversations: list[Conversation], prefix: str) -> list[Message]:
    return [
        outbound.message_send(
            conversation=conversation,
            sender=_bot(),
            content=OutboundContent(kind="text", text=f"{prefix} {i}"),
        )
        for i, conversation in enumerate(conversations)
    ]


def _published(world: World) -> list[int]:
    """What the relay would hand on for the account now (nothing reaches the broker)."""
    got: list[int] = []

    def collect(tenant_id: int, ids: Any) -> int:
        got.extend(ids)
        return len(got)

    with mock.patch.object(outbox, "_publish", side_effect=collect):
        outbox.pump(account_id=world.acme.pk)
    return got


@pytest.fixture
def threads(sandbox: RunningSandbox, world: World) -> list[Conversation]:
    """Eight customers who each just wrote to Acme (windows open), disclosure off."""
    outbound.messaging_settings_update(tenant_id=world.tenant.pk, disclosure_mode="never")
    return customers(sandbox, world, 8)


@pytest.fixture
def patient_retries() -> Iterator[None]:
    """A minute's wait before any retry. These tests back off by at most a tenth of a second,
    so on a slow machine the pump that follows a batch could find a retried row already due and
    hand it on again before the test looks at it."""
    with mock.patch.object(outbox, "backoff_delay", return_value=60.0):
        yield


def _sent_to(sandbox: RunningSandbox, prefix: str) -> list[str]:
    with sandbox.sandbox.lock:
        return [
            m.text or ""
            for m in sandbox.sandbox.world.messages.values()
            if m.direction == "out" and (m.text or "").startswith(prefix)
        ]


def test_a_batch_sends_its_rows_side_by_side_in_a_few_statements(
    world: World, sandbox: RunningSandbox, threads: list[Conversation]
) -> None:
    messages = _queue(threads, "together")
    ids = _published(world)
    assert len(ids) == 8
    in_flight = 0
    most = 0
    lock = threading.Lock()
    original = sandbox.service.handle

    def counting(req: Any) -> Any:
        nonlocal in_flight, most
        if "/messages" not in req.path:
            return original(req)
        with lock:
            in_flight += 1
            most = max(most, in_flight)
        try:
            return original(req)
        finally:
            with lock:
                in_flight -= 1

    sandbox.control("POST", "settings", {"latency_ms": 150})
    sandbox.service.handle = counting  # type: ignore[method-assign]
    with (
        mock.patch.object(outbox, "_publish", return_value=0),
        CaptureQueriesContext(connection) as queries,
    ):
        outcomes = send_batch(world.tenant.pk, ids)
    assert outcomes == {"sent": 8}
    # The calls to Meta overlapped: the batch waited on Meta once, not eight times.
    assert most >= 2
    assert len(queries.captured_queries) / 8 <= SQL_PER_ROW_IN_A_BATCH
    for message in messages:
        message.refresh_from_db()
        assert message.status == Message.Status.SENT
        assert message.mid
    assert sorted(_sent_to(sandbox, "together")) == sorted(m.text for m in messages)
    assert SendAttempt.objects.filter(outcome="sent").count() == 8
    assert not OutboundJob.objects.exclude(status="sent").exists()


def test_rows_the_batch_cannot_take_end_as_one_at_a_time_would(
    world: World, sandbox: RunningSandbox, threads: list[Conversation], drive: Drive
) -> None:
    """A thread's second reply waits for its first; a row another live worker holds is left to
    it; a video goes the one-row way; nothing is sent twice or out of order."""
    first, second = _queue([threads[0], threads[0]], "order")
    _queue(threads[1:4], "plain")
    video = outbound.message_send(
        conversation=threads[4],
        sender=_bot(),
        content=OutboundContent(kind="video", url="https://cdn.example.com/v.mp4"),
    )
    held = _queue([threads[5]], "held")[0]
    held_job = OutboundJob.objects.get(message=held)
    OutboundJob.objects.filter(pk=held_job.pk).update(
        status="sending",
        claimed_by=outbox.worker_identity(),
        lease_until=timezone.now() + timedelta(minutes=5),
    )
    everything = list(
        OutboundJob.objects.filter(account=world.acme)
        .exclude(status__in=["sent", "failed", "dead"])
        .order_by("id")
        .values_list("id", flat=True)
    )
    handed_on: list[int] = []

    def hand_on(tenant_id: int, ids: Any) -> int:
        handed_on.extend(ids)
        return len(handed_on)

    with mock.patch.object(outbox, "_publish", side_effect=hand_on):
        outcomes = send_batch(world.tenant.pk, everything)
    # The second reply of the thread was not its head: handed back, not sent, and handed on
    # by the account's pump once the first was sent.
    assert outcomes.get("waiting", 0) == 1
    assert outcomes.get("busy", 0) == 1
    assert outcomes.get("sent", 0) == 5  # first, three plain, the video
    second_job = OutboundJob.objects.get(message=second)
    assert handed_on == [second_job.pk]
    held_job.refresh_from_db()
    assert held_job.status == "sending"
    video.refresh_from_db()
    assert video.status == Message.Status.SENT
    with mock.patch.object(outbox, "_publish", return_value=0):
        assert send_batch(world.tenant.pk, handed_on) == {"sent": 1}
    # Let the held row's worker "die", then drive the rest.
    OutboundJob.objects.filter(pk=held_job.pk).update(
        status="pending", claimed_by="", lease_until=None
    )
    drive(world.acme)
    assert _sent_to(sandbox, "order") == ["order 0", "order 1"]
    for prefix, count in (("plain", 3), ("held", 1)):
        assert len(_sent_to(sandbox, prefix)) == count
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == second.status == Message.Status.SENT


def test_a_budget_short_of_the_batch_sends_what_it_may_and_hands_back_the_rest(
    world: World, sandbox: RunningSandbox, threads: list[Conversation], settings: Any, drive: Drive
) -> None:
    """D5: three sends left in the second's budget: three go, five wait; Meta never answers
    "too fast"; later all eight are sent once."""
    settings.OUTBOUND_RATE_LIMITS = {**settings.OUTBOUND_RATE_LIMITS, "text": (3, 60.0)}
    settings.OUTBOUND_TOKEN_MAX_WAIT = 0.0
    ratelimit.reset(world.acme.pk)
    _queue(threads, "budget")
    # A batch of eight, as the relay hands on with a larger share (at this budget the share
    # is two rows: tests/outbound/test_fair_share.py).
    OutboundJob.objects.filter(status="pending").update(
        status="published", published_at=timezone.now()
    )
    ids = sorted(OutboundJob.objects.values_list("id", flat=True))
    assert len(ids) == 8
    with mock.patch.object(outbox, "_publish", return_value=0):
        outcomes = send_batch(world.tenant.pk, ids)
    assert outcomes == {"sent": 3, "throttled": 5}
    waiting = OutboundJob.objects.filter(status="pending")
    assert waiting.count() == 5
    assert all(job.next_attempt_at is not None for job in waiting)
    assert not OutboundJob.objects.filter(status__in=["sending", "published"]).exists()
    assert len(_sent_to(sandbox, "budget")) == 3
    drive(world.acme)  # resets the budget each round
    assert sorted(_sent_to(sandbox, "budget")) == sorted(f"budget {i}" for i in range(8))
    assert not SendAttempt.objects.filter(outcome="rate_limited").exists()


def test_calls_that_reach_meta_late_never_crowd_the_next_second(
    world: World, sandbox: RunningSandbox, threads: list[Conversation], settings: Any
) -> None:
    """D5 and D11: Meta counts a call when it reaches Meta, not when the budget granted it.
    Four sends take Meta 0.7 s to count; the next four are asked for right after. Counted from
    their grants, the first four left the window at the second's end and the next four went
    then, beside them in Meta's second: all four answered "too fast" (each answer pauses the
    account). Counted from their answers, the next four wait until Meta's second has room,
    even with the budget at Meta's own limit and no margin."""
    settings.OUTBOUND_RATE_LIMITS = {**settings.OUTBOUND_RATE_LIMITS, "text": (4, 1.0)}
    settings.OUTBOUND_TOKEN_MAX_WAIT = 3.0
    sandbox.control(
        "POST", "rate_limits", {"send_text": {"limit": 4, "window_s": 1}, "reset_counters": True}
    )
    ratelimit.reset(world.acme.pk)
    _queue(threads, "late")
    OutboundJob.objects.filter(status="pending").update(
        status="published", published_at=timezone.now()
    )
    ids = sorted(OutboundJob.objects.values_list("id", flat=True))
    sandbox.control("POST", "settings", {"latency_ms": 700})
    with mock.patch.object(outbox, "_publish", return_value=0):
        assert send_batch(world.tenant.pk, ids[:4]) == {"sent": 4}
        sandbox.control("POST", "settings", {"latency_ms": 0})
        outcomes = send_batch(world.tenant.pk, ids[4:])
    assert outcomes == {"sent": 4}
    assert sorted(_sent_to(sandbox, "late")) == sorted(f"late {i}" for i in range(8))
    assert not SendAttempt.objects.filter(outcome="rate_limited").exists()
    assert ratelimit.paused_for(world.acme.pk) == 0


def test_a_failed_call_in_a_batch_is_retried_alone_and_the_rest_are_sent(
    world: World,
    sandbox: RunningSandbox,
    threads: list[Conversation],
    drive: Drive,
    patient_retries: None,
) -> None:
    _queue(threads[:4], "fails")
    sandbox.fault(match="/messages", kind="5xx", count=1, status=503)
    ids = _published(world)
    with mock.patch.object(outbox, "_publish", return_value=0):
        outcomes = send_batch(world.tenant.pk, ids)
    assert outcomes == {"sent": 3, "retry": 1}
    retry = OutboundJob.objects.get(status="pending")
    assert retry.attempts == 1
    assert retry.error_code
    drive(world.acme)
    assert sorted(_sent_to(sandbox, "fails")) == sorted(f"fails {i}" for i in range(4))
    assert not OutboundJob.objects.exclude(status="sent").exists()


def test_when_the_batch_write_collides_each_row_is_finished_alone(
    world: World, sandbox: RunningSandbox, threads: list[Conversation]
) -> None:
    """An echo that stored one of the messages first makes the batch's write fail: every row is
    then finished the one-row way, each sent once and carrying Meta's id."""
    messages = _queue(threads[:4], "collide")
    ids = _published(world)
    with (
        mock.patch.object(outbox, "_publish", return_value=0),
        mock.patch.object(outbox, "_mark_sent_many", side_effect=IntegrityError("mid taken")),
    ):
        outcomes = send_batch(world.tenant.pk, ids)
    assert outcomes == {"sent": 4}
    for message in messages:
        message.refresh_from_db()
        assert (message.status, bool(message.mid)) == (Message.Status.SENT, True)
    assert len(_sent_to(sandbox, "collide")) == 4
    assert SendAttempt.objects.filter(outcome="sent").count() == 4


def test_the_call_threads_never_touch_the_database(
    world: World, sandbox: RunningSandbox, threads: list[Conversation]
) -> None:
    """Only the task's own thread reads and writes; the threads waiting on Meta hold no
    database connection (a connection per call thread would exhaust the server's)."""
    _queue(threads, "threads")
    ids = _published(world)
    seen: set[str] = set()
    original = CursorWrapper.execute

    def recording(self: Any, *args: Any, **kwargs: Any) -> Any:
        seen.add(threading.current_thread().name)
        return original(self, *args, **kwargs)

    with (
        mock.patch.object(outbox, "_publish", return_value=0),
        mock.patch.object(CursorWrapper, "execute", recording),
    ):
        assert send_batch(world.tenant.pk, ids) == {"sent": 8}
    assert seen == {threading.current_thread().name}


def test_an_unexpected_failure_of_one_row_leaves_it_waiting_and_the_rest_sent(
    world: World,
    sandbox: RunningSandbox,
    threads: list[Conversation],
    drive: Drive,
    patient_retries: None,
) -> None:
    """A bug or an outage while one row's call is made: that row goes back to the outbox for a
    later try (never lost, never marked sent), its neighbours in the batch are sent."""
    messages = _queue(threads[:4], "unexpected")
    broken = OutboundJob.objects.get(message=messages[1])
    ids = _published(world)
    real_call = outbox._call

    def call(client: Any, job: OutboundJob, decision: Any) -> Any:
        if job.pk == broken.pk:
            raise RuntimeError("a bug")
        return real_call(client, job, decision)

    with (
        mock.patch.object(outbox, "_publish", return_value=0),
        mock.patch.object(outbox, "_call", side_effect=call),
    ):
        outcomes = send_batch(world.tenant.pk, ids)
    assert outcomes == {"sent": 3, "error": 1}
    broken.refresh_from_db()
    assert (broken.status, broken.next_attempt_at is not None) == ("pending", True)
    assert sorted(_sent_to(sandbox, "unexpected")) == sorted(
        m.text for m in messages if m.pk != messages[1].pk
    )
    drive(world.acme)
    assert sorted(_sent_to(sandbox, "unexpected")) == sorted(m.text for m in messages)
