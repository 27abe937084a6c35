"""Webhook ingest benchmark: acknowledgement latency, a bare-view baseline, end-to-end latency.

    .venv/bin/python -m bench.webhooks          # or: make bench

Starts a private stack on loopback (a fresh database on the local PostgreSQL, a private
redis-server, gunicorn with platform/gunicorn.conf.py, the webhook relay, a Celery worker),
seeds one workspace, and measures with an open-loop generator (``bench/loadgen.py``):

(a) webhook acknowledgements at fixed rates: 2xx/s, p50/p99 (the worker processes meanwhile);
(b) the same rates against ``/bench/bare``, a view that does nothing (the Django ceiling);
(c) P3: webhook in -> message readable through ``GET /api/v1/conversations/{id}/messages``
    at a steady 50 msg/s;
(d) P1: 200 webhook req/s for 60 s: p50/p99/max, non-2xx, acknowledged-but-lost.

``--backlog N`` measures P6 instead (and nothing else): N stored-but-unprocessed one-message
deliveries are written straight into the event table while no relay runs, then the relay
starts and the worker drains them; it reports the drain rate (from the first to the last
``processed_at``), the worker's memory (resident set of the worker and its pool processes,
sampled every 0.5 s) and the latency of an API read polled meanwhile.

``--capacity`` measures P2 instead: open-loop steps of signed one-message deliveries at rising
rates (``--capacity-start``, ``--capacity-step``, ``--capacity-max``, ``--step-seconds`` each,
the backlog drained between steps) until a step's p99 exceeds 250 ms or more than 1 % of its
answers are not 2xx. The saturation figure (the last rate that held) is compared with
``bench/baselines/p2_capacity.json``: more than 20 % below it exits with status 1;
``--save-baseline`` stores this run's figure there.

``--soak SECONDS`` measures P7 instead: signed deliveries at ``--soak-rate`` (100/s) for the
whole run while, every 10 s, the resident memory of gunicorn, the Celery worker and the relay,
the PostgreSQL connections to the bench database and the length of the broker's ``unacked``
hash are sampled; at the end every acknowledged delivery must be stored and processed.

Prints a table and writes ``bench/results/webhooks.json`` (``p2_capacity.json`` and
``p7_soak.json`` for those two modes). The database and every process are removed afterwards.
Bounded: the whole run stops after ``--time-limit`` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from array import array
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from redis import Redis

from bench import loadgen
from bench.stack import (
    ROOT,
    WEBHOOK_TABLE,
    AppStack,
    Postgres,
    PrivateRedis,
    broker_settings,
    children_of,
    database_connections,
    db_counts,
    events_not_processed,
    finish_run,
    group_cpu,
    http_request,
    machine_busy,
    message_body,
    proc_cpu,
    server_cpu,
    sha256_hex,
    sign,
    stop_group,
    stored_digests,
    wait_until,
    workspace,
)

RESULTS = ROOT / "bench" / "results" / "webhooks.json"
WEBHOOK_PATH = "/webhooks/meta"
BARE_PATH = "/bench/bare"

TARGETS = {
    "P1": "p50 <= 15 ms, p99 <= 100 ms, max <= 1 s, 0 non-2xx, 0 lost (200 req/s)",
    "P2": "saturation >= 600 req/s (p99 <= 250 ms)",
    "P3": "p95 < 2 s, p99 < 5 s (50 msg/s)",
    "P7": "RSS growth < 10 %, PostgreSQL connections stable, no growth of Redis unacked, 0 lost",
}


class TimeLimit(Exception):
    pass


class _SingleRowDone(Exception):
    """A single-row mode (P2, P6, P7) measures nothing else."""


def _on_alarm(signum: int, frame: Any) -> None:
    raise TimeLimit("the benchmark ran past its time limit")


class Events:
    """Signed Meta deliveries with unique message ids, spread over a fixed set of customers."""

    def __init__(self, business: str, run: str) -> None:
        self.business = business
        self.run = run

    def request(self, phase: str, i: int, *, customer: str | None = None) -> loadgen.Request:
        mid = f"aWdf{self.run}{phase}{i:07d}"
        body = message_body(
            business=self.business,
            customer=customer or f"65432100{i % 100:05d}",
            mid=mid,
            text=f"Hello {i}, is this still available?",
            ts_ms=int(time.time() * 1000),
        )
        return loadgen.Request(
            "POST",
            WEBHOOK_PATH,
            body,
            {"Content-Type": "application/json", "X-Hub-Signature-256": sign(body)},
            key=(mid, sha256_hex(body)),
        )


def _bare(i: int) -> loadgen.Request:
    return loadgen.Request("GET", BARE_PATH)


def _wait_drained(stack: AppStack, timeout: float) -> dict[str, Any]:
    """Wait until no stored event is pending; how long it took and how many were processed."""
    start = time.monotonic()
    before = db_counts(stack.pg, stack.dbname)
    try:
        wait_until(
            lambda: db_counts(stack.pg, stack.dbname).pending == 0,
            timeout=timeout, interval=0.25, what="backlog drained",
        )  # fmt: skip
        drained = True
    except TimeoutError:
        drained = False
    seconds = time.monotonic() - start
    after = db_counts(stack.pg, stack.dbname)
    return {
        "drained": drained,
        "seconds": round(seconds, 1),
        "backlog_at_end_of_load": before.pending,
        "processed_while_waiting": after.processed + after.quarantined
        - before.processed - before.quarantined,
    }  # fmt: skip


def _step(port: int, make: Callable[[int], loadgen.Request], rate: int, seconds: float) -> Any:
    outcomes = asyncio.run(loadgen.open_loop(port, make, rate=rate, duration=seconds))
    return {"rate": rate, "seconds": seconds, **loadgen.summarise(outcomes)}


def ack_and_bare(
    stack: AppStack, events: Events, rates: list[int], seconds: float, results: dict[str, Any]
) -> None:
    """(a) and (b): the webhook and the bare view at the same fixed rates."""
    webhook_steps: list[dict[str, Any]] = results.setdefault("webhook_steps", [])
    bare_steps: list[dict[str, Any]] = results.setdefault("bare_steps", [])
    for rate in rates:
        phase = f"a{rate}"
        step = _step(stack.web_port, partial(events.request, phase), rate, seconds)
        step["drain"] = _wait_drained(stack, timeout=90)
        drained = step["drain"]["processed_while_waiting"]
        step["drain"]["events_per_second"] = (
            round(drained / step["drain"]["seconds"], 1) if step["drain"]["seconds"] else None
        )
        webhook_steps.append(step)
        _print_step("webhook", step)
        bare = _step(stack.web_port, _bare, rate, seconds)
        bare_steps.append(bare)
        _print_step("bare", bare)
        time.sleep(1)


def _print_step(name: str, step: dict[str, Any]) -> None:
    print(
        f"  {name:8} {step['rate']:>5}/s  ok/s {step.get('ok_per_second')!s:>7}  "
        f"p50 {step.get('p50_ms')!s:>8} ms  p99 {step.get('p99_ms')!s:>8} ms  "
        f"non-2xx {step.get('non_2xx')}",
        flush=True,
    )


# -- (c) end to end -------------------------------------------------------------------------


def _api_get(stack: AppStack, api_key: str, path: str) -> Any:
    status, body = http_request(
        stack.web_port, "GET", path, headers={"Authorization": f"Bearer {api_key}"}, timeout=10
    )
    if status != 200:
        raise RuntimeError(f"GET {path} answered {status}: {body[:200]!r}")
    return json.loads(body)


def end_to_end(
    stack: AppStack, events: Events, api_key: str, *, rate: int, seconds: float, poll: float
) -> dict[str, Any]:
    """Webhook sent -> message listed by the conversation's messages endpoint."""
    total = int(rate * seconds)
    threads = 10
    per_thread = -(-total // threads)  # every thread's messages fit in one page of 200
    customers = [f"7700000000{k:04d}" for k in range(threads)]
    for k, customer in enumerate(customers):
        request = events.request("cw", k, customer=customer)
        status, _ = http_request(
            stack.web_port, "POST", WEBHOOK_PATH, body=request.body, headers=request.headers
        )
        assert status == 200, status

    def conversations() -> dict[str, int] | None:
        page = _api_get(stack, api_key, "/api/v1/conversations?page_size=200")
        found = {c["contact"]["igsid"]: c["id"] for c in page["results"]}
        return found if all(c in found for c in customers) else None

    found = wait_until(conversations, timeout=60, interval=0.25, what="conversations created")
    thread_ids = [found[c] for c in customers]

    expected: dict[int, set[str]] = {k: set() for k in range(threads)}
    seen: dict[str, float] = {}
    polls = 0

    def make(i: int) -> loadgen.Request:
        k = i // per_thread
        request = events.request("c", i, customer=customers[k])
        expected[k].add(request.key[0])
        return request

    async def poller(done: asyncio.Event) -> None:
        nonlocal polls
        headers = {"Authorization": f"Bearer {api_key}"}
        while True:
            tick = time.monotonic()
            outstanding = [k for k in range(threads) if expected[k] - seen.keys()]
            if done.is_set() and (not outstanding or tick > hard_stop):
                return
            for k in outstanding:
                path = f"/api/v1/conversations/{thread_ids[k]}/messages?page_size=200"
                status, _, body = await loadgen.send(
                    stack.web_port,
                    loadgen.Request("GET", path, headers=headers),
                    keep_body=True,
                )
                polls += 1
                if status != 200:
                    continue
                now = time.monotonic()
                for message in json.loads(body)["results"]:
                    seen.setdefault(message["mid"], now)
            await loadgen.sleep_until(tick + poll)

    hard_stop = time.monotonic() + seconds + 60

    async def run() -> list[loadgen.Outcome]:
        done = asyncio.Event()
        watcher = asyncio.create_task(poller(done))
        outcomes = await loadgen.open_loop(stack.web_port, make, rate=rate, duration=seconds)
        done.set()
        await watcher
        return outcomes

    outcomes = asyncio.run(run())
    acked = [o for o in outcomes if o.ok]
    latencies = [seen[o.key[0]] - o.scheduled for o in acked if o.key[0] in seen]
    return {
        "rate": rate,
        "seconds": seconds,
        "conversations": threads,
        "poll_interval_ms": int(poll * 1000),
        "api_polls": polls,
        "sent": len(outcomes),
        "acked": len(acked),
        "visible": len(latencies),
        "never_visible": len(acked) - len(latencies),
        "p50_ms": round(loadgen.percentile(latencies, 50) * 1000, 1),
        "p95_ms": round(loadgen.percentile(latencies, 95) * 1000, 1),
        "p99_ms": round(loadgen.percentile(latencies, 99) * 1000, 1),
        "max_ms": round(max(latencies, default=float("nan")) * 1000, 1),
    }


# -- (d) P1 ---------------------------------------------------------------------------------


def p1(stack: AppStack, events: Events, *, rate: int, seconds: float) -> dict[str, Any]:
    outcomes = asyncio.run(
        loadgen.open_loop(
            stack.web_port, lambda i: events.request("p", i), rate=rate, duration=seconds
        )
    )
    summary = loadgen.summarise(outcomes)
    acked = {o.key[1] for o in outcomes if o.status == 200}
    lost = len(acked - stored_digests(stack.pg, stack.dbname))
    drain = _wait_drained(stack, timeout=120)
    counts = db_counts(stack.pg, stack.dbname)
    return {
        "rate": rate,
        "seconds": seconds,
        **summary,
        "acked": len(acked),
        "lost": lost,
        "drain": drain,
        "duplicate_messages": counts.duplicate_messages,
        "quarantined": counts.quarantined,
    }


# -- P6: a stored backlog -------------------------------------------------------------------


def _rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def _store_backlog(stack: AppStack, business: str, size: int, run: str) -> None:
    """Write ``size`` pending deliveries as the webhook would, without waking anybody."""
    rows = []
    for i in range(size):
        body = message_body(
            business=business, customer=f"65432100{i % 100:05d}", mid=f"aWdf{run}b{i:07d}",
            text=f"Hello {i}, is this still available?", ts_ms=1_718_000_000_000 + i,
        )  # fmt: skip
        rows.append((body, sha256_hex(body)))
    with stack.pg.connect(stack.dbname) as conn, conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO webhooks_webhookevent (received_at, raw_body, body_sha256, signed_with,"
            " status, attempts, last_error) VALUES (now(), %s, %s, 'meta', 'pending', 0, '')",
            rows,
        )


def backlog(
    stack: AppStack, business: str, api_key: str, *, size: int, timeout: float
) -> dict[str, Any]:
    """P6: drain ``size`` stored events; rate, worker memory, API latency meanwhile."""
    _store_backlog(stack, business, size, run=str(os.getpid()))
    worker = stack.processes["worker"]
    samples: list[tuple[float, int]] = []
    api_ms: list[float] = []
    api_errors = 0
    done = threading.Event()

    def sample_memory() -> None:
        while not done.is_set():
            samples.append((time.monotonic(), _rss_kib([worker.pid, *children_of(worker.pid)])))
            done.wait(0.5)

    def poll_api() -> None:
        nonlocal api_errors
        while not done.is_set():
            tick = time.monotonic()
            status, _ = http_request(
                stack.web_port, "GET", "/api/v1/conversations?page_size=20",
                headers={"Authorization": f"Bearer {api_key}"}, timeout=10,
            )  # fmt: skip
            if status == 200:
                api_ms.append((time.monotonic() - tick) * 1000)
            else:
                api_errors += 1
            done.wait(max(0.0, tick + 0.2 - time.monotonic()))

    # The same read with the worker idle (nobody has woken it yet): what the drain adds.
    idle_ms: list[float] = []
    for i in range(55):
        tick = time.monotonic()
        status, _ = http_request(
            stack.web_port, "GET", "/api/v1/conversations?page_size=20",
            headers={"Authorization": f"Bearer {api_key}"}, timeout=10,
        )  # fmt: skip
        if status == 200 and i >= 5:  # the first reads warm gunicorn's workers up
            idle_ms.append((time.monotonic() - tick) * 1000)
        time.sleep(0.05)
    threads = [threading.Thread(target=sample_memory), threading.Thread(target=poll_api)]
    for thread in threads:
        thread.start()
    began = time.monotonic()
    stack.start_relay()
    try:
        drained = _wait_drained(stack, timeout=timeout)
    finally:
        done.set()
        for thread in threads:
            thread.join(15)
    with stack.pg.connect(stack.dbname) as conn:
        row = conn.execute(
            "SELECT count(*), extract(epoch FROM max(processed_at) - min(processed_at))"
            " FROM webhooks_webhookevent WHERE status = 'processed'"
        ).fetchone()
    assert row is not None
    processed, span = int(row[0]), float(row[1] or 0.0)
    counts = db_counts(stack.pg, stack.dbname)
    rss = [kib for _, kib in samples]
    third = max(1, len(rss) // 3)
    return {
        "size": size,
        "drained": drained["drained"],
        "wall_seconds": round(time.monotonic() - began, 1),
        "processed": processed,
        "quarantined": counts.quarantined,
        "messages": counts.messages,
        "duplicate_messages": counts.duplicate_messages,
        "events_per_second": round(processed / span, 1) if span else None,
        "worker_rss_mib": {
            "first_third_max": round(max(rss[:third], default=0) / 1024, 1),
            "last_third_max": round(max(rss[-third:], default=0) / 1024, 1),
            "max": round(max(rss, default=0) / 1024, 1),
        },
        "api": {
            "requests": len(api_ms),
            "errors": api_errors,
            "p50_ms": round(loadgen.percentile([m / 1000 for m in api_ms], 50) * 1000, 1),
            "p99_ms": round(loadgen.percentile([m / 1000 for m in api_ms], 99) * 1000, 1),
            "idle_p50_ms": round(loadgen.percentile([m / 1000 for m in idle_ms], 50) * 1000, 1),
            "idle_p99_ms": round(loadgen.percentile([m / 1000 for m in idle_ms], 99) * 1000, 1),
        },
    }


# -- P2: step load to saturation ------------------------------------------------------------

CAPACITY_RESULTS = ROOT / "bench" / "results" / "p2_capacity.json"
BASELINE = ROOT / "bench" / "baselines" / "p2_capacity.json"
WEB_BASELINE = ROOT / "bench" / "baselines" / "p2_capacity_web.json"
BARE_BASELINE = ROOT / "bench" / "baselines" / "p2_capacity_bare.json"
P2_P99_LIMIT_MS = 250.0
P2_NON_2XX_LIMIT = 0.01  # share of a step's requests
P2_TARGET_RPS = 600
P2_REGRESSION = 0.20  # fail when saturation falls more than this below the baseline's


def _holds(step: dict[str, Any]) -> bool:
    """A step holds while its p99 is within 250 ms and at most 1 % of its answers are not 2xx."""
    requests = step.get("requests", 0)
    return (
        requests > 0
        and step["p99_ms"] <= P2_P99_LIMIT_MS
        and step["non_2xx"] <= P2_NON_2XX_LIMIT * requests
    )


CPU_GROUPS = ("web", "worker", "relay", "postgresql", "redis", "generator")


def cpu_seconds(stack: AppStack) -> dict[str, float]:
    """CPU seconds so far of each part of the stack, of this generator and of the machine.

    PostgreSQL and Redis are the whole servers (other databases and the shared Redis
    included); each of the stack's processes is counted with the children it reaped.
    """
    parts = {name: group_cpu(process.pid) for name, process in stack.processes.items()}
    return {
        **{name: parts.get(name, 0.0) for name in ("web", "worker", "relay")},
        **server_cpu(),
        "generator": proc_cpu(os.getpid()),
        "machine": machine_busy()[0],
    }


def cpu_ms_per_request(
    before: dict[str, float], after: dict[str, float], requests: int
) -> dict[str, float]:
    """Milliseconds of CPU per request of each part between two ``cpu_seconds`` readings."""
    if requests <= 0:
        return {}
    return {name: round(1000 * (after[name] - before[name]) / requests, 2) for name in before}


def capacity(stack: AppStack, events: Events, results: dict[str, Any]) -> None:
    """P2: open-loop steps of rising rate, stopped by the first step that does not hold.

    Each step starts with an empty backlog (the worker drains what the previous step stored,
    up to ``drain_timeout``), so steps compare with one another and with the baseline.
    """
    cap = results["capacity"]
    settings = cap["settings"]
    rate = settings["start"]
    while rate <= settings["max"]:
        backlog_at_start = db_counts(stack.pg, stack.dbname).pending
        request = _bare if settings.get("bare") else partial(events.request, f"k{rate}")
        cpu_before = cpu_seconds(stack)
        step = _step(stack.web_port, request, rate, settings["step_seconds"])
        step["backlog_at_start"] = backlog_at_start
        step["held"] = _holds(step)
        cap["steps"].append(step)
        _print_step("webhook", step)
        if step["held"] and not settings.get("web_only"):
            step["drain"] = _wait_drained(stack, timeout=settings["drain_timeout"])
        # Until the step's deliveries are processed, so the worker's share is all counted.
        step["cpu_ms_per_request"] = cpu_ms_per_request(
            cpu_before, cpu_seconds(stack), step.get("requests", 0)
        )
        if not step["held"]:
            return
        rate += settings["step"]


def _saturation(steps: list[dict[str, Any]]) -> tuple[int | None, bool]:
    """The last rate that held, and whether a step failed after it (False: never saturated)."""
    held = None
    for step in steps:
        if not step["held"]:
            return held, True
        held = step["rate"]
    return held, False


def _git_commit() -> str | None:
    try:
        result = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=40"],
            cwd=ROOT, capture_output=True, text=True, timeout=10, check=True,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None


def _baseline_candidate(results: dict[str, Any]) -> dict[str, Any]:
    """What ``--save-baseline`` stores: the saturation and how it was measured."""
    cap = results["capacity"]
    keep = ("rate", "requests", "ok_per_second", "p50_ms", "p99_ms", "non_2xx", "held")
    return {
        "row": "P2",
        "saturation_rps": cap["saturation_rps"],
        "saturated": cap["saturated"],
        "date": results["date"],
        "commit": results.get("commit"),
        "machine": results["machine"],
        "settings": cap["settings"],
        "steps": [{k: step.get(k) for k in keep} for step in cap["steps"]],
    }


def _compare_with_baseline(
    saturation: int | None, *, complete: bool, path: Path, settings: dict[str, Any]
) -> dict[str, Any]:
    if not path.exists():
        return {"status": "no baseline yet", "regression": False, "path": str(path)}
    baseline = json.loads(path.read_text())
    base = baseline["saturation_rps"] or 0
    floor = base * (1 - P2_REGRESSION)
    current = saturation or 0
    comparison: dict[str, Any] = {
        "path": str(path),
        "baseline_rps": base,
        "baseline_date": baseline.get("date"),
        "baseline_commit": baseline.get("commit"),
        "floor_rps": round(floor, 1),
        "change_percent": round(100 * (current - base) / base, 1) if base else None,
        "same_settings": baseline.get("settings") == settings,
    }
    if current >= floor:
        comparison.update(status="ok", regression=False)
    elif not complete:
        # A run cut short knows a lower bound only: below the floor it proves nothing.
        comparison.update(status="not compared: the run was incomplete", regression=False)
    else:
        comparison.update(status="regression", regression=True)
    return comparison


def _capacity_report(results: dict[str, Any]) -> list[str]:
    cap = results["capacity"]
    settings = cap["settings"]
    saturation, saturated = _saturation(cap["steps"])
    cap["saturation_rps"] = saturation
    cap["saturated"] = saturated
    complete = "incomplete" not in results
    meets = saturation is not None and saturation >= P2_TARGET_RPS
    cap["target"] = {"saturation_rps": P2_TARGET_RPS, "met": meets}
    comparison = _compare_with_baseline(
        saturation, complete=complete, path=Path(cap["baseline_path"]), settings=settings
    )
    cap["baseline"] = comparison
    results["baseline_candidate"] = _baseline_candidate(results)
    results["verdicts"] = {
        "P2": _verdict(meets),
        "P2_baseline": {"ok": "PASS", "regression": "FAIL"}.get(
            comparison["status"], comparison["status"]
        ),
    }
    lines = [
        f"P2 capacity: open-loop signed one-message webhooks, {settings['step_seconds']:.0f} s "
        f"per step from {settings['start']} req/s by {settings['step']} up to "
        f"{settings['max']}; a step holds while p99 <= {P2_P99_LIMIT_MS:.0f} ms and non-2xx "
        f"<= {P2_NON_2XX_LIMIT * 100:.0f} %",
        f"{'offered/s':>9} | {'ok/s':>7} {'p50 ms':>8} {'p99 ms':>9} {'non-2xx':>7} | "
        f"{'backlog at start':>16} | held",
    ]
    for step in cap["steps"]:
        lines.append(
            f"{step['rate']:>9} | {step.get('ok_per_second')!s:>7} {step.get('p50_ms')!s:>8} "
            f"{step.get('p99_ms')!s:>9} {step.get('non_2xx')!s:>7} | "
            f"{step['backlog_at_start']:>16} | {'yes' if step['held'] else 'NO'}"
        )
    cpu_steps = [step for step in cap["steps"] if step.get("cpu_ms_per_request")]
    if cpu_steps:
        lines.append("")
        lines.append(
            "CPU per request, ms (held steps: until the worker processed the step's deliveries; "
            "PostgreSQL and Redis: the whole servers)"
        )
        lines.append(
            f"{'offered/s':>9} | " + " ".join(f"{n:>10}" for n in (*CPU_GROUPS, "machine"))
        )
        for step in cpu_steps:
            cpu = step["cpu_ms_per_request"]
            lines.append(
                f"{step['rate']:>9} | "
                + " ".join(f"{cpu.get(n, 0.0):>10.2f}" for n in (*CPU_GROUPS, "machine"))
            )
    if saturation is None:
        figure = "none: the first step did not hold"
    elif saturated:
        figure = f"{saturation} req/s (the last step that held)"
    else:
        figure = f">= {saturation} req/s (every step held; raise --capacity-max)"
    lines.append("")
    lines.append(
        f"saturation: {figure}; target >= {P2_TARGET_RPS} req/s: "
        + ("met" if meets else "BELOW TARGET")
        + ("" if complete else " (incomplete run: a lower bound)")
    )
    if comparison["status"] == "no baseline yet":
        lines.append(
            f"baseline: no baseline yet ({comparison['path']}); this run's candidate is "
            "`baseline_candidate` in the JSON, --save-baseline stores it"
        )
    else:
        lines.append(
            f"baseline: {comparison['baseline_rps']} req/s of {comparison['baseline_date']}, "
            f"floor {comparison['floor_rps']} req/s (-{P2_REGRESSION * 100:.0f} %); this run "
            f"{comparison['change_percent']} % -> {comparison['status'].upper()}"
            + ("" if comparison["same_settings"] else " (the baseline used other step settings)")
        )
    return lines


def capacity_baseline(args: argparse.Namespace) -> Path:
    """The baseline a capacity run compares with and ``--save-baseline`` writes: each mode has
    its own unless ``--baseline`` names a file."""
    if args.baseline != BASELINE:
        return Path(args.baseline)
    return BARE_BASELINE if args.bare else WEB_BASELINE if args.web_only else BASELINE


def capacity_exit_status(results: dict[str, Any], *, save: bool) -> int:
    """2: a baseline was asked for and not saved; 1: a regression against the baseline."""
    if save and not save_baseline(results, Path(results["capacity"]["baseline_path"])):
        return 2
    return 1 if results["capacity"]["baseline"]["regression"] else 0


def save_baseline(results: dict[str, Any], path: Path) -> bool:
    if "incomplete" in results or not results.get("capacity", {}).get("steps"):
        print("not saving a baseline: the run is incomplete", file=sys.stderr)
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results["baseline_candidate"], indent=2) + "\n")
    print(f"baseline saved: {path}")
    return True


# -- P7: soak -------------------------------------------------------------------------------

SOAK_RESULTS = ROOT / "bench" / "results" / "p7_soak.json"
SOAK_GROUPS = ("web", "worker", "relay")
P7_RSS_GROWTH_PERCENT = 10.0
P7_CONNECTION_SLACK = 1  # a process being replaced may hold its connection for a moment


def _group_rss_kib(stack: AppStack) -> dict[str, int]:
    """Resident memory per process group (KiB): gunicorn master and workers, the Celery
    worker and its pool, the relay, and their total."""
    rss = {}
    for name in SOAK_GROUPS:
        process = stack.processes.get(name)
        if process is None or process.poll() is not None:
            rss[name] = 0
            continue
        rss[name] = _rss_kib([process.pid, *children_of(process.pid)])
    rss["total"] = sum(rss.values())
    return rss


class SoakSampler:
    """Samples memory, database connections and broker state every ``interval`` seconds."""

    def __init__(
        self,
        stack: AppStack,
        broker: dict[str, Any],
        *,
        interval: float,
        samples: list[dict[str, Any]],
        progress: Callable[[], dict[str, int]],
    ) -> None:
        self.stack = stack
        self.broker = broker
        self.interval = interval
        self.samples = samples
        self.progress = progress
        self.redis = Redis.from_url(stack.redis_url, socket_timeout=2)
        self.conn = stack.pg.connect(stack.dbname)
        self.began = time.monotonic()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-sampler", daemon=True)

    def _try(self, read: Callable[[], int]) -> int | None:
        try:
            return read()
        except Exception:  # one missed figure, not a stopped soak
            return None

    def _pending(self) -> int:
        row = self.conn.execute(
            f"SELECT count(*) FROM {WEBHOOK_TABLE} WHERE status = 'pending'"  # noqa: S608
        ).fetchone()
        assert row is not None
        return int(row[0])

    def sample(self) -> dict[str, Any]:
        prefix = self.broker["prefix"]
        sample: dict[str, Any] = {
            "t": round(time.monotonic() - self.began, 1),
            "rss_kib": _group_rss_kib(self.stack),
            "pg_connections": self._try(lambda: database_connections(self.conn, self.stack.dbname)),
            "unacked": self._try(lambda: int(self.redis.hlen(self.broker["unacked"]))),
            "webhooks_queue": self._try(lambda: int(self.redis.llen(f"{prefix}webhooks"))),
            "pending_events": self._try(self._pending),
            "load_average_1m": round(os.getloadavg()[0], 2),
            **self.progress(),
        }
        self.samples.append(sample)
        rss = sample["rss_kib"]
        print(
            f"  t={sample['t']:>7.1f} s  RSS MiB web {rss['web'] / 1024:6.1f} worker "
            f"{rss['worker'] / 1024:6.1f} relay {rss['relay'] / 1024:5.1f}  pg conns "
            f"{sample['pg_connections']}  unacked {sample['unacked']}  queue "
            f"{sample['webhooks_queue']}  pending {sample['pending_events']}  sent "
            f"{sample['sent']} non-2xx {sample['non_2xx']}  load {sample['load_average_1m']}",
            flush=True,
        )
        return sample

    def _run(self) -> None:
        tick = 0
        while not self._done.is_set():
            self.sample()
            tick += 1
            self._done.wait(max(0.0, self.began + tick * self.interval - time.monotonic()))

    def start(self) -> None:
        self.began = time.monotonic()
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling; one last sample closes the series."""
        self._done.set()
        self._thread.join(30)
        self.sample()
        self.conn.close()
        self.redis.close()


def soak(stack: AppStack, events: Events, results: dict[str, Any]) -> None:
    """P7: signed deliveries at a steady rate for the whole run, the stack sampled meanwhile."""
    s = results["soak"]
    broker = broker_settings(stack)
    s["broker"] = broker
    s["unacked_bound"] = stack.worker_concurrency * int(broker["prefetch_multiplier"])
    acked: set[str] = set()
    latencies: array[float] = array("d")
    counts = {"sent": 0, "ok": 0, "non_2xx": 0}
    errors: dict[str, int] = {}

    def on_outcome(outcome: loadgen.Outcome) -> None:
        counts["sent"] += 1
        latencies.append(outcome.latency)
        if outcome.status == 200:
            acked.add(outcome.key[1])
        if outcome.ok:
            counts["ok"] += 1
        else:
            counts["non_2xx"] += 1
            label = outcome.error or str(outcome.status)
            errors[label] = errors.get(label, 0) + 1

    sampler = SoakSampler(
        stack, broker, interval=s["interval"], samples=s["samples"], progress=lambda: dict(counts)
    )
    sampler.start()
    try:
        asyncio.run(
            loadgen.open_loop_stream(
                stack.web_port, partial(events.request, "s"),
                rate=s["rate"], duration=s["seconds"], on_outcome=on_outcome,
            )
        )  # fmt: skip
    finally:
        sampler.stop()
        s["load"] = {
            **counts,
            "errors": errors,
            "p50_ms": round(loadgen.percentile(latencies, 50) * 1000, 2),
            "p99_ms": round(loadgen.percentile(latencies, 99) * 1000, 2),
            "max_ms": round(max(latencies, default=float("nan")) * 1000, 2),
        }
    print("load finished; waiting for the worker to process what was stored")
    s["drain"] = _wait_drained(stack, timeout=s["drain_timeout"])
    not_processed = events_not_processed(stack.pg, stack.dbname)
    statuses: dict[str, int] = {}
    for digest in acked & not_processed.keys():
        statuses[not_processed[digest]] = statuses.get(not_processed[digest], 0) + 1
    counts_after = db_counts(stack.pg, stack.dbname)
    s["delivery"] = {
        "acked": len(acked),
        "lost": len(acked - stored_digests(stack.pg, stack.dbname)),
        "not_processed": sum(statuses.values()),
        "not_processed_by_status": statuses,
        "duplicate_messages": counts_after.duplicate_messages,
    }


def _series(samples: list[dict[str, Any]], read: Callable[[dict[str, Any]], Any]) -> list[Any]:
    return [v for v in map(read, samples) if v is not None]


def _slope_per_hour(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, value) points, per hour."""
    if len(points) < 2:
        return None
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    if not spread:
        return None
    return 3600 * sum((t - mean_t) * (v - mean_v) for t, v in points) / spread


def soak_analysis(s: dict[str, Any]) -> dict[str, Any]:
    """First/last/max of each figure, RSS growth after the warm-up, and the P7 checks.

    Thirds are of the samples after the warm-up: connections are stable when the last third's
    highest count is at most one above the first third's; the broker's ``unacked`` hash has not
    grown when the last third's highest length is within the first third's or within what a
    healthy worker holds (concurrency x prefetch multiplier).
    """
    samples = s["samples"]
    ref = next((i for i, x in enumerate(samples) if x["t"] >= s["warmup_seconds"]), None)
    after = samples[ref:] if ref is not None else samples[-1:]
    third = max(1, len(after) // 3)
    first_third, last_third = after[:third], after[-third:]
    analysis: dict[str, Any] = {"reference_t": after[0]["t"], "samples": len(samples)}

    rss: dict[str, Any] = {}
    for group in (*SOAK_GROUPS, "total"):
        values = [x["rss_kib"][group] for x in samples]
        base, last = after[0]["rss_kib"][group], samples[-1]["rss_kib"][group]
        rss[group] = {
            "first_mib": round(values[0] / 1024, 1),
            "reference_mib": round(base / 1024, 1),
            "last_mib": round(last / 1024, 1),
            "max_mib": round(max(values) / 1024, 1),
            "growth_percent": round(100 * (last - base) / base, 1) if base else None,
        }
    analysis["rss"] = rss
    rss_ok = all(
        g["growth_percent"] is not None and g["growth_percent"] < P7_RSS_GROWTH_PERCENT
        for g in rss.values()
    )

    conns = _series(samples, lambda x: x["pg_connections"])
    conns_after = _series(after, lambda x: x["pg_connections"])
    c_first = max(_series(first_third, lambda x: x["pg_connections"]), default=None)
    c_last = max(_series(last_third, lambda x: x["pg_connections"]), default=None)
    conn_ok = c_first is not None and c_last is not None and c_last <= c_first + P7_CONNECTION_SLACK
    analysis["pg_connections"] = {
        "first": conns[0] if conns else None,
        "last": conns[-1] if conns else None,
        "max": max(conns, default=None),
        "min_after_warmup": min(conns_after, default=None),
        "max_after_warmup": max(conns_after, default=None),
        "spread_after_warmup": max(conns_after) - min(conns_after) if conns_after else None,
        "first_third_max": c_first,
        "last_third_max": c_last,
        "stable": conn_ok,
    }

    unacked = _series(samples, lambda x: x["unacked"])
    u_first = max(_series(first_third, lambda x: x["unacked"]), default=None)
    u_last = max(_series(last_third, lambda x: x["unacked"]), default=None)
    unacked_ok = (
        u_first is not None and u_last is not None and u_last <= max(u_first, s["unacked_bound"])
    )
    slope = _slope_per_hour([(x["t"], x["unacked"]) for x in after if x["unacked"] is not None])
    analysis["unacked"] = {
        "key": s["broker"]["unacked"],
        "first": unacked[0] if unacked else None,
        "last": unacked[-1] if unacked else None,
        "max": max(unacked, default=None),
        "first_third_max": u_first,
        "last_third_max": u_last,
        "healthy_bound": s["unacked_bound"],
        "trend_per_hour": round(slope, 2) if slope is not None else None,
        "no_growth": unacked_ok,
    }
    for name in ("webhooks_queue", "pending_events"):
        values = [x[name] for x in samples if x[name] is not None]
        analysis[name] = {
            "first": values[0] if values else None,
            "last": values[-1] if values else None,
            "max": max(values, default=None),
        }

    delivery = s.get("delivery")
    lost_ok = (
        delivery is not None
        and s["drain"]["drained"]
        and delivery["lost"] == 0
        and delivery["not_processed"] == 0
    )
    analysis["checks"] = {
        "rss_growth_below_10_percent": rss_ok,
        "pg_connections_stable": conn_ok,
        "unacked_no_growth": unacked_ok,
        "nothing_lost": lost_ok,
    }
    analysis["pass"] = all(analysis["checks"].values())
    return analysis


def _soak_report(results: dict[str, Any]) -> list[str]:
    s = results["soak"]
    lines = [
        f"P7 soak: {s['seconds']:.0f} s at {s['rate']} req/s, sampled every "
        f"{s['interval']:.0f} s, warm-up {s['warmup_seconds']:.0f} s (targets: {TARGETS['P7']})"
    ]
    if not s["samples"]:
        results["verdicts"] = {"P7": "FAIL"}
        return [*lines, "no samples -> FAIL"]
    a = s["analysis"] = soak_analysis(s)
    results["verdicts"] = {"P7": _verdict(a["pass"])}
    load = s.get("load", {})
    lines.append(
        f"load: {load.get('sent')} sent, {load.get('ok')} ok, {load.get('non_2xx')} non-2xx, "
        f"p50 {load.get('p50_ms')} ms, p99 {load.get('p99_ms')} ms, max {load.get('max_ms')} ms"
    )
    lines.append(
        f"{'RSS MiB':>8} | {'first':>7} {'t=' + str(a['reference_t']) + ' s':>10} "
        f"{'last':>7} {'max':>7} | growth"
    )
    for group, g in a["rss"].items():
        lines.append(
            f"{group:>8} | {g['first_mib']:>7} {g['reference_mib']:>10} {g['last_mib']:>7} "
            f"{g['max_mib']:>7} | {g['growth_percent']} %"
        )
    c, u = a["pg_connections"], a["unacked"]
    lines += [
        f"PostgreSQL connections: first {c['first']}, last {c['last']}, max {c['max']}; after "
        f"warm-up {c['min_after_warmup']}-{c['max_after_warmup']} (spread "
        f"{c['spread_after_warmup']}), max first third {c['first_third_max']}, last third "
        f"{c['last_third_max']} -> {'stable' if c['stable'] else 'NOT STABLE'}",
        f"Redis `{u['key']}`: first {u['first']}, last {u['last']}, max {u['max']}; max first "
        f"third {u['first_third_max']}, last third {u['last_third_max']} (a healthy worker "
        f"holds up to {u['healthy_bound']}); trend {u['trend_per_hour']}/h -> "
        + ("no growth" if u["no_growth"] else "GROWING"),
        f"webhooks queue: first {a['webhooks_queue']['first']}, last "
        f"{a['webhooks_queue']['last']}, max {a['webhooks_queue']['max']}; pending events: "
        f"first {a['pending_events']['first']}, last {a['pending_events']['last']}, max "
        f"{a['pending_events']['max']}",
    ]
    d = s.get("delivery")
    if d is None:
        lines.append("delivery: not checked (the run stopped early)")
    else:
        lines.append(
            f"delivery: {d['acked']} acknowledged, {d['lost']} lost, {d['not_processed']} not "
            f"processed {d['not_processed_by_status'] or ''}(drained "
            f"{'in ' + str(s['drain']['seconds']) + ' s' if s['drain']['drained'] else 'NO'}), "
            f"{d['duplicate_messages']} duplicate messages"
        )
    failed = [name for name, ok in a["checks"].items() if not ok]
    lines.append(f"-> P7 {_verdict(a['pass'])}" + (f" ({', '.join(failed)})" if failed else ""))
    return lines


# -- report ---------------------------------------------------------------------------------


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def report(results: dict[str, Any]) -> str:
    lines = [f"Webhook benchmark, {results['date']} ({results['machine']['cpus']} CPUs)", ""]
    if "incomplete" in results:
        lines += [f"INCOMPLETE: {results['incomplete']}", ""]
    if "capacity" in results:
        return "\n".join(lines + _capacity_report(results))
    if "soak" in results:
        return "\n".join(lines + _soak_report(results))
    b = results.get("backlog")
    if b is not None:
        ok = (
            b["drained"] and (b["events_per_second"] or 0) >= 500 and b["api"]["p99_ms"] < 300
        )  # fmt: skip
        results["verdicts"] = {"P6": _verdict(ok)}
        lines.append(
            f"P6 backlog of {b['size']} stored events (target >= 500 ev/s, flat memory, API "
            f"p99 < 300 ms): {b['events_per_second']} ev/s, {b['processed']} processed, "
            f"{b['quarantined']} quarantined, {b['duplicate_messages']} duplicate messages, "
            f"{b['wall_seconds']} s from relay start; worker RSS max {b['worker_rss_mib']} "
            f"MiB; API p50 {b['api']['p50_ms']} ms, p99 {b['api']['p99_ms']} ms "
            f"({b['api']['requests']} reads, {b['api']['errors']} errors; idle before the "
            f"drain p50 {b['api'].get('idle_p50_ms')} ms, p99 {b['api'].get('idle_p99_ms')} ms)"
            f" -> {_verdict(ok)}"
        )
        return "\n".join(lines)
    results.setdefault("webhook_steps", [])
    results.setdefault("bare_steps", [])
    steps = min(len(results["webhook_steps"]), len(results["bare_steps"]))
    results["webhook_steps"] = results["webhook_steps"][:steps]
    lines.append("(a) webhook acks vs (b) bare Django view, open loop, fixed rates")
    lines.append(
        f"{'rate/s':>7} | {'webhook ok/s':>12} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>7} | "
        f"{'bare ok/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>7} | "
        f"{'left':>6} {'drain ev/s':>10}"
    )
    for hook, bare in zip(results["webhook_steps"], results["bare_steps"], strict=True):
        lines.append(
            f"{hook['rate']:>7} | {hook['ok_per_second']!s:>12} {hook['p50_ms']:>8} "
            f"{hook['p99_ms']:>8} {hook['non_2xx']:>7} | {bare['ok_per_second']!s:>9} "
            f"{bare['p50_ms']:>8} {bare['p99_ms']:>8} {bare['non_2xx']:>7} | "
            f"{hook['drain']['backlog_at_end_of_load']:>6} "
            f"{hook['drain']['events_per_second'] or '-'!s:>10}"
        )
    verdicts: dict[str, str] = {}
    results["verdicts"] = verdicts
    e2e = results.get("e2e")
    if e2e is None:
        return "\n".join(lines)
    verdicts["P3"] = _verdict(e2e["p95_ms"] < 2000 and e2e["p99_ms"] < 5000)
    lines += [
        "",
        f"(c) P3 end to end at {e2e['rate']} msg/s for {e2e['seconds']:.0f} s "
        f"(target {TARGETS['P3']}): p50 {e2e['p50_ms']} ms, p95 {e2e['p95_ms']} ms, "
        f"p99 {e2e['p99_ms']} ms, max {e2e['max_ms']} ms; {e2e['visible']}/{e2e['acked']} "
        f"visible -> {verdicts['P3']}",
    ]
    p = results.get("p1")
    if p is None:
        return "\n".join(lines)
    p1_ok = (
        p["p50_ms"] <= 15 and p["p99_ms"] <= 100 and p["max_ms"] <= 1000
        and p["non_2xx"] == 0 and p["lost"] == 0
    )  # fmt: skip
    lines += [
        f"(d) P1 at {p['rate']} req/s for {p['seconds']:.0f} s (target {TARGETS['P1']}): "
        f"p50 {p['p50_ms']} ms, p99 {p['p99_ms']} ms, max {p['max_ms']} ms, "
        f"non-2xx {p['non_2xx']}, lost {p['lost']} -> {_verdict(p1_ok)}",
    ]
    verdicts["P1"] = _verdict(p1_ok)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="100,200,400", help="fixed rates for (a)/(b)")
    parser.add_argument("--step-seconds", type=float, default=10)
    parser.add_argument("--e2e-rate", type=int, default=50)
    parser.add_argument("--e2e-seconds", type=float, default=30)
    parser.add_argument("--p1-rate", type=int, default=200)
    parser.add_argument("--p1-seconds", type=float, default=60)
    parser.add_argument(
        "--backlog", type=int, default=0, help="P6 only: drain this many stored events"
    )
    parser.add_argument(
        "--capacity", action="store_true", help="P2 only: step the rate until p99 > 250 ms"
    )
    parser.add_argument("--capacity-start", type=int, default=100, help="req/s of the first step")
    parser.add_argument("--capacity-step", type=int, default=100, help="req/s added per step")
    parser.add_argument("--capacity-max", type=int, default=1500, help="req/s of the last step")
    parser.add_argument("--baseline", type=Path, default=BASELINE, help="P2 baseline file")
    parser.add_argument(
        "--web-only",
        action="store_true",
        help="P2: stop the worker and relay first (the web tier alone; deliveries wait stored)",
    )
    parser.add_argument(
        "--bare",
        action="store_true",
        help="P2: step the bare Django view instead (this machine's ceiling; implies --web-only)",
    )
    parser.add_argument(
        "--save-baseline", action="store_true", help="P2: store this run as the baseline"
    )
    parser.add_argument(
        "--soak", type=float, default=0, metavar="SECONDS", help="P7 only: soak this long"
    )
    parser.add_argument("--soak-rate", type=int, default=100, help="P7: webhook req/s")
    parser.add_argument("--soak-interval", type=float, default=10, help="P7: seconds per sample")
    parser.add_argument(
        "--soak-warmup", type=float, default=None,
        help="P7: seconds before the RSS reference sample (default: 60 s or 10 %% of the run, "
        "whichever is longer, at most half the run)",
    )  # fmt: skip
    parser.add_argument(
        "--drain-timeout", type=float, default=180,
        help="P2 between steps, P7 after the load: seconds to wait for the worker",
    )  # fmt: skip
    parser.add_argument(
        "--time-limit", type=int, default=None,
        help="seconds, whole run (default 570; for --capacity and --soak, from their sizes)",
    )  # fmt: skip
    parser.add_argument("--output", type=Path, default=None, help="JSON file of the results")
    args = parser.parse_args(argv)
    if sum([bool(args.backlog), args.capacity, bool(args.soak)]) > 1:
        parser.error("--backlog, --capacity and --soak are separate runs")
    if args.save_baseline and not args.capacity:
        parser.error("--save-baseline goes with --capacity")
    output = args.output or (
        CAPACITY_RESULTS if args.capacity else SOAK_RESULTS if args.soak else RESULTS
    )
    time_limit = args.time_limit or _time_limit(args)

    signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(time_limit)
    began = time.monotonic()
    results: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {
            "cpus": len(os.sched_getaffinity(0)),
            "python": platform.python_version(),
            "host": platform.node(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        },
        "targets": TARGETS,
    }
    load = os.getloadavg()[0]
    if load > results["machine"]["cpus"]:
        print(
            f"warning: load average {load:.1f} on {results['machine']['cpus']} CPUs: other work "
            "competes with the stack and the figures will be pessimistic",
            file=sys.stderr,
        )
    if args.capacity:
        results["commit"] = _git_commit()
        results["capacity"] = {
            "settings": {
                "start": args.capacity_start, "step": args.capacity_step,
                "max": args.capacity_max, "step_seconds": args.step_seconds,
                "drain_timeout": args.drain_timeout, "web_only": args.web_only or args.bare,
                "bare": args.bare,
            },
            "steps": [],
            "baseline_path": str(capacity_baseline(args)),
        }  # fmt: skip
    if args.soak:
        results["soak"] = {
            "seconds": args.soak, "rate": args.soak_rate, "interval": args.soak_interval,
            "warmup_seconds": args.soak_warmup
            if args.soak_warmup is not None
            else min(max(60.0, args.soak / 10), args.soak / 2),
            "drain_timeout": args.drain_timeout, "samples": [],
        }  # fmt: skip
    pg = Postgres()
    dbname = f"bench_igdm_{os.getpid()}"
    with workspace("igdm-bench-") as workdir:
        redis = PrivateRedis(workdir)
        stack = AppStack(pg, dbname, redis.url, workdir)
        try:
            redis.start()
            pg.create_database(dbname)
            seed = stack.seed()
            if args.backlog:
                stack.start_web()
                stack.start_worker()
                stack.wait_web_ready()
                print(f"P6: draining a backlog of {args.backlog} stored events")
                results["backlog"] = backlog(
                    stack, seed["ig_user_id"], seed["api_key"], size=args.backlog,
                    timeout=time_limit - (time.monotonic() - began) - 30,
                )  # fmt: skip
                raise _SingleRowDone
            stack.start()
            results["web_workers"] = len(stack.web_worker_pids())
            events = Events(seed["ig_user_id"], run=str(os.getpid()))
            print(f"stack up on 127.0.0.1:{stack.web_port}, {results['web_workers']} workers")
            _step(stack.web_port, lambda i: events.request("w", i), 50, 3)  # warm-up
            _step(stack.web_port, _bare, 50, 2)
            _wait_drained(stack, timeout=60)
            if args.capacity and (args.web_only or args.bare):
                # The web tier alone, as when workers run on other machines: deliveries wait
                # in the table, and the two CPUs serve acknowledgements only.
                for name in ("worker", "relay"):
                    process = stack.processes.pop(name, None)
                    if process is not None:
                        stop_group(process)
            if args.capacity:
                print("P2: stepping the webhook rate until a step does not hold")
                capacity(stack, events, results)
                raise _SingleRowDone
            if args.soak:
                print(f"P7: soak of {args.soak:.0f} s at {args.soak_rate} req/s")
                soak(stack, events, results)
                raise _SingleRowDone
            rates = [int(r) for r in args.rates.split(",") if r]
            print("(a)/(b) fixed rates")
            ack_and_bare(stack, events, rates, args.step_seconds, results)
            print("(c) end to end")
            results["e2e"] = end_to_end(
                stack, events, seed["api_key"],
                rate=args.e2e_rate, seconds=args.e2e_seconds, poll=0.1,
            )  # fmt: skip
            print(f"(d) P1 {args.p1_rate} req/s for {args.p1_seconds:.0f} s")
            results["p1"] = p1(stack, events, rate=args.p1_rate, seconds=args.p1_seconds)
        except _SingleRowDone:
            pass
        except TimeLimit:
            results["incomplete"] = f"stopped by the {time_limit} s time limit"
            print(results["incomplete"], file=sys.stderr)
        except BaseException:
            for name in ("web", "worker", "relay"):
                print(f"--- {name} log tail ---\n{stack.log_tail(name)}", file=sys.stderr)
            raise
        finally:
            signal.alarm(0)
            stack.stop()
            redis.stop()
            try:
                pg.drop_database(dbname)
            except Exception as exc:
                print(f"could not drop {dbname}: {exc}", file=sys.stderr)
    status = finish_run(results, report, output, began)
    if args.capacity:
        return capacity_exit_status(results, save=args.save_baseline) or status
    return status


def _time_limit(args: argparse.Namespace) -> int:
    """Seconds the whole run may take: stack start, warm-up, the mode's own length, margin."""
    if args.capacity:
        steps = max(1, (args.capacity_max - args.capacity_start) // args.capacity_step + 1)
        return int(steps * (args.step_seconds + args.drain_timeout + 15) + 300)
    if args.soak:
        return int(args.soak + args.drain_timeout + 300)
    return 570


if __name__ == "__main__":
    sys.exit(main())
