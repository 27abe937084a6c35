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

Prints a table and writes ``bench/results/webhooks.json``. The database and every process are
removed afterwards. Bounded: the whole run stops after ``--time-limit`` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import signal
import sys
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from bench import loadgen
from bench.stack import (
    ROOT,
    AppStack,
    Postgres,
    PrivateRedis,
    children_of,
    db_counts,
    finish_run,
    http_request,
    message_body,
    sha256_hex,
    sign,
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
}


class TimeLimit(Exception):
    pass


class _BacklogDone(Exception):
    """The P6 run measures nothing else."""


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
        },
    }


# -- report ---------------------------------------------------------------------------------


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def report(results: dict[str, Any]) -> str:
    lines = [f"Webhook benchmark, {results['date']} ({results['machine']['cpus']} CPUs)", ""]
    if "incomplete" in results:
        lines += [f"INCOMPLETE: {results['incomplete']}", ""]
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
            f"({b['api']['requests']} reads, {b['api']['errors']} errors) -> {_verdict(ok)}"
        )
        return "\n".join(lines)
    results.setdefault("webhook_steps", [])
    results.setdefault("bare_steps", [])
    steps = min(len(results["webhook_steps"]), len(results["bare_steps"]))
    results["webhook_steps"] = results["webhook_steps"][:steps]
    lines.append("(a) webhook acks vs (b) bare Django view, open loop, fixed rates")
    lines.append(
        f"{'rate/s':>7} | {'webhook ok/s':>12} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>7} | "
        f"{'bare ok/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>7} | {'drain ev/s':>10}"
    )
    for hook, bare in zip(results["webhook_steps"], results["bare_steps"], strict=True):
        lines.append(
            f"{hook['rate']:>7} | {hook['ok_per_second']!s:>12} {hook['p50_ms']:>8} "
            f"{hook['p99_ms']:>8} {hook['non_2xx']:>7} | {bare['ok_per_second']!s:>9} "
            f"{bare['p50_ms']:>8} {bare['p99_ms']:>8} {bare['non_2xx']:>7} | "
            f"{hook['drain']['events_per_second']!s:>10}"
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
    parser.add_argument("--time-limit", type=int, default=570, help="seconds, whole run")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(args.time_limit)
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
                    timeout=args.time_limit - (time.monotonic() - began) - 30,
                )  # fmt: skip
                raise _BacklogDone
            stack.start()
            results["web_workers"] = len(stack.web_worker_pids())
            events = Events(seed["ig_user_id"], run=str(os.getpid()))
            print(f"stack up on 127.0.0.1:{stack.web_port}, {results['web_workers']} workers")
            _step(stack.web_port, lambda i: events.request("w", i), 50, 3)  # warm-up
            _step(stack.web_port, _bare, 50, 2)
            _wait_drained(stack, timeout=60)
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
        except _BacklogDone:
            pass
        except TimeLimit:
            results["incomplete"] = f"stopped by the {args.time_limit} s time limit"
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
    return finish_run(results, report, args.output, began)


if __name__ == "__main__":
    sys.exit(main())
