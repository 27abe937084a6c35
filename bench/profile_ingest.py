"""Where the time of webhook handling goes: the ingest view, or draining a stored backlog.

    .venv/bin/python -m bench.profile_ingest [-n 2000] [--top 25]
    .venv/bin/python -m bench.profile_ingest --drain [-n 3000] [--customers 100] [--profiler none]

Creates a fresh database on the local PostgreSQL (dropped afterwards) and configures Django with
``bench.settings`` in this process.

Default: posts N signed one-message deliveries through Django's test client (full middleware
stack, no HTTP server), profiling only the requests with cProfile; prints the mean time per
request and the top functions by cumulative and by own time.

``--drain``: stores N one-message deliveries the way the webhook does (from ``--customers``
customers, each delivery a new message), then processes them in this process with the relay
(``webhooks.relay.drain``), as a worker does. Prints the SQL statements per processed event
(counted with Django's query log, first delivery of a new customer and a typical one of a
known customer), the drain rate, and a pyinstrument profile when it is installed (cProfile
otherwise).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from bench.stack import AppStack, Postgres, message_body, sign


def _print_cprofile(profiler: cProfile.Profile, top: int) -> None:
    for order in ("cumulative", "tottime"):
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(order)
        stats.print_stats(top)
        text = out.getvalue()
        print(f"== top {top} by {order} ==")
        print(text[text.find("   ncalls") :])


def _statement_kind(sql: str) -> str:
    words = sql.split()
    head = words[0].upper() if words else "?"
    if head in ("SAVEPOINT", "RELEASE", "ROLLBACK"):
        return head
    table = ""
    if head == "SELECT" and sql.startswith('SELECT "'):
        return f"SELECT {sql.split(chr(34), 2)[1]}"
    for marker in ('FROM "', 'INTO "', 'UPDATE "'):
        at = sql.find(marker)
        if at >= 0:
            table = sql[at + len(marker) :].split('"', 1)[0]
            break
    if "pg_advisory" in sql:
        table = "advisory lock"
    return f"{head} {table}".strip()


def profile_drain(business: str, n: int, customers: int, top: int, profiler_name: str) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from bench.stack import message_body as body_of
    from webhooks import relay, services
    from webhooks.models import WebhookEvent

    def store(i: int, customer: int) -> None:
        services.webhook_event_store(
            raw_body=body_of(
                business=business, customer=f"65432100{customer:05d}", mid=f"aWdfdrain{i:08d}",
                text=f"Hello {i}, is this still available?", ts_ms=1_718_000_000_000 + i,
            ),
            signed_with="meta",
        )  # fmt: skip

    def counted(what: str) -> None:
        start = time.perf_counter()
        with CaptureQueriesContext(connection) as queries:
            assert relay.drain_batch(1) == 1
        elapsed = (time.perf_counter() - start) * 1000
        kinds = Counter(_statement_kind(q["sql"]) for q in queries.captured_queries)
        spent: defaultdict[str, float] = defaultdict(float)
        for q in queries.captured_queries:
            spent[_statement_kind(q["sql"])] += float(q["time"]) * 1000
        print(
            f"{what}: {len(queries)} statements, {sum(spent.values()):.1f} ms in them, "
            f"{elapsed:.1f} ms in all"
        )
        for kind, number in kinds.most_common():
            print(f"  {number:3} {kind:40} {spent[kind]:6.2f} ms")

    # The statement budget: a new customer's first message, then a known customer's message.
    store(-1, customers + 1)
    counted("first message of a new customer")
    for k in range(2, 5):
        store(-k, customers + 1)
        counted("message of a known customer (typical)")

    for i in range(n):
        store(i, i % customers)
    print(f"\n{n} deliveries stored from {customers} customers; draining in this process")
    profiler: Any
    try:
        if profiler_name != "pyinstrument":
            raise ImportError
        from pyinstrument import Profiler

        profiler, sampling = Profiler(interval=0.001), True
    except ImportError:
        profiler, sampling = cProfile.Profile(), False
    measure_only = profiler_name == "none"
    start = time.perf_counter()
    if measure_only:
        pass
    elif sampling:
        profiler.start()
    else:
        profiler.enable()
    handled = relay.drain(time_budget=3600)
    if measure_only:
        pass
    elif sampling:
        profiler.stop()
    else:
        profiler.disable()
    elapsed = time.perf_counter() - start
    pending = WebhookEvent.objects.filter(status=WebhookEvent.Status.PENDING).count()
    print(
        f"{handled} events processed in {elapsed:.2f} s ({profiler_name}): "
        f"{handled / elapsed:.0f} events/s in one process ({pending} left pending), "
        f"load average {os.getloadavg()[0]:.1f}\n"
    )
    if measure_only:
        return
    if sampling:
        print(
            profiler.output_text(
                unicode=False, color=False, show_all=bool(os.environ.get("PROFILE_SHOW_ALL"))
            )
        )
    else:
        _print_cprofile(profiler, top)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--requests", type=int, default=None, help="deliveries")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--drain", action="store_true", help="profile processing, not ingest")
    parser.add_argument("--customers", type=int, default=100, help="with --drain")
    parser.add_argument(
        "--profiler", choices=["pyinstrument", "cprofile", "none"], default="pyinstrument",
        help="with --drain; none measures the rate alone",
    )  # fmt: skip
    args = parser.parse_args(argv)
    requests = args.requests if args.requests is not None else (3000 if args.drain else 2000)

    pg = Postgres()
    dbname = f"bench_profile_{os.getpid()}"
    workdir = Path(tempfile.mkdtemp(prefix="igdm-profile-"))
    stack = AppStack(pg, dbname, "redis://127.0.0.1:6379/14", workdir)
    pg.create_database(dbname)
    try:
        os.environ.update(stack.env)
        os.environ["DJANGO_ALLOWED_HOSTS"] = "testserver"
        from bench.seed import seed

        business = str(seed(migrate=True)["ig_user_id"])
        if args.drain:
            profile_drain(business, requests, args.customers, args.top, args.profiler)
            return 0
        from django.db import connection
        from django.test import Client

        client = Client()

        def post(i: int) -> int:
            body = message_body(
                business=business, customer=f"65432100{i % 100:05d}", mid=f"aWdfprof{i:08d}",
                text=f"Hello {i}", ts_ms=1_718_000_000_000 + i,
            )  # fmt: skip
            response = client.post(
                "/webhooks/meta", body, content_type="application/json", secure=True,
                HTTP_X_HUB_SIGNATURE_256=sign(body),
            )  # fmt: skip
            return response.status_code

        for i in range(50):  # warm-up: imports, URL resolver, first connection
            assert post(-1 - i) == 200
        profiler = cProfile.Profile()
        start = time.perf_counter()
        profiler.enable()
        statuses = [post(i) for i in range(requests)]
        profiler.disable()
        elapsed = time.perf_counter() - start
        connection.close()
        assert statuses.count(200) == requests, set(statuses)

        print(
            f"{requests} deliveries in {elapsed:.2f} s under cProfile: "
            f"{elapsed / requests * 1000:.2f} ms each (profiling inflates this ~2x)\n"
        )
        _print_cprofile(profiler, args.top)
    finally:
        from django.db import connections

        connections.close_all()
        pg.drop_database(dbname)
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
