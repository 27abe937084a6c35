"""Stored deliveries drained many at a time (``webhooks.batch``, reliability row P6).

The promise: a backlog drained in batches ends exactly as the same deliveries processed one
at a time would (every message, conversation, partner event and delivery status), in a
fraction of the statements; anything uncommon still goes the one-at-a-time way, in order.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_scopes import scope, scopes_disabled

from accounts import compliance
from accounts.models import Tenant
from automation.models import Rule
from integrations.meta.signatures import meta_json_bytes
from messaging.models import Conversation, Message
from messaging.services import inbound_batch
from tests.factories import InstagramAccountFactory, TenantFactory
from tests.messaging.inbound_support import snapshot
from webhooks import relay, services
from webhooks.models import (
    CallbackEndpoint,
    CallbackEvent,
    CallbackEventType,
    ErasedCustomer,
    WebhookEvent,
)

pytestmark = pytest.mark.django_db

T0 = 1_718_000_000_000


def _store(business: str, *items: dict[str, Any], key: str = "messaging") -> None:
    services.webhook_event_store(
        raw_body=meta_json_bytes(
            {"object": "instagram", "entry": [{"id": business, "time": T0, key: list(items)}]}
        ),
        signed_with="meta",
    )


def _message(business: str, customer: str, mid: str, n: int, **extra: Any) -> dict[str, Any]:
    return {
        "sender": {"id": customer},
        "recipient": {"id": business},
        "timestamp": T0 + n * 1000,
        "message": {"mid": mid, "text": f"Message {n}", **extra},
    }


def _event(business: str, customer: str, n: int, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "sender": {"id": customer},
        "recipient": {"id": business},
        "timestamp": T0 + n * 1000,
        **body,
    }


def _drained_state(tenants: list[Tenant]) -> dict[str, Any]:
    def plain(value: Any) -> Any:
        # Row ids differ between runs; everything else must not.
        if isinstance(value, dict):
            return {
                k: plain(v)
                for k, v in value.items()
                if k not in ("id", "conversation_id", "account_id", "created_at")
            }
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value

    state: dict[str, Any] = {"deliveries": []}
    with scopes_disabled():
        for event in WebhookEvent.objects.order_by("id"):
            state["deliveries"].append(
                (event.status, event.attempts, event.last_error, event.named_ids)
            )
    for tenant in tenants:
        with scope(tenant=tenant):
            events = [
                (
                    e.type,
                    e.sequence,
                    Conversation.objects.get(pk=e.conversation_id).contact.igsid
                    if e.conversation_id
                    else None,
                    plain(e.payload),
                )
                for e in CallbackEvent.objects.order_by("conversation_id", "sequence", "id")
            ]
        state[tenant.name] = {
            "stored": snapshot(tenant),
            "partner_events": sorted(map(str, events)),
        }
    return state


def _scenario(settings: Any, batch_size: int) -> tuple[dict[str, Any], int]:
    """A mixed backlog drained with ``WEBHOOK_BATCH_SIZE``; what it left, and the statements."""
    settings.WEBHOOK_BATCH_SIZE = 1
    agency: Tenant = TenantFactory(name="Agency batch")
    other: Tenant = TenantFactory(name="Agency other")
    a = InstagramAccountFactory(tenant=agency, ig_user_id="17841400000000101")
    b = InstagramAccountFactory(tenant=other, ig_user_id="17841400000000202")
    ruled = InstagramAccountFactory(tenant=other, ig_user_id="17841400000000303")
    with scope(tenant=agency):
        CallbackEndpoint.objects.create(
            tenant=agency,
            url="https://partner.example/hooks",
            events=list(CallbackEventType.values),
            secret="partner-signing-secret",
        )
    with scope(tenant=other):
        Rule.objects.create(
            tenant=other,
            account=ruled,
            name="Greeting",
            trigger="keyword",
            actions=[{"type": "reply_text", "text": "Thanks!"}],
        )
    A, B, R = a.ig_user_id, b.ig_user_id, ruled.ig_user_id  # noqa: N806 - short, like the text
    # Known customers: one message each, drained one at a time.
    for n, (business, customer) in enumerate(
        [
            (A, "c1"),
            (A, "c3"),
            (A, "c4"),
            (A, "c5"),
            (A, "c6"),
            (A, "c8"),
            (A, "c9"),
            (B, "c1"),
            (R, "c7"),
        ]
    ):
        _store(business, _message(business, customer, f"seed-{business}-{customer}", n))
    relay.drain()
    with scope(tenant=agency):
        Conversation.objects.filter(contact__igsid="c1").update(status=Conversation.Status.RESOLVED)
        ErasedCustomer.objects.create(
            tenant=agency,
            account=a,
            igsid_hash=compliance._customer_hash(a.pk, "c9"),
            erased_at=timezone.now() + timedelta(days=1),
        )

    # The backlog, in the order Meta delivered it.
    _store(A, _message(A, "c1", "m-c1-1", 10))
    _store(B, _message(B, "c1", "m-b-c1-1", 10))  # the same igsid, another tenant's account
    _store(A, _message(A, "c2", "m-c2-1", 11))  # a new customer
    _store(A, _message(A, "c1", "m-c1-2", 12))
    _store(A, _message(A, "c3", "m-c3-1", 13))
    _store(A, _event(A, "c3", 14, {"message": {"mid": "m-c3-1", "is_deleted": True}}))
    _store(A, _message(A, "c2", "m-c2-2", 15))
    _store(A, _message(A, "c3", "m-c3-2", 16))
    _store(A, _event(A, "c4", 17, {"message": {"mid": "m-c4-1", "is_deleted": True}}))
    _store(A, _message(A, "c4", "m-c4-1", 18))  # its unsend came first
    _store(A, _message(A, "c5", f"seed-{A}-c5", 19))  # a redelivery of a stored message
    _store(A, _message(A, "c6", "m-c6-1", 20))
    _store(A, _message(A, "c6", "m-c6-1", 21))  # the same message twice in the backlog
    _store(A, _event(A, "c1", 22, {"read": {"mid": "m-c1-2"}}))
    _store(A, _message(A, "c1", "m-c1-3", 23))
    _store(
        A,
        _message(
            A, "c8", "m-c8-1", 24, reply_to={"story": {"id": "s1", "url": "https://x.example/s"}}
        ),
    )
    _store(
        A,
        _message(
            A,
            "c8",
            "m-c8-2",
            25,
            attachments=[{"type": "image", "payload": {"url": "https://x.example/i.jpg"}}],
        ),
    )
    _store(A, _message(A, "c9", "m-c9-1", 26))  # an erased customer
    _store(R, _message(R, "c7", "m-c7-1", 27))  # an account with automation rules
    _store("17841499999999999", _message("17841499999999999", "c1", "m-nobody", 28))
    _store(A, _message(A, "c1", "m-c1-4", 29), _message(A, "c8", "m-c8-3", 29))
    echo = {**_message(A, "c1", "m-c1-echo", 30), "sender": {"id": A}, "recipient": {"id": "c1"}}
    _store(A, echo)
    services.webhook_event_store(raw_body=b'{"object": "instagram", "entry": [', signed_with="meta")
    _store(A, _message(A, "c1", "m-c1-5", 31))

    settings.WEBHOOK_BATCH_SIZE = batch_size
    with CaptureQueriesContext(connection) as queries:
        relay.drain()
    return _drained_state([agency, other]), len(queries)


def test_a_backlog_drained_in_batches_ends_as_one_at_a_time(settings: Any) -> None:
    with transaction.atomic():
        alone, alone_statements = _scenario(settings, 1)
        transaction.set_rollback(True)
    together, together_statements = _scenario(settings, 50)

    assert together == alone
    # The scenario's edge cases really happened (so the comparison compares something).
    agency = together["Agency batch"]["stored"]
    mids = {m[0] for m in agency["messages"]}
    assert {"m-c1-1", "m-c1-5", "m-c2-2", "m-c4-1", "m-c8-3", "m-c1-echo"} <= mids
    assert "m-c9-1" not in mids
    assert [d[0] for d in together["deliveries"]].count("quarantined") == 2
    c1 = dict(next(c for c in agency["conversations"] if c[0] == "c1")[1])
    assert c1["status"] == "open"
    assert c1["unread_count"] == 6
    types = [e.split("'")[1] for e in together["Agency batch"]["partner_events"]]
    assert types.count("message.received") >= 10
    assert "conversation.updated" in types
    assert together_statements < alone_statements


def test_known_customers_messages_cost_a_few_statements_per_batch(
    tenant: Tenant, settings: Any
) -> None:
    settings.WEBHOOK_BATCH_SIZE = 50
    account = InstagramAccountFactory(tenant=tenant)
    business = account.ig_user_id
    customers = [f"55500{i:02d}" for i in range(20)]
    for n, customer in enumerate(customers):
        _store(business, _message(business, customer, f"first-{customer}", n))
    relay.drain()  # new customers: one at a time

    for n in range(40):
        customer = customers[n % 20]
        _store(business, _message(business, customer, f"m-{n}", 100 + n))
    with CaptureQueriesContext(connection) as queries:
        assert relay.drain_batch(50) == 40
    # Claim, savepoints, erasure lock and marks, the threads, the stored-ids check, the insert,
    # the conversations, the marks: 40 deliveries one at a time would take 440.
    assert len(queries) <= 16, [q["sql"][:80] for q in queries]

    with scope(tenant=tenant):
        assert Message.objects.filter(account=account).count() == 60
        assert sorted(Conversation.objects.values_list("unread_count", flat=True)) == [3] * 20
        last = Message.objects.get(mid="m-39")
        assert last.conversation.last_message_at == last.sent_at
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {"processed"}
    assert set(WebhookEvent.objects.values_list("attempts", flat=True)) == {1}


def test_a_failing_batch_is_processed_one_at_a_time_and_nothing_is_lost(
    tenant: Tenant, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.WEBHOOK_BATCH_SIZE = 50
    account = InstagramAccountFactory(tenant=tenant)
    business = account.ig_user_id
    _store(business, _message(business, "c1", "first", 0))
    relay.drain()
    for n in range(5):
        _store(business, _message(business, "c1", f"m-{n}", n + 1))

    def broken(**_: Any) -> list[int]:
        Message.objects.filter(mid="first").delete()  # a write the rollback must undo
        raise RuntimeError("the batch broke")

    monkeypatch.setattr(inbound_batch, "messages_receive_together", broken)
    relay.drain()

    with scope(tenant=tenant):
        assert sorted(Message.objects.values_list("mid", flat=True)) == [
            "first",
            "m-0",
            "m-1",
            "m-2",
            "m-3",
            "m-4",
        ]
        assert Conversation.objects.get().unread_count == 6
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {"processed"}


def test_a_delivery_left_for_later_keeps_its_customers_later_messages_behind_it(
    tenant: Tenant, settings: Any
) -> None:
    settings.WEBHOOK_BATCH_SIZE = 50
    account = InstagramAccountFactory(tenant=tenant)
    business = account.ig_user_id
    _store(business, _message(business, "c1", "first", 0))
    _store(business, _message(business, "c2", "known", 0))
    relay.drain()
    # A reaction goes one at a time; the customer's next message must wait for it rather than
    # overtake it in the batch. Another customer's message goes with the batch.
    reaction = {"reaction": {"mid": "first", "action": "react", "reaction": "love"}}
    _store(business, _event(business, "c1", 1, reaction))
    _store(business, _message(business, "c1", "second", 2))
    _store(business, _message(business, "c2", "other", 3))
    order: list[str] = []
    from webhooks import processing

    real = processing.process_event

    def recording(event: WebhookEvent) -> str:
        order.append(bytes(event.raw_body).decode())
        return real(event)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(processing, "process_event", recording)
        relay.drain()
    assert len(order) == 2  # the reaction, then c1's message; c2's went with the batch
    assert '"reaction"' in order[0]
    assert '"second"' in order[1]
    with scope(tenant=tenant):
        stored = set(Message.objects.values_list("mid", flat=True))
        assert stored == {"first", "known", "second", "other"}


@pytest.mark.django_db(transaction=True)
def test_two_workers_draining_shared_customers_neither_deadlock_nor_double_count(
    settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    import threading

    settings.WEBHOOK_BATCH_SIZE = 25
    tenant: Tenant = TenantFactory()
    account = InstagramAccountFactory(tenant=tenant)
    business = account.ig_user_id
    customers = [f"77700{i:02d}" for i in range(10)]
    for n, customer in enumerate(customers):
        _store(business, _message(business, customer, f"first-{customer}", n))
    relay.drain()
    # Each batch holds all ten customers' threads: the workers always want the same locks.
    for n in range(400):
        _store(business, _message(business, customers[(n * 7) % 10], f"m-{n}", 100 + n))

    errors: list[BaseException] = []

    def worker() -> None:
        try:
            while relay.drain_batch(25):
                pass
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors
    assert "webhook batch of" not in caplog.text  # no batch fell back (a deadlock would)
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {"processed"}
    assert set(WebhookEvent.objects.values_list("attempts", flat=True)) == {1}
    with scope(tenant=tenant):
        assert Message.objects.count() == 410
        assert sum(Conversation.objects.values_list("unread_count", flat=True)) == 410
