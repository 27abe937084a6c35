"""Where the time of one webhook acknowledgement goes: cProfile over N deliveries.

    .venv/bin/python -m bench.profile_ingest [-n 2000] [--top 25]

Creates a fresh database on the local PostgreSQL (dropped afterwards), configures Django with
``bench.settings`` in this process and posts N signed one-message deliveries through Django's
test client (full middleware stack, no HTTP server), profiling only the requests. Prints the
mean time per request and the top functions by cumulative and by own time.
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
from pathlib import Path

from bench.stack import AppStack, Postgres, message_body, sign


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--requests", type=int, default=2000)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)

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
        statuses = [post(i) for i in range(args.requests)]
        profiler.disable()
        elapsed = time.perf_counter() - start
        connection.close()
        assert statuses.count(200) == args.requests, set(statuses)

        print(
            f"{args.requests} deliveries in {elapsed:.2f} s under cProfile: "
            f"{elapsed / args.requests * 1000:.2f} ms each (profiling inflates this ~2x)\n"
        )
        for order in ("cumulative", "tottime"):
            out = io.StringIO()
            stats = pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(order)
            stats.print_stats(args.top)
            text = out.getvalue()
            print(f"== top {args.top} by {order} ==")
            print(text[text.find("   ncalls") :])
    finally:
        from django.db import connections

        connections.close_all()
        pg.drop_database(dbname)
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
