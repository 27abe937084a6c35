"""An open-loop HTTP load generator on asyncio and raw sockets.

Requests are scheduled on a clock (request ``i`` at ``start + i / rate``) and latency is counted
from the scheduled time, not from when the client got round to sending: a slow server cannot
slow the generator down and hide its own queueing (no coordinated omission). Each request uses
a fresh connection, as gunicorn's sync workers close the connection after every response.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

HOST = "127.0.0.1"


@dataclass
class Request:
    method: str
    path: str
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    key: Any = None  # what the request stands for (an event), for the caller's bookkeeping


@dataclass
class Outcome:
    key: Any
    scheduled: float  # time.monotonic() the request was due
    finished: float
    status: int  # 0: no HTTP response (refused, reset, timed out)
    error: str = ""
    body: bytes = b""

    @property
    def latency(self) -> float:
        return self.finished - self.scheduled

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def wire(port: int, request: Request) -> bytes:
    head = [
        f"{request.method} {request.path} HTTP/1.1",
        f"Host: {HOST}:{port}",
        "Connection: close",
        # Behind the load balancer, as in production: it terminated TLS.
        "X-Forwarded-Proto: https",
    ]
    if request.body or request.method in ("POST", "PUT", "PATCH"):
        head.append(f"Content-Length: {len(request.body)}")
    head.extend(f"{name}: {value}" for name, value in request.headers.items())
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + request.body


async def send(
    port: int, request: Request, *, timeout: float = 10.0, keep_body: bool = False
) -> tuple[int, str, bytes]:
    """Send one request on a new connection; (status, error, body)."""
    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(HOST, port)
            writer.write(wire(port, request))
            await writer.drain()
            data = await reader.read()
    except TimeoutError:
        return 0, "timeout", b""
    except OSError as exc:
        return 0, type(exc).__name__, b""
    finally:
        if writer is not None:
            writer.close()
    if not data.startswith(b"HTTP/1."):
        return 0, "no response", b""
    try:
        status = int(data.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return 0, "bad status line", b""
    body = b""
    if keep_body:
        _, _, body = data.partition(b"\r\n\r\n")
    return status, "", body


async def sleep_until(when: float) -> None:
    delay = when - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


async def open_loop(
    port: int,
    make: Callable[[int], Request],
    *,
    rate: float,
    duration: float,
    timeout: float = 10.0,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Send ``rate * duration`` requests, request ``i`` due at ``start + i / rate``."""
    total = int(rate * duration)
    start = time.monotonic() + 0.05
    outcomes: list[Outcome] = []

    async def one(i: int, due: float) -> None:
        request = make(i)
        status, error, _ = await send(port, request, timeout=timeout)
        outcome = Outcome(request.key, due, time.monotonic(), status, error)
        outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)

    tasks = []
    for i in range(total):
        due = start + i / rate
        await sleep_until(due)
        tasks.append(asyncio.create_task(one(i, due)))
    await asyncio.gather(*tasks)
    return outcomes


async def open_loop_stream(
    port: int,
    make: Callable[[int], Request],
    *,
    rate: float,
    duration: float,
    on_outcome: Callable[[Outcome], None],
    timeout: float = 10.0,
) -> int:
    """``open_loop`` for long runs: each outcome goes to ``on_outcome`` and is not kept.

    Only requests still in flight are held, so memory stays flat over an hour of load.
    Returns the number of requests sent.
    """
    total = int(rate * duration)
    start = time.monotonic() + 0.05
    in_flight: set[asyncio.Task[None]] = set()

    async def one(i: int, due: float) -> None:
        request = make(i)
        status, error, _ = await send(port, request, timeout=timeout)
        on_outcome(Outcome(request.key, due, time.monotonic(), status, error))

    for i in range(total):
        due = start + i / rate
        await sleep_until(due)
        task = asyncio.create_task(one(i, due))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    if in_flight:
        await asyncio.gather(*list(in_flight))
    return total


@dataclass
class Delivery:
    """One event the simulated sender must get acknowledged, and every attempt it made."""

    key: Any
    request: Request
    attempts: list[Outcome] = field(default_factory=list)

    @property
    def acked(self) -> bool:
        return any(a.status == 200 for a in self.attempts)


async def deliver_with_retries(
    port: int,
    deliveries: Sequence[Delivery],
    *,
    rate: float,
    deadline: float,
    timeout: float = 10.0,
    backoff: Callable[[int], float] | None = None,
    in_flight: set[str] | None = None,
) -> None:
    """Meta's side of a webhook: first attempts at ``rate``, retries until a 200 or ``deadline``.

    Anything but a 200 (an error status, a reset connection, a timeout) is retried after
    ``backoff(attempt)`` seconds; ``deadline`` is a ``time.monotonic()`` value. ``in_flight``,
    when given, holds the keys of the deliveries sent and not yet answered at each moment.
    """

    def default_backoff(attempt: int) -> float:
        return random.uniform(0.5, 1.0) * min(16.0, 2.0**attempt)

    delay_for = backoff or default_backoff
    start = time.monotonic() + 0.05

    async def one(delivery: Delivery, due: float) -> None:
        await sleep_until(due)
        attempt = 0
        while True:
            began = time.monotonic()
            if in_flight is not None:
                in_flight.add(delivery.key)
            try:
                status, error, _ = await send(port, delivery.request, timeout=timeout)
            finally:
                if in_flight is not None:
                    in_flight.discard(delivery.key)
            delivery.attempts.append(Outcome(delivery.key, began, time.monotonic(), status, error))
            if status == 200:
                return
            attempt += 1
            wait = delay_for(attempt)
            if time.monotonic() + wait > deadline:
                return
            await asyncio.sleep(wait)

    tasks = []
    for i, delivery in enumerate(deliveries):
        due = start + i / rate
        await sleep_until(due)
        tasks.append(asyncio.create_task(one(delivery, due)))
    await asyncio.gather(*tasks)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), nearest rank; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summarise(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """Counts and latency figures (milliseconds) of a set of outcomes."""
    if not outcomes:
        return {"requests": 0}
    latencies = [o.latency for o in outcomes]
    ok = [o for o in outcomes if o.ok]
    first = min(o.scheduled for o in outcomes)
    last = max(o.finished for o in outcomes)
    errors: dict[str, int] = {}
    for o in outcomes:
        if not o.ok:
            label = o.error or str(o.status)
            errors[label] = errors.get(label, 0) + 1
    return {
        "requests": len(outcomes),
        "ok": len(ok),
        "non_2xx": len(outcomes) - len(ok),
        "errors": errors,
        "ok_per_second": round(len(ok) / (last - first), 1) if last > first else None,
        "p50_ms": round(percentile(latencies, 50) * 1000, 2),
        "p95_ms": round(percentile(latencies, 95) * 1000, 2),
        "p99_ms": round(percentile(latencies, 99) * 1000, 2),
        "max_ms": round(max(latencies) * 1000, 2),
    }
