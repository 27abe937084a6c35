"""The job that floods the ``default`` queue in the queue-isolation benchmark (row P4).

A cheap stand-in for the platform's background jobs (token upkeep, profile fetches, partner
callbacks): one small database read. Its name matches no route, so it goes to the ``default``
queue as those jobs do. The benchmark's workers load this module with ``--include bench.tasks``;
the product never imports it.

Run in a process whose environment ``bench/stack.py`` prepared::

    python -m bench.tasks --enqueue 10000

publishes that many jobs and prints one JSON object (count, queue, seconds taken).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from celery import shared_task

FLOOD_TASK = "bench.flood_job"


@shared_task(name=FLOOD_TASK, ignore_result=True)
def flood_job(number: int) -> int:
    """One round trip to the database, like the read a small upkeep job starts with."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT %s::integer + 1", [number])
        row = cursor.fetchone()
    return int(row[0]) if row else 0


def flood_queue() -> str:
    """The queue the router sends the flood job to (``default``, as for the upkeep jobs)."""
    from config.celery_app import app

    return str(app.amqp.router.route({}, FLOOD_TASK)["queue"].name)


def enqueue(count: int) -> dict[str, Any]:
    """Publish ``count`` flood jobs over one broker connection."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    import django

    django.setup()
    from config.celery_app import app

    start = time.monotonic()
    with app.producer_or_acquire() as producer:
        for number in range(count):
            flood_job.apply_async(args=(number,), producer=producer, retry=False)
    return {
        "enqueued": count,
        "queue": flood_queue(),
        "seconds": round(time.monotonic() - start, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--enqueue", type=int, required=True, help="number of jobs to publish")
    args = parser.parse_args(argv)
    print(json.dumps(enqueue(args.enqueue)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
