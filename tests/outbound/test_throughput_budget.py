"""D11: the cost of one send through the ``outbound.send`` task, pinned so a regression fails.

A plain reply, run as a worker runs it (the tenant check included), costs at most
``SQL_PER_SEND`` statements and ``REDIS_PER_SEND`` Redis round trips:

- the workspace check of ``tenant_task``: none (remembered per process for a few seconds);
- the row read with its account, conversation, contact and message (1) and claimed (1);
- the lease renewed with the attempt counted, right before calling Meta (1);
- row, message and attempt written in one transaction (3 + the 2 savepoint statements a test
  transaction adds); the partner event adds none when no endpoint wants it (the workspace's
  endpoints are remembered per process, checked against a version in Redis), and its event,
  numbering and delivery rows (4) when one does;
- the thread's next row handed on (1); about once a second a worker also counts the accounts
  with work, hence the half statement of slack.

Redis: the send budget's token (1) and the time Meta's answer came back, which the budget
counts the send from (1: a send counts as in flight until then, ``messaging.ratelimit``), the
next row published to the broker (1), the endpoint version (1). It was 11 statements (15 with
an endpoint) before the workspace check and the endpoint lookup were remembered.
"""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest
import redis.connection
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_scopes import scope

from accounts import tenancy
from accounts.models import Tenant
from config.celery_app import app
from messaging import outbox, ratelimit
from messaging.models import OutboundJob
from messaging.services import outbound
from messaging.services.outbound import OutboundContent, Sender
from messaging.tasks_outbound import send_job
from tests.factories import TenantFactory
from tests.outbound.conftest import World
from webhooks import partner_endpoints, partner_events
from webhooks.models import CallbackDelivery, CallbackEndpoint

SQL_PER_SEND = 9.5
SQL_PER_SEND_WITH_ENDPOINT = 13.5
REDIS_PER_SEND = 4.0


pytestmark = pytest.mark.usefixtures("fresh_memory")


def _queue(world: World, n: int) -> None:
    outbound.messaging_settings_update(tenant_id=world.tenant.pk, disclosure_mode="never")
    bot = Sender.automation("budget")
    for i in range(n):
        outbound.message_send(
            conversation=world.conversation("alice"),
            sender=bot,
            content=OutboundContent(kind="text", text=f"budget {i}"),
        )


def _measure(world: World, sends: int) -> tuple[float, float]:
    """Statements and Redis round trips per send, through the task, after two warm-up sends."""
    published: list[int] = []
    real_publish = outbox._publish

    def collect(tenant_id: int, ids: Any) -> int:
        ids = list(ids)
        published.extend(ids)
        return real_publish(tenant_id, ids)

    round_trips = 0
    real_send = redis.connection.AbstractConnection.send_packed_command

    def counting(self: Any, command: Any, check_health: bool = True) -> Any:
        nonlocal round_trips
        round_trips += 1
        return real_send(self, command, check_health)

    try:
        with mock.patch.object(outbox, "_publish", side_effect=collect):
            outbox.pump(account_id=world.acme.pk)
            for _ in range(2):
                assert send_job(world.tenant.pk, published.pop(0)) == "sent"
            done = 0
            with CaptureQueriesContext(connection) as queries:
                while published and done < sends:
                    job_id = published.pop(0)
                    ratelimit.reset(world.acme.pk)
                    with mock.patch.object(
                        redis.connection.AbstractConnection, "send_packed_command", counting
                    ):
                        assert send_job(world.tenant.pk, job_id) == "sent"
                    done += 1
    finally:
        app.control.purge()
    assert done == sends
    return len(queries.captured_queries) / sends, round_trips / sends


def test_a_reply_through_the_task_stays_within_its_statement_budget(
    world: World, sandbox: Any
) -> None:
    _queue(world, 14)
    sql, round_trips = _measure(world, 10)
    assert sql <= SQL_PER_SEND, sql
    assert round_trips <= REDIS_PER_SEND, round_trips
    assert OutboundJob.objects.filter(status="sent").count() == 12


def test_with_a_subscribed_endpoint_the_event_costs_its_own_rows_only(
    world: World, sandbox: Any
) -> None:
    partner_endpoints.endpoint_create(
        tenant_id=world.tenant.pk, url="https://partner.example/hook", events=["message.sent"]
    )
    _queue(world, 14)
    sql, round_trips = _measure(world, 10)
    assert sql <= SQL_PER_SEND_WITH_ENDPOINT, sql
    assert round_trips <= REDIS_PER_SEND, round_trips
    assert CallbackDelivery.objects.count() == 12


def _emit(world: World) -> Any:
    return partner_events.event_emit(
        tenant_id=world.tenant.pk, type="message.sent", payload={"n": 1}
    )


def test_a_new_endpoint_gets_the_next_event_in_this_process(world: World, sandbox: Any) -> None:
    assert _emit(world) is None
    endpoint = partner_endpoints.endpoint_create(
        tenant_id=world.tenant.pk, url="https://partner.example/hook", events=["message.sent"]
    )
    assert _emit(world) is not None
    assert CallbackDelivery.objects.filter(endpoint=endpoint).count() == 1
    partner_endpoints.endpoint_update(endpoint=endpoint, changes={"enabled": False})
    assert _emit(world) is None
    partner_endpoints.endpoint_update(endpoint=endpoint, changes={"enabled": True})
    partner_endpoints.endpoint_delete(endpoint=endpoint)
    assert _emit(world) is None


def test_an_endpoint_added_by_another_process_is_seen_by_the_next_event(
    world: World, sandbox: Any
) -> None:
    assert _emit(world) is None
    # Written as another process would, whose change reaches this one through the version.
    CallbackEndpoint.objects.bulk_create(
        [
            CallbackEndpoint(
                tenant_id=world.tenant.pk,
                url="https://partner.example/hook",
                events=["message.sent"],
                secret="k",
            )
        ]
    )
    assert _emit(world) is None  # this process has not been told yet
    partner_events._redis().incr(partner_events._version_key(world.tenant.pk))
    assert _emit(world) is not None


def test_the_prepared_row_read_matches_the_orm(world: World, sandbox: Any) -> None:
    """The worker reads rows with SQL built once per process; what it reads is what the ORM
    reads, one row or several, and only the workspace's own."""
    _queue(world, 3)
    ids = sorted(OutboundJob.objects.values_list("pk", flat=True))
    assert outbox._load_plan() is not None, "the prepared read must be in use"
    assert "= ANY(" in outbox._load_plan().sql  # type: ignore[union-attr]
    one = outbox._load_row(ids[1])
    assert one is not None
    assert one.pk == ids[1]
    prepared = outbox._load_rows([ids[2], 0, ids[0]])
    plain = list(outbox._load_queryset([ids[0], ids[2]]))
    assert [job.pk for job in prepared] == [job.pk for job in plain] == [ids[0], ids[2]]
    for mine_job, their_job in zip(prepared, plain, strict=True):
        for mine, theirs in (
            (mine_job, their_job),
            (mine_job.account, their_job.account),
            (mine_job.conversation, their_job.conversation),
            (mine_job.conversation.contact, their_job.conversation.contact),  # type: ignore[union-attr]
            (mine_job.message, their_job.message),
        ):
            assert mine is not None
            assert theirs is not None
            assert type(mine) is type(theirs)
            for field in type(mine)._meta.concrete_fields:
                if field.attname == "access_token":
                    continue
                assert getattr(mine, field.attname) == getattr(theirs, field.attname), field.attname
        assert mine_job.stored_token == their_job.stored_token  # type: ignore[attr-defined]
    other = TenantFactory(name="Other agency")
    with scope(tenant=other.pk):
        assert outbox._load_row(ids[0]) is None
        assert outbox._load_rows(ids) == []


def test_a_deleted_workspace_is_forgotten_at_once(db: Any) -> None:
    ran: list[int] = []

    @tenancy.tenant_task
    def body(tenant_id: int) -> str:
        ran.append(tenant_id)
        return "ran"

    tenant: Tenant = TenantFactory(name="Short-lived")  # type: ignore[assignment]
    tenant_id = tenant.pk
    assert body(tenant_id) == "ran"
    with CaptureQueriesContext(connection) as queries:
        assert body(tenant_id) == "ran"
    assert len(queries.captured_queries) == 0
    tenant.delete()
    assert body(tenant_id) is None
    assert ran == [tenant_id, tenant_id]


def test_a_sent_message_event_is_built_only_when_an_endpoint_wants_it(world: World) -> None:
    """Building a sent message's payload cost a sending worker more than finding that no
    endpoint wanted it: it is built only for an endpoint."""
    _queue(world, 1)
    message = OutboundJob.objects.get().message
    assert message is not None
    with mock.patch.object(
        partner_events, "message_data", wraps=partner_events.message_data
    ) as built:
        assert partner_events.message_sent(message=message) is None
        assert built.call_count == 0
        partner_endpoints.endpoint_create(
            tenant_id=world.tenant.pk, url="https://partner.example/hook", events=["message.sent"]
        )
        event = partner_events.message_sent(message=message)
        assert built.call_count == 1
    assert event is not None
    event.refresh_from_db()
    assert event.payload == {
        "message": partner_events.message_data(message),
        "conversation": partner_events.conversation_data(message.conversation),
    }
