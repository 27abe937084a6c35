"""Retention on a million messages: how long the nightly purge takes, in how many batches, and
whether inbound webhooks keep being acknowledged meanwhile.

Stand-alone: it creates a fresh PostgreSQL database, migrates it, seeds one workspace with
``--messages`` messages (COPY, spread over the last ``--days`` days) and a retention period of
``--retention-days``; then it runs the purge (the same task the nightly beat queues) while a
thread posts signed Meta deliveries to ``/webhooks/meta`` through Django's test client and
times every acknowledgement. The result goes to ``bench/results/retention.json``::

    .venv/bin/python -m bench.retention [--messages 1000000] [--keep-database]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "retention.json"
BUSINESS = "17841400000000555"
APP_SECRET = "bench-retention-app-secret"  # noqa: S105 (a throwaway bench database)


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def _environment(database: str) -> None:
    os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{database}"
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.test"
    os.environ["META_APP_SECRET"] = APP_SECRET
    os.environ.setdefault("TEST_RUN_ID", f"bench-retention-{os.getpid()}")


def _create_database(database: str) -> None:
    import psycopg

    with psycopg.connect("postgres://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database}"')
        conn.execute(f'CREATE DATABASE "{database}"')


def _drop_database(database: str) -> None:
    import psycopg

    with psycopg.connect("postgres://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def _seed(*, messages: int, per_conversation: int, days: int) -> dict[str, Any]:
    """One workspace, one account, ``messages`` messages written with COPY."""
    from django.db import connection

    from accounts.models import InstagramAccount, Tenant, TenantCompliance

    tenant = Tenant.objects.create(name="Retention bench")
    # Scoped managers refuse queries outside a tenant scope, but creating a row is allowed.
    account = InstagramAccount.objects.create(
        tenant=tenant,
        ig_user_id=BUSINESS,
        username="retention_bench",
        login_kind=InstagramAccount.LoginKind.FACEBOOK,
        access_token="EAAG-bench-token",  # noqa: S106 (a fake token for a throwaway database)
    )
    conversations = max(1, messages // per_conversation)
    now = datetime.now(tz=UTC)
    started = time.monotonic()
    raw = connection.connection
    with raw.cursor() as cursor:
        with cursor.copy(
            "COPY messaging_contact (tenant_id, account_id, igsid, username, name, "
            "profile_pic_url, created_at) FROM STDIN"
        ) as copy:
            for n in range(conversations):
                copy.write_row((tenant.pk, account.pk, str(10**15 + n), f"c{n}", "", "", now))
        cursor.execute(
            "INSERT INTO messaging_conversation (tenant_id, account_id, contact_id, status, "
            "unread_count, window_opened_by, customer_read_mid, meta_conversation_id, "
            "owned_by_other_app, created_at, updated_at, last_message_at) "
            "SELECT tenant_id, account_id, id, 'open', 0, '', '', '', false, now(), now(), now() "
            "FROM messaging_contact WHERE account_id = %s",
            [account.pk],
        )
        cursor.execute(
            "SELECT id FROM messaging_conversation WHERE account_id = %s ORDER BY id",
            [account.pk],
        )
        conversation_ids = [row[0] for row in cursor.fetchall()]
        span = timedelta(days=days).total_seconds()
        with cursor.copy(
            "COPY messaging_message (tenant_id, account_id, conversation_id, mid, direction, "
            "sender_kind, sender_label, kind, text, attachments, reply_to_mid, "
            "quick_reply_payload, sent_at, created_at, status, error_code, error_message, "
            "app_id, is_standby, edit_count) FROM STDIN"
        ) as copy:
            buffer = io.StringIO()
            for n in range(messages):
                # Oldest first, as a real history grows: ids and times rise together.
                sent_at = now - timedelta(seconds=span * (1 - n / messages))
                conversation_id = conversation_ids[n % len(conversation_ids)]
                row = (
                    f"{tenant.pk}\t{account.pk}\t{conversation_id}\taWdfBENCH{n:09d}\tin\t"
                    f"customer\t\ttext\tbench message number {n} with some words\t"
                    f'[{{"type": "image", "url": "https://cdn.example/{n}.jpg"}}]\t\t\t'
                    f"{sent_at.isoformat()}\t{now.isoformat()}\treceived\t\t\t\tf\t0\n"
                )
                buffer.write(row)
                if n % 50_000 == 49_999:
                    copy.write(buffer.getvalue())
                    buffer = io.StringIO()
            copy.write(buffer.getvalue())
        cursor.execute("ANALYZE messaging_message")
    raw.commit()
    TenantCompliance.objects.create(tenant=tenant, message_retention_days=days // 2)
    return {
        "tenant_id": tenant.pk,
        "conversations": conversations,
        "seed_seconds": round(time.monotonic() - started, 1),
    }


class WebhookLoad(threading.Thread):
    """Posts signed deliveries back to back and times each acknowledgement."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.phase = "before"
        self.latencies: dict[str, list[float]] = {"before": [], "during": [], "after": []}
        self.failures: dict[str, int] = {"before": 0, "during": 0, "after": 0}

    def run(self) -> None:
        from django.db import connection
        from django.test import Client

        from integrations.meta.signatures import meta_json_bytes, sign_hub_body

        client = Client()
        n = 0
        try:
            while not self.stop.is_set():
                n += 1
                body = meta_json_bytes(
                    {
                        "object": "instagram",
                        "entry": [
                            {
                                "id": BUSINESS,
                                "time": int(time.time() * 1000),
                                "messaging": [
                                    {
                                        "sender": {"id": str(2 * 10**15 + n % 500)},
                                        "recipient": {"id": BUSINESS},
                                        "timestamp": int(time.time() * 1000),
                                        "message": {"mid": f"aWdfLIVE{n:09d}", "text": "hi"},
                                    }
                                ],
                            }
                        ],
                    }
                )
                phase = self.phase
                started = time.perf_counter()
                response = client.post(
                    "/webhooks/meta",
                    body,
                    content_type="application/json",
                    HTTP_X_HUB_SIGNATURE_256=sign_hub_body(body, APP_SECRET),
                )
                elapsed = (time.perf_counter() - started) * 1000
                if response.status_code == 200:
                    self.latencies[phase].append(elapsed)
                else:
                    self.failures[phase] += 1
        finally:
            connection.close()

    def summary(self, phase: str, seconds: float) -> dict[str, Any]:
        values = self.latencies[phase]
        return {
            "acks": len(values),
            "failures": self.failures[phase],
            "acks_per_second": round(len(values) / seconds, 1) if seconds else 0,
            "p50_ms": round(_percentile(values, 0.50), 2),
            "p99_ms": round(_percentile(values, 0.99), 2),
            "max_ms": round(max(values), 2) if values else 0,
            "mean_ms": round(statistics.fmean(values), 2) if values else 0,
        }


def run(args: argparse.Namespace) -> dict[str, Any]:
    database = f"bench_retention_{os.getpid()}"
    _environment(database)
    _create_database(database)
    try:
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connection

        call_command("migrate", verbosity=0, interactive=False)
        seeded = _seed(
            messages=args.messages, per_conversation=args.per_conversation, days=args.days
        )
        from django.conf import settings

        from accounts import tasks

        settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
        load = WebhookLoad()
        load.start()
        time.sleep(args.baseline_seconds)
        load.phase = "during"
        started = time.monotonic()
        tasks.retention_purge(seeded["tenant_id"])
        purge_seconds = time.monotonic() - started
        load.phase = "after"
        time.sleep(args.baseline_seconds)
        load.stop.set()
        load.join(timeout=30)

        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT last_retention_erased FROM accounts_tenantcompliance WHERE tenant_id = %s",
                [seeded["tenant_id"]],
            )
            stored_policy = cursor.fetchone()[0]
            policy = json.loads(stored_policy) if isinstance(stored_policy, str) else stored_policy
            cursor.execute(
                "SELECT count(*) FILTER (WHERE deleted_at IS NOT NULL), "
                "count(*) FILTER (WHERE text <> ''), count(*) FROM messaging_message "
                "WHERE tenant_id = %s",
                [seeded["tenant_id"]],
            )
            erased, kept, total = cursor.fetchone()
            cursor.execute("SELECT count(*) FROM webhooks_webhookevent")
            stored = cursor.fetchone()[0]
        connection.close()
        result = {
            "messages": args.messages,
            "conversations": seeded["conversations"],
            "seed_seconds": seeded["seed_seconds"],
            "retention_days": args.days // 2,
            "purge": {
                "seconds": round(purge_seconds, 2),
                "messages_erased": policy.get("messages"),
                "batches": policy.get("batches"),
                "batch_size": 500,
                "messages_per_second": round((policy.get("messages") or 0) / purge_seconds),
                "mean_batch_ms": round(purge_seconds * 1000 / max(1, policy.get("batches") or 1)),
            },
            "check": {"erased": erased, "still_with_text": kept, "total": total},
            "webhooks": {
                "before": load.summary("before", args.baseline_seconds),
                "during_purge": load.summary("during", purge_seconds),
                "after": load.summary("after", args.baseline_seconds),
                "stored_events": stored,
            },
            "measured_at": datetime.now(tz=UTC).isoformat(timespec="seconds"),
            "how": (
                "Django test client in a thread of the same process, posting signed deliveries "
                "back to back to /webhooks/meta while accounts.retention_purge ran; PostgreSQL "
                "on 127.0.0.1"
            ),
        }
        return result
    finally:
        if not args.keep_database:
            _drop_database(database)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--per-conversation", type=int, default=100)
    parser.add_argument("--days", type=int, default=60, help="history spread; retention is half")
    parser.add_argument("--baseline-seconds", type=float, default=5.0)
    parser.add_argument("--keep-database", action="store_true")
    args = parser.parse_args(argv)
    result = run(args)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
