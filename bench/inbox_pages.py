"""Inbox pages benchmark: server time of the inbox list and a thread with 100,000 conversations.

    python bench/inbox_pages.py [--conversations 100000] [--requests 60] [--thread 200]

Creates a fresh PostgreSQL database (migrated; dropped afterwards), seeds one workspace with
``--conversations`` conversations across three accounts (COPY, a message each, some unread,
assigned, resolved and story mentions) plus one thread of ``--thread`` messages, then times
the pages with Django's test client as a signed-in agent: the list in its main views, a search,
the thread page (it opens on the newest 60 messages), a page of earlier messages, the thread
fragment and the live-update poll. Reports median, p95 and max in
milliseconds and the number of queries of each page, prints a table and writes
``bench/results/inbox_pages.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
os.environ.setdefault("TEST_RUN_ID", f"bench-inbox-{os.getpid()}")

WORDS = [
    "order",
    "shipping",
    "refund",
    "size",
    "linen",
    "shirt",
    "blue",
    "green",
    "stock",
    "price",
    "discount",
    "delivery",
    "lisbon",
    "return",
    "exchange",
    "gift",
    "card",
    "sale",
    "tomorrow",
    "thanks",
    "hello",
    "available",
    "photo",
]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _copy(cursor: Any, model: Any, rows: Any, fixed: dict[str, Any]) -> None:
    """COPY ``rows`` (dicts) into ``model``'s table; absent columns take the field defaults."""
    from django.utils import timezone
    from psycopg.types.json import Jsonb

    now = timezone.now()
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    columns = [f.column for f in fields]
    defaults: dict[str, Any] = {}
    for f in fields:
        if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False):
            defaults[f.attname] = now
        elif f.has_default():
            defaults[f.attname] = f.get_default()
        elif f.null:
            defaults[f.attname] = None
        else:
            defaults[f.attname] = ""
    defaults.update(fixed)
    table = model._meta.db_table
    json_fields = {f.attname for f in fields if f.get_internal_type() == "JSONField"}
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            values = []
            for f in fields:
                value = row.get(f.attname, defaults[f.attname])
                if f.attname in json_fields and value is not None:
                    value = Jsonb(value)
                values.append(value)
            copy.write_row(values)


def seed(conversations: int, thread_size: int) -> dict[str, Any]:
    from django.db import connection
    from django.utils import timezone
    from django_scopes import scopes_disabled

    from accounts.models import InstagramAccount, Membership, Role, Tenant, User
    from messaging.models import Contact, Conversation, Message

    started = time.perf_counter()
    now = timezone.now()
    with scopes_disabled():
        tenant = Tenant.objects.create(name="Bench Agency")
        agent = User.objects.create_user("agent@bench.example", "bench-password-123")
        Membership.objects.create(tenant=tenant, user=agent, role=Role.AGENT)
        accounts = [
            InstagramAccount.objects.create(
                tenant=tenant,
                ig_user_id=f"1784150000000000{i}",
                username=f"brand_{i}",
                login_kind=InstagramAccount.LoginKind.FACEBOOK,
            )
            for i in range(3)
        ]
    base = {"tenant_id": tenant.pk}
    raw = connection.connection
    with raw.cursor() as cursor:
        _copy(
            cursor,
            Contact,
            (
                {
                    "account_id": accounts[i % 3].pk,
                    "igsid": f"69{i:014d}",
                    "username": f"customer_{i}",
                    "name": f"Customer {WORDS[i % len(WORDS)].title()} {i}",
                }
                for i in range(conversations)
            ),
            base,
        )
        cursor.execute(
            "SELECT id, account_id FROM messaging_contact WHERE tenant_id = %s ORDER BY id",
            [tenant.pk],
        )
        contacts = cursor.fetchall()

        def conversation_row(i: int, contact: tuple[int, int]) -> dict[str, Any]:
            at = now - timedelta(minutes=i)
            return {
                "account_id": contact[1],
                "contact_id": contact[0],
                "status": "resolved" if i % 5 == 4 else "open",
                "assignee_id": agent.pk if i % 7 == 0 else None,
                "unread_count": 1 if i % 3 == 0 else 0,
                "last_message_at": at,
                "customer_last_message_at": at,
                "window_opened_by": "message",
                "created_at": at,
                "updated_at": at,
            }

        _copy(
            cursor,
            Conversation,
            (conversation_row(i, c) for i, c in enumerate(contacts)),
            base,
        )
        cursor.execute(
            "SELECT id, account_id, last_message_at FROM messaging_conversation "
            "WHERE tenant_id = %s ORDER BY last_message_at DESC, id DESC",
            [tenant.pk],
        )
        rows = cursor.fetchall()

        def message_row(i: int, row: tuple[int, int, Any]) -> dict[str, Any]:
            words = " ".join(WORDS[(i + k) % len(WORDS)] for k in range(6))
            story = i % 50 == 0
            return {
                "account_id": row[1],
                "conversation_id": row[0],
                "mid": f"m.{i}",
                "direction": "in",
                "sender_kind": "customer",
                "kind": "story_mention" if story else "text",
                "text": "" if story else f"Hi, {words} #{i}",
                "attachments": [{"type": "story_mention", "url": "https://example.com/s.jpg"}]
                if story
                else [],
                "sent_at": row[2],
                "status": "received",
            }

        _copy(cursor, Message, (message_row(i, r) for i, r in enumerate(rows)), base)
        big_id, big_account, _ = rows[0]
        _copy(
            cursor,
            Message,
            (
                {
                    "account_id": big_account,
                    "conversation_id": big_id,
                    "mid": f"t.{k}",
                    "direction": "out" if k % 2 else "in",
                    "sender_kind": "agent" if k % 2 else "customer",
                    "sender_user_id": agent.pk if k % 2 else None,
                    "text": f"Thread message {k}: " + " ".join(WORDS[k % 10 : k % 10 + 8]),
                    "sent_at": now - timedelta(days=2) + timedelta(seconds=k * 30),
                    "status": "sent" if k % 2 else "received",
                }
                for k in range(thread_size)
            ),
            base,
        )
        cursor.execute("ANALYZE")
    raw.commit()
    with scopes_disabled():
        middle = Message.objects.filter(conversation_id=big_id).order_by("-sent_at", "-id")[
            thread_size // 2
        ]
    return {
        "tenant": tenant,
        "agent": agent,
        "thread_id": big_id,
        "middle_id": middle.pk,
        "seconds": round(time.perf_counter() - started, 1),
    }


def measure(client: Any, url: str, requests: int) -> dict[str, Any]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(3):  # warm up: caches, prepared plans, the first visit's "mark read"
        assert client.get(url).status_code == 200, url
    times = []
    with CaptureQueriesContext(connection) as captured:
        client.get(url)
    queries = len(captured.captured_queries)
    for _ in range(requests):
        started = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, url
    return {
        "url": url,
        "requests": requests,
        "median_ms": round(statistics.median(times), 1),
        "p95_ms": round(_percentile(times, 0.95), 1),
        "max_ms": round(max(times), 1),
        "queries": queries,
    }


def measure_counts(seeded: dict[str, Any], requests: int) -> dict[str, Any]:
    """The filter counts as computed once after any conversation changes (then cached)."""
    from django_scopes import scope

    from messaging import selectors_inbox

    times = []
    with scope(tenant=seeded["tenant"]):
        visible = list(seeded["tenant"].instagram_accounts.values_list("pk", flat=True))
        for i in range(requests):
            started = time.perf_counter()
            selectors_inbox.inbox_counts(
                user_id=seeded["agent"].pk, visible_account_ids=visible, fingerprint=f"bench-{i}"
            )
            times.append((time.perf_counter() - started) * 1000)
    return {
        "url": "(selector)",
        "requests": requests,
        "median_ms": round(statistics.median(times), 1),
        "p95_ms": round(_percentile(times, 0.95), 1),
        "max_ms": round(max(times), 1),
        "queries": 4,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--thread", type=int, default=200)
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings
    from django.test import Client
    from django.test.utils import setup_databases, teardown_databases

    # The test client's host; no test-environment instrumentation (it slows templates down).
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    old = setup_databases(verbosity=0, interactive=False)
    try:
        seeded = seed(args.conversations, args.thread)
        client = Client()
        client.force_login(seeded["agent"])
        thread = seeded["thread_id"]
        pages = {
            "inbox list (all open)": "/inbox/",
            "inbox list (mine)": "/inbox/?box=mine",
            "inbox list (unread)": "/inbox/?unread=1",
            "inbox list (story mentions)": "/inbox/?kind=story_mentions",
            "search (full text)": "/inbox/?q=linen%20refund",
            f"thread page ({args.thread} messages)": f"/inbox/{thread}/",
            "thread, earlier messages": f"/inbox/{thread}/earlier/?before={seeded['middle_id']}",
            "thread fragment (htmx)": f"/inbox/{thread}/thread/",
            "live-update poll": f"/inbox/poll/?conversation={thread}",
        }
        results = {name: measure(client, url, args.requests) for name, url in pages.items()}
        results["filter counts after a change (uncached)"] = measure_counts(seeded, args.requests)
    finally:
        teardown_databases(old, verbosity=0)

    report = {
        # The machine's load while measuring: on a shared machine, figures scale with it.
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
        "conversations": args.conversations,
        "thread_messages": args.thread,
        "seed_seconds": seeded["seconds"],
        "requests_per_page": args.requests,
        "pages": results,
    }
    out = ROOT / "bench" / "results" / "inbox_pages.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{args.conversations} conversations seeded in {seeded['seconds']} s\n")
    print(f"{'page':36} {'median':>8} {'p95':>8} {'max':>8} {'queries':>8}")
    for name, r in results.items():
        print(
            f"{name:36} {r['median_ms']:>6.1f}ms {r['p95_ms']:>6.1f}ms {r['max_ms']:>6.1f}ms "
            f"{r['queries']:>8}"
        )
    print(f"\nload average (1 min) at the end: {report['load_average_1m_at_end']}")
    print(f"written to {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
