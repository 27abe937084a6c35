"""Outbound benchmark (D11): sends per second end to end and queue wait at the configured rate.

    python bench/outbound.py [--sends 1000] [--accounts 1] [--workers 2] [--threads 50]
                             [--latency-ms 200] [--db-pool on] [--arrival-rate 0] [--bulk]
                             [--sandbox process]

Runs against the local PostgreSQL and Redis (a private database and key prefix, removed
afterwards) and a Meta sandbox answering every call after ``--latency-ms``. Queues
``--sends`` automated replies to ``--customers`` open threads spread over ``--accounts``
Instagram accounts (one account is capped by its own send budget, 80 text sends/s by default;
D11's 200/s is a box-wide figure, so it needs several), starts the outbound workers (thread
pool) and the outbox relay, and reports:

- sends/s end to end (first to last accepted by the sandbox), and the slowest and fastest
  whole minute from the first send accepted (D11 asks for a sustained rate),
- queue wait (queued -> claimed by a worker) and time to accepted (queued -> Meta's answer),
  p50/p95/max,
- rate-limit answers from the sandbox (must be 0) and the configured per-account rate,
- CPU milliseconds per send of each process group and how busy the whole machine was,
  measured from the first send accepted to the last (in the open loop, from the first send
  queued), with the load average before and after the run. Keys of ``cpu_ms_per_send``:
  ``workers``, ``relay``, ``bench`` (this process: seeding, queueing in the open loop,
  polling), ``sandbox`` (the sandbox process), ``postgresql`` (the whole server), ``redis``,
  ``machine_ms_per_send`` (every CPU on the machine) and ``machine_busy_share``; with
  ``--sandbox inline`` the sandbox runs in this process and ``bench`` and ``sandbox`` are one
  key, ``bench+sandbox``.

``--sandbox process`` (the default) serves the sandbox as its own process
(``python -m integrations.meta.sandbox serve`` on a free 127.0.0.1 port, the default world,
no webhook delivery), so its HTTP threads do not compete with the queueing threads of the open
loop for this process's interpreter; ``--sandbox inline`` serves it from threads of this
process, as earlier versions of this benchmark did.

By default every send is queued before the workers start (a backlog drained as fast as the
budgets allow). ``--arrival-rate R`` queues them instead at R per second while the workers run
(an open loop: each send at its own time, whatever the backlog), for D11's "enqueue → accepted
p95 < 1 s at 50 sends/s"; the time to accepted then counts from each send's queueing.

``--bulk`` seeds a long run fast (D11's ten minutes at 200/s is 120,000 sends): one send per
thread is queued the ordinary way, the rest are copies of those rows written in bulk.

``--db-pool off`` starts the workers without their connection pool (``WORKER_DB_POOL``), one
database connection per task, to show what the pool buys.

Prints a table and writes ``bench/results/outbound.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from integrations.meta.sandbox.testing import RunningSandbox

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
os.environ.setdefault("TEST_RUN_ID", f"bench-outbound-{os.getpid()}")

from bench.stack import group_cpu, machine_busy, proc_cpu, server_cpu  # noqa: E402


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _per_minute(sent_at: list[Any]) -> list[float]:
    """Sends per second in each whole minute from the first send accepted: D11 asks for a rate
    sustained, so the slowest minute counts, not only the average."""
    if not sent_at:
        return []
    start = min(sent_at)
    counts: dict[int, int] = {}
    for moment in sent_at:
        minute = int((moment - start).total_seconds() // 60)
        counts[minute] = counts.get(minute, 0) + 1
    whole = int((max(sent_at) - start).total_seconds() // 60)
    return [counts.get(minute, 0) / 60.0 for minute in range(whole)]


def _cpu_snapshot(workers: list[int], relay: int, sandbox: int | None) -> dict[str, float]:
    """CPU seconds so far per process group, and of the PostgreSQL and Redis servers
    (``server_cpu``). ``sandbox`` is the sandbox process; without one the sandbox is part of
    this process."""
    busy, total = machine_busy()
    own: dict[str, float] = (
        {"bench": proc_cpu(os.getpid()), "sandbox": proc_cpu(sandbox)}
        if sandbox is not None
        else {"bench+sandbox": proc_cpu(os.getpid())}
    )
    return {
        "workers": sum(group_cpu(pid) for pid in workers),
        "relay": group_cpu(relay),
        **own,
        **server_cpu(),
        "machine_busy": busy,
        "machine_total": total,
    }


class SandboxProcess:
    """The sandbox served by its own process, driven over its control API: the part of the
    in-process ``RunningSandbox`` this benchmark uses."""

    def __init__(self, process: subprocess.Popen[bytes], url: str) -> None:
        self.process = process
        self.pid = process.pid
        self.url = url
        self.facebook_url = f"{url}/facebook"
        self.instagram_url = f"{url}/instagram"

    def control(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        from integrations.meta.sandbox.__main__ import call

        return call(self.url, method, path, body)

    def customer(self, ref: str, action: str, **body: Any) -> Any:
        return self.control("POST", f"customers/{ref}/{action}", body)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def _sandbox_process(log: Path) -> Iterator[SandboxProcess]:
    """Serve the default sandbox world (as ``running_sandbox()`` does: seeded, no webhook
    delivery, state in memory) from its own process for the duration."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "integrations.meta.sandbox", "serve"]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*command, "--port", str(port), "--no-deliver"],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the sandbox exited ({process.returncode}), see {log}")
            try:
                with urllib.request.urlopen(f"{url}/", timeout=2):  # noqa: S310
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the sandbox did not answer on {url}") from None
                time.sleep(0.1)
        yield SandboxProcess(process, url)
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _analyze() -> None:
    """Refresh the planner's statistics of the outbox and message tables after a bulk seed, as
    a long-lived database would have them (planned on empty-table statistics, the first
    minute of a long run crawls)."""
    from django.db import connection

    from messaging.models import Message, OutboundJob

    tables = ", ".join(
        connection.ops.quote_name(model._meta.db_table) for model in (OutboundJob, Message)
    )
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {tables}")


class Housekeeping:
    """What PostgreSQL's autovacuum does for the outbox during a long run, done by this process
    when the server runs without it (CI servers often do): ``VACUUM ANALYZE`` of the outbox,
    message and attempt tables every ``every`` seconds. Without it a long run is measured
    against a table of dead row versions planned on the statistics of the seeding (every row
    waiting), which no production server with autovacuum on would show."""

    def __init__(self, every: float) -> None:
        self.every = every
        self.runs = 0
        self.seconds = 0.0
        self.server_autovacuum = True
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SHOW autovacuum")
            self.server_autovacuum = cursor.fetchone()[0] == "on"
        if self.server_autovacuum or self.every <= 0:
            return
        self._thread = threading.Thread(target=self._run, name="housekeeping", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from django.db import connection

        from messaging.models import Message, OutboundJob, SendAttempt

        tables = ", ".join(
            connection.ops.quote_name(model._meta.db_table)
            for model in (OutboundJob, Message, SendAttempt)
        )
        try:
            while not self._stop.wait(self.every):
                began = time.monotonic()
                with connection.cursor() as cursor:
                    cursor.execute(f"VACUUM (ANALYZE) {tables}")
                self.seconds += time.monotonic() - began
                self.runs += 1
        finally:
            connection.close()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def describe(self) -> str:
        if self.server_autovacuum:
            return "the server's autovacuum"
        if self.every <= 0:
            return "none (the server's autovacuum is off)"
        return (
            f"VACUUM ANALYZE every {self.every:g} s by the benchmark (the server's autovacuum "
            f"is off): {self.runs} runs, {self.seconds:.1f} s"
        )


def _copy_sends(total: int) -> None:
    """Make ``total`` queued sends out of the ones already queued (one per thread): each copy
    is the same message and outbox row with its own text, written in bulk. For long runs, where
    queueing 100,000 sends one by one would take longer than sending them."""
    from copy import copy

    from messaging.models import Message, OutboundJob

    templates = list(OutboundJob.objects.select_related("message").order_by("id"))
    made = len(templates)
    while made < total:
        chunk = min(5000, total - made)
        pairs = []
        for k in range(chunk):
            template = templates[(made + k) % len(templates)]
            message = copy(template.message)
            assert message is not None
            message.pk = None
            message._state.adding = True
            message.text = f"bench {made + k}"
            pairs.append((template, message))
        Message.objects.bulk_create([message for _, message in pairs])
        jobs = []
        for template, message in pairs:
            job = copy(template)
            job.pk = None
            job._state.adding = True
            job.message = message
            job.payload = {**template.payload, "text": message.text}
            # The template, its thread's head, was handed to the queue when it was queued; a
            # copy waits behind it as a later send of the same thread does, for the relay.
            job.status = OutboundJob.Status.PENDING
            job.published_at = None
            jobs.append(job)
        OutboundJob.objects.bulk_create(jobs)
        made += chunk


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sends", type=int, default=1000)
    parser.add_argument("--customers", type=int, default=50, help="threads, over all accounts")
    parser.add_argument("--accounts", type=int, default=1, help="Instagram accounts sending")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=50)
    parser.add_argument("--latency-ms", type=int, default=200)
    parser.add_argument("--rate", type=int, default=0, help="text sends/s (default: settings)")
    parser.add_argument(
        "--db-pool",
        choices=["on", "off"],
        default="on",
        help="workers borrow database connections from a pool (off: one per task)",
    )
    parser.add_argument("--arrival-threads", type=int, default=4, help="queueing threads")
    parser.add_argument(
        "--bulk",
        action="store_true",
        help="seed a long run fast: one send per thread queued, the rest copied in bulk",
    )
    parser.add_argument(
        "--arrival-rate",
        type=float,
        default=0.0,
        help="queue the sends at this many per second while the workers run (open loop)",
    )
    parser.add_argument(
        "--vacuum-every",
        type=float,
        default=30.0,
        help="when the server's autovacuum is off, VACUUM ANALYZE the outbox every this many "
        "seconds during the run (0: never)",
    )
    parser.add_argument(
        "--sandbox",
        choices=["process", "inline"],
        default="process",
        help="serve the Meta sandbox from its own process or from threads of this one",
    )
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings
    from django.db import connection
    from django.test.utils import setup_databases, teardown_databases
    from django_scopes import scope

    from config.celery_app import app
    from integrations.meta.sandbox.testing import running_sandbox
    from messaging.models import OutboundJob, SendAttempt
    from messaging.services import outbound
    from messaging.services.outbound import OutboundContent, Sender
    from tests.outbound import conftest as seed

    rate = args.rate or settings.OUTBOUND_RATE_LIMITS["text"][0]
    load_before = os.getloadavg()
    old = setup_databases(verbosity=0, interactive=False)
    processes: list[subprocess.Popen[bytes]] = []
    logs = ROOT / "var" / "bench-outbound"
    logs.mkdir(parents=True, exist_ok=True)
    try:
        app.control.purge()
        sbx: SandboxProcess | RunningSandbox
        with contextlib.ExitStack() as serving:
            if args.sandbox == "process":
                sbx = serving.enter_context(_sandbox_process(logs / "sandbox.log"))
                sandbox_pid: int | None = sbx.pid
            else:
                sbx = serving.enter_context(running_sandbox())
                sandbox_pid = None
            sbx.control(
                "POST",
                "rate_limits",
                {
                    "buc": {"limit": 10_000_000, "window_s": 3600},
                    "app": {"limit": 10_000_000, "window_s": 3600},
                },
            )
            from accounts.models import Tenant
            from tests.factories import TenantFactory

            tenant: Tenant = TenantFactory(name="Bench agency")  # type: ignore[assignment]
            with scope(tenant=tenant.pk):
                accounts = [
                    seed._account(
                        tenant, seed.ACME_PAGE, seed.ACME_IG, seed.ACME_TOKEN, "acme.store"
                    )
                ]
                for n in range(1, args.accounts):
                    made = sbx.control("POST", "accounts", {"username": f"bench{n}.shop"})
                    accounts.append(
                        seed._account(
                            tenant,
                            made["page_id"],
                            made["id"],
                            made["page_token"],
                            made["username"],
                        )
                    )
                outbound.messaging_settings_update(tenant_id=tenant.pk, disclosure_mode="never")
                threads = []
                for i in range(args.customers):
                    name = f"bench{i}"
                    account = accounts[i % len(accounts)]
                    sbx.control("POST", "customers", {"username": name, "name": name})
                    got = sbx.customer(name, "send", account=account.username, text="hello")
                    threads.append(seed.add_conversation(account, got["igsid"], None))
                from datetime import timedelta

                from django.utils import timezone

                for conv in threads:
                    conv.customer_last_message_at = timezone.now() - timedelta(minutes=1)
                    conv.window_opened_by = "message"
                    conv.save()
                sbx.control("POST", "settings", {"latency_ms": args.latency_ms})
                bot = Sender.automation("bench")

                def queue(i: int) -> None:
                    outbound.message_send(
                        conversation=threads[i % len(threads)],
                        sender=bot,
                        content=OutboundContent(kind="text", text=f"bench {i}"),
                    )

                if args.bulk and not args.arrival_rate:
                    # One send per thread the ordinary way, then copies of those rows.
                    for i in range(min(args.sends, len(threads))):
                        queue(i)
                    _copy_sends(args.sends)
                    _analyze()
                elif not args.arrival_rate:
                    for i in range(args.sends):
                        queue(i)
            db = settings.DATABASES["default"]
            env = {
                **os.environ,
                "DATABASE_URL": (
                    f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/"
                    f"{connection.settings_dict['NAME']}"
                ),
                "META_GRAPH_URL": sbx.facebook_url,
                "META_INSTAGRAM_GRAPH_URL": sbx.instagram_url,
                "META_APP_ID": seed.META_APP_ID,
                "META_APP_SECRET": seed.META_APP_SECRET,
                "OUTBOUND_RATE_TEXT": str(rate),
                "LOG_LEVEL": "WARNING",
                "WORKER_DB_POOL": "true" if args.db_pool == "on" else "false",
            }
            housekeeping = Housekeeping(args.vacuum_every)
            serving.callback(housekeeping.stop)
            housekeeping.start()
            started = time.monotonic()
            for n in range(args.workers):
                command = [*seed.worker_command(concurrency=args.threads)[:-2], "-l", "WARNING"]
                processes.append(
                    subprocess.Popen(
                        command,
                        cwd=ROOT,
                        env=env,
                        stdout=(logs / f"worker{n}.log").open("wb"),
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
            processes.append(
                subprocess.Popen(
                    seed.RELAY_COMMAND,
                    cwd=ROOT,
                    env=env,
                    stdout=(logs / "relay.log").open("wb"),
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
            worker_pids = [p.pid for p in processes[:-1]]
            relay_pid = processes[-1].pid
            arrival: dict[str, float] = {}
            first: tuple[int, dict[str, float]] | None = None
            if args.arrival_rate:
                # Open loop: each send is queued at its own time, whatever the backlog, so the
                # time to accepted is measured without coordinated omission.
                time.sleep(5)  # the workers and the relay are up
                # Several queueing threads (a send is several statements), each taking every
                # n-th send at its own time.
                begun = time.monotonic()
                # The CPU window starts with the first send queued: the polling below only
                # begins once every send is queued, when most are already accepted.
                first = (0, _cpu_snapshot(worker_pids, relay_pid, sandbox_pid))
                lateness: list[float] = []
                queueing: list[float] = []

                def arrive(offset: int) -> None:
                    from django.db import connection as own

                    with scope(tenant=tenant.pk):
                        for i in range(offset, args.sends, args.arrival_threads):
                            due = begun + i / args.arrival_rate
                            now = time.monotonic()
                            if due > now:
                                time.sleep(due - now)
                            else:
                                lateness.append(now - due)
                            start = time.monotonic()
                            queue(i)
                            queueing.append(time.monotonic() - start)
                    own.close()

                senders = [
                    threading.Thread(target=arrive, args=(n,)) for n in range(args.arrival_threads)
                ]
                for sender in senders:
                    sender.start()
                for sender in senders:
                    sender.join()
                took = time.monotonic() - begun
                late = max(lateness, default=0.0)
                arrival = {
                    "target_per_s": args.arrival_rate,
                    "achieved_per_s": round(args.sends / took, 1) if took else 0.0,
                    "most_late_s": round(late, 3),
                    "queue_call_p50_s": round(_percentile(queueing, 0.5), 3),
                    "queue_call_p95_s": round(_percentile(queueing, 0.95), 3),
                }
            with scope(tenant=tenant.pk):
                deadline = time.monotonic() + max(120, args.sends / 5)
                while True:
                    done = OutboundJob.objects.filter(status="sent").count()
                    if first is None and done:
                        first = (done, _cpu_snapshot(worker_pids, relay_pid, sandbox_pid))
                    if done >= args.sends or time.monotonic() > deadline:
                        break
                    time.sleep(0.25)
                last = (done, _cpu_snapshot(worker_pids, relay_pid, sandbox_pid))
                load_after = os.getloadavg()
                elapsed = time.monotonic() - started
                jobs = list(OutboundJob.objects.filter(status="sent").order_by("sent_at"))
                sent = len(jobs)
                first_sent = jobs[0].sent_at if jobs else None
                last_sent = jobs[-1].sent_at if jobs else None
                span = (
                    (last_sent - first_sent).total_seconds()
                    if sent > 1 and first_sent and last_sent
                    else 0
                )
                # Queue wait counts from when the workers were up to take rows (in the open
                # loop, from when each send was queued).
                t0 = jobs[0].created_at if args.arrival_rate and jobs else None
                t0 = t0 or (jobs[0].claimed_at if jobs else None)
                waits = [
                    (j.claimed_at - max(j.created_at, t0)).total_seconds()
                    for j in jobs
                    if j.claimed_at and t0
                ]
                accepted = [
                    (j.sent_at - max(j.created_at, t0)).total_seconds()
                    for j in jobs
                    if j.sent_at and t0
                ]
                limited = SendAttempt.objects.filter(outcome="rate_limited").count()
                minutes = _per_minute([j.sent_at for j in jobs if j.sent_at])
        cpu: dict[str, float] = {}
        if first is not None and last[0] > first[0]:
            count = last[0] - first[0]
            groups = [key for key in last[1] if not key.startswith("machine_")]
            for key in groups:
                cpu[key] = round((last[1][key] - first[1][key]) / count * 1000, 2)
            window = last[1]["machine_total"] - first[1]["machine_total"]
            busy = last[1]["machine_busy"] - first[1]["machine_busy"]
            cpu["machine_ms_per_send"] = round(busy / count * 1000, 2)
            cpu["machine_busy_share"] = round(busy / window, 2) if window else 0.0
        result = {
            "sends": args.sends,
            "sent": sent,
            "accounts": args.accounts,
            "customers": args.customers,
            "workers": args.workers,
            "threads_per_worker": args.threads,
            "meta_latency_ms": args.latency_ms,
            "configured_rate_per_s": rate,
            "sends_per_s": round((sent - 1) / span, 1) if span else 0.0,
            "wall_s": round(elapsed, 1),
            "minutes": len(minutes),
            "slowest_minute_per_s": round(min(minutes), 1) if minutes else None,
            "fastest_minute_per_s": round(max(minutes), 1) if minutes else None,
            "per_minute_per_s": [round(m, 1) for m in minutes],
            "queue_wait_p50_s": round(_percentile(waits, 0.5), 3),
            "queue_wait_p95_s": round(_percentile(waits, 0.95), 3),
            "queue_wait_max_s": round(max(waits, default=0.0), 3),
            "accepted_p50_s": round(_percentile(accepted, 0.5), 3),
            "accepted_p95_s": round(_percentile(accepted, 0.95), 3),
            "rate_limit_answers": limited,
            "db_pool": args.db_pool,
            "sandbox": args.sandbox,
            "arrival": arrival or "all queued before the workers started",
            "vacuum": housekeeping.describe(),
            "cpu_ms_per_send": cpu,
            "load_average_before": [round(v, 2) for v in load_before],
            "load_average_after": [round(v, 2) for v in load_after],
        }
    finally:
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, 9)
        app.control.purge()
        teardown_databases(old, verbosity=0)
    out = ROOT / "bench" / "results" / "outbound.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    width = max(len(k) for k in result)
    print("outbound benchmark")
    for key, value in result.items():
        print(f"  {key:<{width}}  {value}")
    print(f"written to {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
