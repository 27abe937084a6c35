"""The cost of one send: the statements a worker runs for a plain reply stay few."""

from __future__ import annotations

from typing import Any
from unittest import mock

from django.db import connection
from django.test.utils import CaptureQueriesContext

from messaging import outbox, ratelimit
from messaging.models import OutboundJob
from messaging.services import outbound
from messaging.services.outbound import OutboundContent, Sender
from tests.outbound.conftest import World

# Row and message read and claimed (2), lease renewed with the attempt counted (1), row,
# message, attempt and partner callbacks written in one transaction (4 + its 2 savepoint
# statements here), the thread's next row handed on (1); once a second a worker also counts
# the accounts with work. It was 34 statements.
BUDGET = 10.5


def test_a_reply_costs_about_ten_statements(world: World, sandbox: Any) -> None:
    outbound.messaging_settings_update(tenant_id=world.tenant.pk, disclosure_mode="never")
    alice = world.conversation("alice")
    bot = Sender.automation("cost")
    for i in range(12):
        outbound.message_send(
            conversation=alice, sender=bot, content=OutboundContent(kind="text", text=f"c {i}")
        )
    published: list[int] = []

    def collect(tenant_id: int, ids: Any) -> int:
        published.extend(ids)
        return len(published)

    with mock.patch.object(outbox, "_publish", side_effect=collect):
        outbox.pump(account_id=world.acme.pk)
        # The first sends read the settings and build the thread's Graph client.
        for _ in range(2):
            assert outbox.job_run(job_id=published.pop(0)) == "sent"
        sends = 0
        with CaptureQueriesContext(connection) as queries:
            while published:
                ratelimit.reset(world.acme.pk)
                assert outbox.job_run(job_id=published.pop(0)) == "sent"
                sends += 1
    assert sends == 10
    per_send = len(queries.captured_queries) / sends
    assert per_send <= BUDGET, [q["sql"][:120] for q in queries.captured_queries[:12]]
    assert OutboundJob.objects.filter(status="sent").count() == 12
    assert [m.text for m in outbound_sent(sandbox)] == [f"c {i}" for i in range(12)]


def outbound_sent(sandbox: Any) -> list[Any]:
    with sandbox.sandbox.lock:
        return [
            m
            for m in sandbox.sandbox.world.messages.values()
            if m.direction == "out" and (m.text or "").startswith("c ")
        ]
