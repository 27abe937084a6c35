"""Queue isolation benchmark, reliability row P4: inbound processing under a flood of other jobs.

    .venv/bin/python -m bench.queue_isolation          # or: make bench-isolation

Row P4: flood the low-priority queue with 10,000 jobs while inbound messages keep arriving;
target: inbound processing p95 unchanged (within 20 %), through separate queues and workers.

Starts a private stack on loopback as ``bench/webhooks.py`` does (a fresh database on the local
PostgreSQL, a private redis-server, gunicorn with platform/gunicorn.conf.py, the webhook relay)
with the workers of the ``Procfile``: ``worker`` consumes only ``webhooks`` and
``worker_default`` consumes ``default,maintenance``. ``--layout shared`` runs one worker on all
three queues instead, as before they were split, for comparison. Graph API calls (the profile
fetch each new customer queues on ``default``) go to a stand-in on loopback that refuses them at
once, so they stay small jobs. Then:

1. baseline: signed webhooks (one text message each) at ``--rate`` for ``--seconds``, and the
   inbound processing latency of each stored event: ``processed_at - received_at``, from the
   event table (stored by the web process, processed by a worker; one clock);
2. flood: ``--flood`` jobs of ``bench.tasks.flood_job`` (one small database read each)
   published to the ``default`` queue, then at once the same webhook load, measured the same
   way. The ``default`` queue's length is sampled throughout, so the figures show how much of
   the measuring window the flood covered.

The verdict compares the two p95s: pass if the flood's is at most 20 % above the baseline's.
Prints a table and writes ``bench/results/queue_isolation.json``. The database and every
process are removed afterwards. Bounded: the whole run stops after ``--time-limit`` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import http.server
import json
import math
import os
import platform
import signal
import sys
import threading
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import redis

from bench import loadgen
from bench.stack import (
    HOST,
    PYTHON,
    ROOT,
    WEBHOOK_TABLE,
    AppStack,
    Postgres,
    PrivateRedis,
    finish_run,
    free_port,
    stop_group,
    wait_until,
    workspace,
)
from bench.webhooks import Events

RESULTS = ROOT / "bench" / "results" / "queue_isolation.json"
TOLERANCE = 0.20
TARGET = "inbound processing p95 under the flood within +20 % of the baseline p95"
FLOOD_QUEUE = "default"
CUSTOMERS = 100  # bench.webhooks.Events spreads its messages over this many customers

# The worker pools of the Procfile, by layout: (process name, queues, Celery node name).
LAYOUTS: dict[str, list[tuple[str, str, str]]] = {
    "split": [
        ("worker", "webhooks", "bench"),
        ("worker_default", "default,maintenance", "bench-default"),
    ],
    "shared": [("worker", "webhooks,default,maintenance", "bench")],
}


class TimeLimit(Exception):
    pass


def _on_alarm(signum: int, frame: Any) -> None:
    raise TimeLimit("the benchmark ran past its time limit")


@dataclass
class IsolationStack(AppStack):
    """The benchmark stack with the worker pools of one layout."""

    layout: str = "split"
    default_concurrency: int = 1

    def worker_commands(self) -> dict[str, list[str]]:
        commands = {}
        for name, queues, node in LAYOUTS[self.layout]:
            concurrency = (
                self.default_concurrency if name == "worker_default" else self.worker_concurrency
            )
            commands[name] = [
                PYTHON, "-m", "celery", "-A", "config.celery_app", "worker",
                "-Q", queues, "-P", "prefork", "-c", str(concurrency),
                "-O", "fair", "--max-tasks-per-child", "500",
                "--without-gossip", "--without-mingle", "--include", "bench.tasks",
                "-n", f"{node}-{self.web_port}@%h", "-l", "WARNING",
            ]  # fmt: skip
        return commands

    def start_worker(self) -> None:
        for name, command in self.worker_commands().items():
            self._spawn(name, command)

    def stop(self) -> None:
        process = self.processes.pop("worker_default", None)
        if process is not None:
            stop_group(process, grace=15)
        super().stop()


class GraphStandIn:
    """A Graph API on loopback that refuses every call at once (error 100, not retried).

    Each new customer's message queues a profile fetch on ``default``; against a closed port
    the client would retry every one for seconds and the default pool would do nothing else.
    Answered at once, they stay the small jobs they are against Meta.
    """

    BODY = json.dumps(
        {"error": {"message": "Unsupported request", "type": "GraphMethodException", "code": 100}}
    ).encode()

    def __init__(self) -> None:
        body = self.BODY

        class Handler(http.server.BaseHTTPRequestHandler):
            def _refuse(self) -> None:
                self.send_response(400)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_DELETE = _refuse  # noqa: N815

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self.server = http.server.ThreadingHTTPServer((HOST, free_port()), Handler)
        self.url = f"http://{HOST}:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self.server.shutdown()
        self.server.server_close()


class QueueSampler:
    """Samples the length of one broker queue every ``interval`` seconds in a thread."""

    def __init__(self, url: str, queue: str, interval: float = 0.25) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=2)
        self.queue = queue
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="queue-sampler", daemon=True)

    def length(self) -> int:
        return int(self.client.llen(self.queue))

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(redis.RedisError):  # a stopped broker: no sample
                self.samples.append((time.monotonic(), self.length()))
            self._stop.wait(self.interval)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def emptied_after(self, start: float) -> float | None:
        """Seconds from ``start`` to the first empty sample after the last non-empty one."""
        after = [(at, length) for at, length in self.samples if at >= start]
        busy = [index for index, (_, length) in enumerate(after) if length > 0]
        if not busy or busy[-1] + 1 >= len(after):
            return None
        return after[busy[-1] + 1][0] - start

    def window(self, start: float, end: float) -> dict[str, Any]:
        """The queue during [start, end]: length at both ends, the largest, share non-empty."""
        inside = [length for at, length in self.samples if start <= at <= end]
        if not inside:
            return {"samples": 0}
        return {
            "samples": len(inside),
            "at_start": inside[0],
            "at_end": inside[-1],
            "max": max(inside),
            "share_non_empty": round(sum(1 for n in inside if n > 0) / len(inside), 2),
        }


# -- measuring ----------------------------------------------------------------------------------


def _last_event_id(stack: AppStack) -> int:
    with stack.pg.connect(stack.dbname) as conn:
        row = conn.execute(f"SELECT coalesce(max(id), 0) FROM {WEBHOOK_TABLE}").fetchone()  # noqa: S608
    return int(row[0]) if row else 0


def _events_between(stack: AppStack, first: int, last: int) -> dict[str, Any]:
    """Status counts and processing latencies (seconds) of the events with ids in (first, last]."""
    with stack.pg.connect(stack.dbname) as conn:
        rows = conn.execute(
            f"""
            SELECT status, EXTRACT(EPOCH FROM (processed_at - received_at))::float8
            FROM {WEBHOOK_TABLE} WHERE id > %s AND id <= %s
            """,  # noqa: S608 (constant table name)
            [first, last],
        ).fetchall()
    counts: dict[str, int] = {}
    latencies = []
    for status, seconds in rows:
        counts[status] = counts.get(status, 0) + 1
        if status == "processed" and seconds is not None:
            latencies.append(float(seconds))
    return {"counts": counts, "latencies": latencies}


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def measure(
    stack: AppStack,
    events: Events,
    sampler: QueueSampler,
    *,
    phase: str,
    rate: int,
    seconds: float,
    settle_timeout: float,
) -> dict[str, Any]:
    """Send the webhook load and measure how long each stored event waited to be processed."""
    first = _last_event_id(stack)
    began = time.monotonic()
    outcomes = asyncio.run(
        loadgen.open_loop(
            stack.web_port, partial(events.request, phase), rate=rate, duration=seconds
        )
    )
    load_ended = time.monotonic()
    last = _last_event_id(stack)

    def settled() -> bool:
        return "pending" not in _events_between(stack, first, last)["counts"]

    try:
        wait_until(settled, timeout=settle_timeout, interval=0.25, what="phase processed")
        all_processed = True
    except TimeoutError:
        all_processed = False
    stored = _events_between(stack, first, last)
    latencies = stored["latencies"]
    acks = loadgen.summarise(outcomes)
    return {
        "phase": phase,
        "rate": rate,
        "seconds": seconds,
        "sent": acks.get("requests", 0),
        "acked": acks.get("ok", 0),
        "ack_p95_ms": acks.get("p95_ms"),
        "stored": sum(stored["counts"].values()),
        "statuses": stored["counts"],
        "all_processed": all_processed,
        "processed": len(latencies),
        "p50_ms": _ms(loadgen.percentile(latencies, 50)),
        "p95_ms": _ms(loadgen.percentile(latencies, 95)),
        "p99_ms": _ms(loadgen.percentile(latencies, 99)),
        "max_ms": _ms(max(latencies, default=float("nan"))),
        "default_queue": sampler.window(began, load_ended),
    }


def wait_queue_empty(sampler: QueueSampler, timeout: float) -> float | None:
    """Seconds until the sampled queue is empty, or None if it is still not after ``timeout``."""
    start = time.monotonic()
    try:
        wait_until(lambda: sampler.length() == 0, timeout=timeout, interval=0.25, what="flood")
    except TimeoutError:
        return None
    return time.monotonic() - start


# -- report -------------------------------------------------------------------------------------


def verdict(baseline_p95_ms: float, flood_p95_ms: float, tolerance: float = TOLERANCE) -> bool:
    """P4 passes when the p95 under the flood is at most ``tolerance`` above the baseline's."""
    return flood_p95_ms <= baseline_p95_ms * (1 + tolerance)


def report(results: dict[str, Any]) -> str:
    machine = results["machine"]
    lines = [
        f"Queue isolation benchmark (P4), {results['date']}, layout {results['layout']} "
        f"({machine['cpus']} CPUs, load average {machine['load_average_at_start'][0]} at start)",
        "",
    ]
    if "incomplete" in results:
        lines += [f"INCOMPLETE: {results['incomplete']}", ""]
    phases = [results[name] for name in ("baseline", "flood") if name in results]
    lines.append(
        f"{'phase':>8} | {'rate/s':>6} {'sent':>5} {'acked':>5} {'processed':>9} | "
        f"{'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8} | "
        f"{'default queue start/max/end':>27} {'non-empty':>9}"
    )
    for phase in phases:
        queue = phase["default_queue"]
        backlog = (
            f"{queue['at_start']}/{queue['max']}/{queue['at_end']}" if queue.get("samples") else "-"
        )
        lines.append(
            f"{phase['phase']:>8} | {phase['rate']:>6} {phase['sent']:>5} {phase['acked']:>5} "
            f"{phase['processed']:>9} | {phase['p50_ms']:>8} {phase['p95_ms']:>8} "
            f"{phase['p99_ms']:>8} {phase['max_ms']:>8} | {backlog:>27} "
            f"{queue.get('share_non_empty', '-')!s:>9}"
        )
    flood = results.get("flood_jobs")
    if flood:
        drained = flood.get("drained_after_seconds")
        lines += [
            "",
            f"flood: {flood['enqueued']} jobs on '{flood['queue']}' published in "
            f"{flood['seconds']} s; queue empty "
            + (f"{drained} s after publishing began" if drained is not None else "never (timeout)"),
        ]
    if len(phases) == 2:
        base, under = phases
        ok = verdict(base["p95_ms"], under["p95_ms"]) and under["all_processed"]
        change = (under["p95_ms"] / base["p95_ms"] - 1) * 100 if base["p95_ms"] else float("nan")
        results["verdict"] = {
            "P4": "PASS" if ok else "FAIL",
            "p95_change_percent": round(change, 1),
        }
        lines += [
            "",
            f"P4 ({TARGET}): baseline p95 {base['p95_ms']} ms, flood p95 {under['p95_ms']} ms "
            f"({change:+.1f} %) -> {results['verdict']['P4']}",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=20, help="webhooks per second, both phases")
    parser.add_argument("--seconds", type=float, default=30, help="length of each phase")
    parser.add_argument("--flood", type=int, default=10_000, help="jobs on the default queue")
    parser.add_argument("--layout", choices=sorted(LAYOUTS), default="split")
    parser.add_argument("--worker-concurrency", type=int, default=2, help="inbound pool")
    parser.add_argument("--default-concurrency", type=int, default=1, help="default pool")
    parser.add_argument("--flood-timeout", type=float, default=180, help="wait for the flood")
    parser.add_argument("--time-limit", type=int, default=600, help="seconds, whole run")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(args.time_limit)
    began = time.monotonic()
    results: dict[str, Any] = {
        "row": "P4",
        "target": TARGET,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "layout": args.layout,
        "pools": {name: queues for name, queues, _ in LAYOUTS[args.layout]},
        "concurrency": {"inbound": args.worker_concurrency, "default": args.default_concurrency},
        "machine": {
            "cpus": len(os.sched_getaffinity(0)),
            "python": platform.python_version(),
            "host": platform.node(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        },
    }
    load = os.getloadavg()[0]
    if load > results["machine"]["cpus"]:
        print(
            f"warning: load average {load:.1f} on {results['machine']['cpus']} CPUs: other work "
            "competes with the stack and the figures will be noisy",
            file=sys.stderr,
        )
    pg = Postgres()
    dbname = f"bench_igdm_p4_{os.getpid()}"
    settle = max(60.0, args.seconds * 2)
    with workspace("igdm-bench-p4-") as workdir:
        broker = PrivateRedis(workdir)
        graph = GraphStandIn()
        stack = IsolationStack(
            pg, dbname, broker.url, workdir,
            worker_concurrency=args.worker_concurrency,
            extra_env={
                "META_GRAPH_URL": graph.url,
                "META_INSTAGRAM_GRAPH_URL": graph.url,
                "META_INSTAGRAM_API_URL": graph.url,
            },
            layout=args.layout, default_concurrency=args.default_concurrency,
        )  # fmt: skip
        sampler: QueueSampler | None = None
        try:
            graph.start()
            broker.start()
            pg.create_database(dbname)
            seed = stack.seed()
            stack.start()
            sampler = QueueSampler(broker.url, FLOOD_QUEUE)
            sampler.start()
            events = Events(seed["ig_user_id"], run=str(os.getpid()))
            print(f"stack up on 127.0.0.1:{stack.web_port}, pools {results['pools']}", flush=True)
            # Warm-up: every customer's contact exists and the profile fetches have been taken.
            warm_up = math.ceil(CUSTOMERS / args.rate) + 1
            measure(
                stack, events, sampler, phase="w", rate=args.rate, seconds=warm_up,
                settle_timeout=60,
            )  # fmt: skip
            wait_queue_empty(sampler, timeout=60)

            print(f"baseline: {args.rate} webhooks/s for {args.seconds:.0f} s", flush=True)
            results["baseline"] = measure(
                stack, events, sampler, phase="b", rate=args.rate, seconds=args.seconds,
                settle_timeout=settle,
            )  # fmt: skip
            wait_queue_empty(sampler, timeout=60)

            print(f"flood: {args.flood} jobs on '{FLOOD_QUEUE}', then the same load", flush=True)
            published = time.monotonic()
            output = stack.run_python("-m", "bench.tasks", "--enqueue", str(args.flood))
            results["flood_jobs"] = json.loads(output.strip().splitlines()[-1])
            results["flood"] = measure(
                stack, events, sampler, phase="f", rate=args.rate, seconds=args.seconds,
                settle_timeout=settle,
            )  # fmt: skip
            if wait_queue_empty(sampler, timeout=args.flood_timeout) is not None:
                time.sleep(2 * sampler.interval)  # the sampler records the empty queue too
                emptied = sampler.emptied_after(published)
                if emptied is not None:
                    results["flood_jobs"]["drained_after_seconds"] = round(emptied, 1)
        except TimeLimit:
            results["incomplete"] = f"stopped by the {args.time_limit} s time limit"
            print(results["incomplete"], file=sys.stderr)
        except BaseException:
            for name in ("web", "relay", *stack.worker_commands()):
                print(f"--- {name} log tail ---\n{stack.log_tail(name)}", file=sys.stderr)
            raise
        finally:
            signal.alarm(0)
            if sampler is not None:
                sampler.stop()
            stack.stop()
            broker.stop()
            graph.stop()
            try:
                pg.drop_database(dbname)
            except Exception as exc:
                print(f"could not drop {dbname}: {exc}", file=sys.stderr)
    return finish_run(results, report, args.output, began)


if __name__ == "__main__":
    sys.exit(main())
