"""W8 Durability before ack: SIGKILL gunicorn workers at random points during 1,000 deliveries."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest

from bench import loadgen
from bench.loadgen import Delivery
from tests.drills.conftest import Drill
from tests.drills.support import acked_but_lost, deliveries, summary, wait_processed

DELIVERIES = 1000
RATE = 50.0


@pytest.mark.drill
def test_w8_every_acknowledged_event_survives_killed_web_workers(
    drill: Drill, report: Callable[..., None]
) -> None:
    sent = deliveries(drill.seed["ig_user_id"], "w8", DELIVERIES)
    kills: list[int] = []
    in_flight: set[str] = set()
    cut: list[int] = []  # status of each delivery cut mid-request (0: no answer)
    started = time.monotonic()

    def kill(pids: list[int]) -> None:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                kills.append(pid)
            except ProcessLookupError:
                pass

    async def cut_mid_request(delivery: Delivery) -> None:
        """Kill every worker while one holds this delivery half read: its headers and half its
        body are sent, so the worker is inside the request, before any commit, whatever the
        machine's speed. The delivery is retried later by the sender, as Meta would."""
        request = delivery.request
        data = loadgen.wire(drill.stack.web_port, request)
        began = time.monotonic()
        status = -1
        writer = None
        try:
            reader, writer = await asyncio.open_connection(loadgen.HOST, drill.stack.web_port)
            writer.write(data[: len(data) - len(request.body) // 2])
            await writer.drain()
            await asyncio.sleep(0.05)  # a worker has accepted it and waits for the rest
            kill(drill.stack.web_worker_pids())
            answer = await asyncio.wait_for(reader.read(), timeout=5)
            status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.") else 0
        except (OSError, TimeoutError):
            status = 0
        finally:
            if writer is not None:
                writer.close()
        cut.append(status)
        delivery.attempts.append(
            loadgen.Outcome(delivery.key, began, time.monotonic(), max(status, 0), "cut")
        )

    async def killer(until: float) -> None:
        # Random points: one worker at a random instant (mid-request, between requests, while
        # booting); or every worker a few milliseconds after a delivery was sent, landing
        # before a commit, after it or while the answer is written, when the machine is slow
        # enough; or every worker while one of them is certainly inside a request.
        step = 0
        while time.monotonic() < until:
            await asyncio.sleep(random.uniform(0.5, 2.0))
            step += 1
            if step % 3 == 1:
                pids = drill.stack.web_worker_pids()
                if pids:
                    kill([random.choice(pids)])
            elif step % 3 == 2:
                while not in_flight and time.monotonic() < until:
                    await asyncio.sleep(0.001)
                await asyncio.sleep(random.uniform(0.0, 0.005))
                kill(drill.stack.web_worker_pids())
            else:
                # A delivery not due for a few seconds yet: its first attempt is this cut one.
                due_index = int((time.monotonic() - started + 3) * RATE)
                if due_index < DELIVERIES:
                    await cut_mid_request(sent[due_index])

    async def run() -> None:
        nonlocal started
        started = time.monotonic()
        first_attempts_end = time.monotonic() + DELIVERIES / RATE
        kill_task = asyncio.create_task(killer(first_attempts_end))
        await loadgen.deliver_with_retries(
            drill.stack.web_port,
            sent,
            rate=RATE,
            deadline=time.monotonic() + 120,
            timeout=5.0,  # Meta counts a delivery not acknowledged within 5 s as failed
            backoff=lambda attempt: random.uniform(0.5, 1.0) * min(8.0, 2.0**attempt),
            in_flight=in_flight,
        )
        await kill_task

    asyncio.run(run())
    lost = acked_but_lost(drill.pg, drill.dbname, sent)
    counts, _ = wait_processed(drill.pg, drill.dbname, DELIVERIES, timeout=120)
    failed_attempts = sum(1 for d in sent for a in d.attempts if a.status != 200)
    counts_row: dict[str, Any] = summary(sent, counts, lost)
    report(
        "W8 SIGKILL web workers",
        **{"workers killed": len(kills), "cut mid-request": len(cut)},
        **counts_row,
    )

    assert len(kills) >= 8, "the drill must kill workers while deliveries are in flight"
    assert cut, "the drill must cut deliveries mid-request"
    assert 200 not in cut, "a request cut by a kill is never acknowledged"
    assert failed_attempts > 0, "some deliveries must have been cut off by a kill"
    assert all(d.acked for d in sent), "every delivery is acknowledged after retries"
    assert lost == 0, "an event answered 200 is in the database"
    assert counts.stored == DELIVERIES
    assert counts.pending == 0
    assert counts.quarantined == 0
    assert counts.messages == DELIVERIES
    assert counts.duplicate_messages == 0
