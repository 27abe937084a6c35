"""What the drills share: Meta's sender with retries, and waiting for the backlog to drain."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bench import loadgen
from bench.stack import Counts, Postgres, db_counts, stored_digests
from bench.webhooks import Events


def outage_seconds(full: float) -> float:
    """How long a drill's outage lasts: RELIABILITY's full length (120 s for PostgreSQL, 60 s
    for Redis) unless DRILL_OUTAGE_SECONDS asks for a shorter try."""
    wanted = os.environ.get("DRILL_OUTAGE_SECONDS", "").strip()
    return float(wanted) if wanted else full


def deliveries(business: str, run: str, count: int) -> list[loadgen.Delivery]:
    events = Events(business, run)
    return [
        loadgen.Delivery(key=i, request=events.request("d", i, customer=f"65432100{i % 50:05d}"))
        for i in range(count)
    ]


def digest(delivery: loadgen.Delivery) -> str:
    return str(delivery.request.key[1])


def acked_but_lost(pg: Postgres, dbname: str, sent: Sequence[loadgen.Delivery]) -> int:
    stored = stored_digests(pg, dbname)
    return sum(1 for d in sent if d.acked and digest(d) not in stored)


def wait_processed(
    pg: Postgres, dbname: str, expected: int, timeout: float
) -> tuple[Counts, float]:
    """Wait until ``expected`` events are stored and none is pending; (counts, seconds waited)."""
    start = time.monotonic()
    deadline = start + timeout
    while True:
        counts = db_counts(pg, dbname)
        if counts.stored >= expected and counts.pending == 0:
            break
        if time.monotonic() > deadline:
            break
        time.sleep(0.25)
    return counts, time.monotonic() - start


def summary(sent: Sequence[loadgen.Delivery], counts: Counts, lost: int) -> dict[str, Any]:
    attempts = [a for d in sent for a in d.attempts]
    failures: dict[str, int] = {}
    for a in attempts:
        if a.status != 200:
            label = a.error or str(a.status)
            failures[label] = failures.get(label, 0) + 1
    return {
        "sent (events)": len(sent),
        "attempts": len(attempts),
        "attempts not answered 200": dict(sorted(failures.items())),
        "acked (received)": sum(1 for d in sent if d.acked),
        "stored": counts.stored,
        "processed": counts.processed,
        "quarantined": counts.quarantined,
        "pending": counts.pending,
        "message rows": counts.messages,
        "duplicated (message rows)": counts.duplicate_messages,
        "lost (acked, not stored)": lost,
        "lost (sent, no message)": len(sent) - counts.distinct_mids,
    }


@dataclass
class Outage:
    """When a service was taken away and given back, in ``time.monotonic()`` seconds."""

    stopping: float = 0.0
    down: float = 0.0
    restarting: float = 0.0
    up: float = 0.0


def run_with_outage(
    port: int,
    sent: Sequence[loadgen.Delivery],
    *,
    rate: float,
    before: float,
    take_down: Callable[[], None],
    bring_back: Callable[[], None],
    outage_seconds: float,
    retry_window: float = 90.0,
    backoff: Callable[[int], float] | None = None,
) -> Outage:
    """Deliver ``sent`` at ``rate`` with retries; ``before`` s in, the service goes away."""
    outage = Outage()

    async def control() -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(before)
        outage.stopping = time.monotonic()
        await loop.run_in_executor(None, take_down)
        outage.down = time.monotonic()
        await asyncio.sleep(max(0.0, outage.stopping + outage_seconds - time.monotonic()))
        outage.restarting = time.monotonic()
        await loop.run_in_executor(None, bring_back)
        outage.up = time.monotonic()

    async def run() -> None:
        controller = asyncio.create_task(control())
        first_attempts = len(sent) / rate
        await loadgen.deliver_with_retries(
            port, sent, rate=rate, timeout=5.0, backoff=backoff,
            deadline=time.monotonic() + first_attempts + retry_window,
        )  # fmt: skip
        await controller

    asyncio.run(run())
    return outage


def timeline(sent: Sequence[loadgen.Delivery], origin: float, step: float = 5.0) -> str:
    """Attempts per ``step`` seconds from ``origin``: count, statuses, p99 latency."""
    buckets: dict[int, list[loadgen.Outcome]] = {}
    for delivery in sent:
        for attempt in delivery.attempts:
            buckets.setdefault(int((attempt.scheduled - origin) // step), []).append(attempt)
    lines = []
    for index in sorted(buckets):
        attempts = buckets[index]
        statuses: dict[str, int] = {}
        for a in attempts:
            label = a.error or str(a.status)
            statuses[label] = statuses.get(label, 0) + 1
        p99 = loadgen.percentile([a.latency for a in attempts], 99)
        lines.append(
            f"  t={index * step:+6.0f}s attempts {len(attempts):5d} p99 {p99 * 1000:7.0f} ms "
            f"{dict(sorted(statuses.items()))}"
        )
    return "\n".join(lines)
