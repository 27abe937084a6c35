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

    def kill(pids: list[int]) -> None:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                kills.append(pid)
            except ProcessLookupError:
                pass

    async def killer(until: float) -> None:
        # Random points: one worker at a random instant (mid-request, between requests, while
        # booting), or, every other time, every worker a few milliseconds after a delivery was
        # sent, so some kills surely land inside a request: before its commit, after it, or
        # while the answer is being written.
        aimed = False
        while time.monotonic() < until:
            await asyncio.sleep(random.uniform(0.5, 2.0))
            aimed = not aimed
            if not aimed:
                pids = drill.stack.web_worker_pids()
                if pids:
                    kill([random.choice(pids)])
                continue
            while not in_flight and time.monotonic() < until:
                await asyncio.sleep(0.001)
            await asyncio.sleep(random.uniform(0.0, 0.005))
            kill(drill.stack.web_worker_pids())

    async def run() -> None:
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
        **{"workers killed": len(kills)},
        **counts_row,
    )

    assert len(kills) >= 8, "the drill must kill workers while deliveries are in flight"
    assert failed_attempts > 0, "some deliveries must have been cut off by a kill"
    assert all(d.acked for d in sent), "every delivery is acknowledged after retries"
    assert lost == 0, "an event answered 200 is in the database"
    assert counts.stored == DELIVERIES
    assert counts.pending == 0
    assert counts.quarantined == 0
    assert counts.messages == DELIVERIES
    assert counts.duplicate_messages == 0
