"""Outbound benchmark (D11): sends per second end to end and queue wait at the configured rate.

    python bench/outbound.py [--sends 1000] [--workers 2] [--threads 50] [--latency-ms 200]

Runs against the local PostgreSQL and Redis (a private database and key prefix, removed
afterwards) and an in-process Meta sandbox answering every call after ``--latency-ms``. Queues
``--sends`` automated replies to ``--customers`` open threads of one account, starts the outbound
workers (thread pool) and the outbox relay, and reports:

- sends/s end to end (first to last accepted by the sandbox),
- queue wait (queued -> claimed by a worker) and time to accepted (queued -> Meta's answer),
  p50/p95/max,
- rate-limit answers from the sandbox (must be 0) and the configured per-account rate.

Prints a table and writes ``bench/results/outbound.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
os.environ.setdefault("TEST_RUN_ID", f"bench-outbound-{os.getpid()}")


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sends", type=int, default=1000)
    parser.add_argument("--customers", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=50)
    parser.add_argument("--latency-ms", type=int, default=200)
    parser.add_argument("--rate", type=int, default=0, help="text sends/s (default: settings)")
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
    old = setup_databases(verbosity=0, interactive=False)
    processes: list[subprocess.Popen[bytes]] = []
    logs = ROOT / "var" / "bench-outbound"
    logs.mkdir(parents=True, exist_ok=True)
    try:
        app.control.purge()
        with running_sandbox() as sbx:
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
                acme = seed._account(
                    tenant, seed.ACME_PAGE, seed.ACME_IG, seed.ACME_TOKEN, "acme.store"
                )
                outbound.messaging_settings_update(tenant_id=tenant.pk, disclosure_mode="never")
                threads = []
                for i in range(args.customers):
                    name = f"bench{i}"
                    sbx.control("POST", "customers", {"username": name, "name": name})
                    got = sbx.customer(name, "send", account="acme.store", text="hello")
                    threads.append(seed.add_conversation(acme, got["igsid"], None))
                from datetime import timedelta

                from django.utils import timezone

                for conv in threads:
                    conv.customer_last_message_at = timezone.now() - timedelta(minutes=1)
                    conv.window_opened_by = "message"
                    conv.save()
                sbx.control("POST", "settings", {"latency_ms": args.latency_ms})
                bot = Sender.automation("bench")
                for i in range(args.sends):
                    outbound.message_send(
                        conversation=threads[i % len(threads)],
                        sender=bot,
                        content=OutboundContent(kind="text", text=f"bench {i}"),
                    )
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
            }
            started = time.monotonic()
            for n in range(args.workers):
                command = [
                    *seed.worker_command(concurrency=args.threads)[:-2],
                    "-l",
                    "WARNING",
                ]
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
            with scope(tenant=tenant.pk):
                deadline = time.monotonic() + max(120, args.sends / 5)
                while OutboundJob.objects.filter(status="sent").count() < args.sends:
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.5)
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
                # Queue wait counts from when the workers were up to take rows.
                t0 = jobs[0].claimed_at if jobs else None
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
        result = {
            "sends": args.sends,
            "sent": sent,
            "workers": args.workers,
            "threads_per_worker": args.threads,
            "meta_latency_ms": args.latency_ms,
            "configured_rate_per_s": rate,
            "sends_per_s": round((sent - 1) / span, 1) if span else 0.0,
            "wall_s": round(elapsed, 1),
            "queue_wait_p50_s": round(_percentile(waits, 0.5), 3),
            "queue_wait_p95_s": round(_percentile(waits, 0.95), 3),
            "queue_wait_max_s": round(max(waits, default=0.0), 3),
            "accepted_p50_s": round(_percentile(accepted, 0.5), 3),
            "accepted_p95_s": round(_percentile(accepted, 0.95), 3),
            "rate_limit_answers": limited,
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
