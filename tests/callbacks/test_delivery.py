"""Partner callbacks end to end: a real worker delivers to a local receiver.

Events come from the product's own services (inbound messages, edits, reads, unsends,
comments, thread ownership, account health, the outbox's sent / failed); the worker's relay
signs and POSTs them; the receiver checks every signature the way the partner guide does.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema
import pytest
from django.core import mail
from django.utils import timezone
from django_scopes import scope

from accounts import onboarding
from accounts.models import InstagramAccount, Role, Tenant
from config.celery_app import app
from messaging.models import Message
from messaging.services import inbound
from tests.callbacks.conftest import Receiver
from tests.factories import InstagramAccountFactory, MembershipFactory, TenantFactory, UserFactory
from tests.integration.conftest import Worker, wait_for
from webhooks import partner_delivery, partner_endpoints, partner_events
from webhooks.api import events as event_docs
from webhooks.models import CallbackDelivery, CallbackEndpoint, CallbackEventType

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

ALL_TYPES = sorted(CallbackEventType.values)


def _relay_until(check: Any, timeout: float = 60.0) -> Any:
    """Wake the worker's relay (as beat does every few seconds) until ``check`` holds."""

    def poke() -> Any:
        app.send_task("callbacks.relay")
        return check()

    return wait_for(poke, timeout=timeout, interval=0.5)


@pytest.fixture
def world() -> tuple[Tenant, InstagramAccount]:
    tenant = TenantFactory(name="Callbacks agency")
    MembershipFactory(tenant=tenant, role=Role.OWNER, user=UserFactory(email="boss@example.com"))
    account = InstagramAccountFactory(tenant=tenant, username="brand", access_token="EAAG-x")
    return tenant, account


def _endpoint(tenant: Tenant, url: str, types: list[str] = ALL_TYPES) -> CallbackEndpoint:
    with scope(tenant=tenant):
        return partner_endpoints.endpoint_create(tenant_id=tenant.pk, url=url, events=types)


def _at(seconds: int) -> datetime:
    return datetime(2026, 11, 25, 12, 0, tzinfo=UTC) + timedelta(seconds=seconds)


def _text(body: str) -> inbound.Content:
    return inbound.Content(kind=Message.Kind.TEXT, text=body)


def _schema_of(event_type: str) -> dict[str, Any]:
    components = event_docs.components()
    return {
        **components[event_docs.component_name(event_type)],
        "components": {"schemas": components},
    }


def _nullable_to_jsonschema(node: Any) -> Any:
    """OpenAPI 3.0 ``nullable`` as JSON Schema, to check bodies against the documented shapes."""
    if isinstance(node, list):
        return [_nullable_to_jsonschema(n) for n in node]
    if not isinstance(node, dict):
        return node
    node = {k: _nullable_to_jsonschema(v) for k, v in node.items() if k != "discriminator"}
    if node.pop("nullable", False):
        return {"anyOf": [node, {"type": "null"}]}
    return node


def test_every_event_type_is_delivered_signed_and_as_documented(
    celery_worker: Worker, receiver: Receiver, world: tuple[Tenant, InstagramAccount]
) -> None:
    tenant, account = world
    endpoint = _endpoint(tenant, receiver.url)
    with scope(tenant=tenant):
        message, _ = inbound.message_receive(
            account=account,
            igsid="1789000000000001",
            mid="m-1",
            direction=Message.Direction.INBOUND,
            sender_kind=Message.SenderKind.CUSTOMER,
            sent_at=_at(0),
            content=_text("Is the blue one available?"),
            opens_window="message",
        )
        inbound.message_edit(
            account=account,
            igsid="1789000000000001",
            mid="m-1",
            text="Or the red one?",
            num_edit=1,
            edited_at=_at(5),
        )
        inbound.conversation_mark_read(
            account=account,
            igsid="1789000000000001",
            mid=None,
            read_at=_at(6),
            watermark=_at(6),
        )
        inbound.conversation_thread_owner_change(
            account=account, igsid="1789000000000001", new_owner_app_id="263902037430900"
        )
        reply = Message.objects.create(
            tenant=tenant,
            account=account,
            conversation=message.conversation,
            direction=Message.Direction.OUTBOUND,
            sender_kind=Message.SenderKind.PARTNER,
            text="Yes!",
            sent_at=_at(7),
            status=Message.Status.SENT,
            mid="m-2",
        )
        partner_events.message_sent(message=reply)
        reply.status, reply.error_code = Message.Status.FAILED, "window_closed"
        partner_events.message_failed(message=reply)
        inbound.message_unsend(
            account=account, igsid="1789000000000001", mid="m-1", unsent_at=_at(8)
        )
        inbound.comment_receive(
            account=account,
            comment_id="17900000000000001",
            commented_at=_at(9),
            text="How much?",
            from_id="1789000000000002",
            from_username="jane",
        )
        onboarding.instagram_account_mark_needs_reauth(account=account)

    def all_types() -> bool:
        return {e["type"] for e in receiver.events()} >= set(ALL_TYPES)

    _relay_until(all_types)
    with scope(tenant=tenant):
        key = CallbackEndpoint.objects.get(pk=endpoint.pk).secret
    for item in receiver.received:
        header = item.headers["X-Relay-Signature"]
        assert partner_delivery.signature_verify(secret=key, header=header, body=item.body)
        assert not partner_delivery.signature_verify(
            secret=key, header=header, body=item.body + b" "
        )
        assert item.headers["X-Relay-Event-Type"] == item.event["type"]
        schema = _nullable_to_jsonschema(_schema_of(item.event["type"]))
        jsonschema.validate(item.event, schema)
    thread = [e for e in receiver.events() if e["conversation_id"] is not None]
    assert [e["sequence"] for e in sorted(thread, key=lambda e: e["id"])] == list(
        range(1, len(thread) + 1)
    )
    # The unsent message's text left the events that carried it, sent or not.
    received = next(e for e in receiver.events() if e["type"] == "message.deleted")
    assert received["data"]["message"]["text"] is None
    with scope(tenant=tenant):
        assert set(CallbackDelivery.objects.values_list("status", flat=True)) == {
            CallbackDelivery.Status.DELIVERED
        }
        logged = CallbackDelivery.objects.filter(endpoint=endpoint).first()
        assert logged is not None
        assert logged.last_status_code == 200
        assert logged.response_excerpt == "ok"
        assert logged.last_latency_ms is not None


def test_a_receiver_that_fails_for_a_while_gets_every_event_in_order(
    celery_worker: Worker, receiver: Receiver, world: tuple[Tenant, InstagramAccount]
) -> None:
    tenant, account = world
    _endpoint(tenant, receiver.url, ["message.received", "conversation.created"])
    receiver.failing = True
    customers = ["1789000000000011", "1789000000000012", "1789000000000013"]
    with scope(tenant=tenant):
        for n in range(12):
            inbound.message_receive(
                account=account,
                igsid=customers[n % 3],
                mid=f"mid-{n}",
                direction=Message.Direction.INBOUND,
                sender_kind=Message.SenderKind.CUSTOMER,
                sent_at=_at(n),
                content=_text(f"message {n}"),
                opens_window="message",
            )
    _relay_until(lambda: receiver.refused >= 6, timeout=30)
    receiver.failing = False
    _relay_until(lambda: len(receiver.events()) == 15, timeout=90)
    by_thread: dict[int, list[dict[str, Any]]] = {}
    for event in receiver.events():  # in the order they arrived
        by_thread.setdefault(event["conversation_id"], []).append(event)
    assert len(by_thread) == 3
    for events in by_thread.values():
        assert [e["sequence"] for e in events] == [1, 2, 3, 4, 5]
        assert events[0]["type"] == "conversation.created"
    assert len({e["id"] for e in receiver.events()}) == 15  # each once
    with scope(tenant=tenant):
        retried = CallbackDelivery.objects.filter(attempts__gt=1).count()
        assert retried >= 1
        assert not CallbackDelivery.objects.exclude(status="delivered").exists()


def test_an_endpoint_failing_for_a_day_is_turned_off_and_admins_told(
    receiver: Receiver, world: tuple[Tenant, InstagramAccount], settings: Any
) -> None:
    tenant, account = world
    endpoint = _endpoint(tenant, receiver.url, ["comment.received"])
    receiver.failing = True
    with scope(tenant=tenant):
        inbound.comment_receive(
            account=account, comment_id="1", commented_at=_at(0), text="hi", from_id="9"
        )
        CallbackEndpoint.objects.filter(pk=endpoint.pk).update(
            failing_since=timezone.now() - timedelta(hours=25)
        )
    assert partner_delivery.relay(time_budget=5) == 1
    with scope(tenant=tenant):
        endpoint.refresh_from_db()
        delivery = CallbackDelivery.objects.get()
    assert not endpoint.enabled
    assert "failed" in endpoint.disabled_reason
    assert delivery.status == "failed"
    assert delivery.last_status_code == 503
    assert delivery.response_excerpt == "down for maintenance"
    assert [m.to for m in mail.outbox] == [["boss@example.com"]]
    # Turned off: nothing more is tried until it is turned on again.
    with scope(tenant=tenant):
        CallbackDelivery.objects.update(next_attempt_at=timezone.now())
    assert partner_delivery.relay(time_budget=2) == 0
    receiver.failing = False
    with scope(tenant=tenant):
        partner_endpoints.endpoint_update(endpoint=endpoint, changes={"enabled": True})
    assert partner_delivery.relay(time_budget=5) == 1
    assert len(receiver.events()) == 1


def test_private_addresses_are_refused_unless_allowed(
    receiver: Receiver, world: tuple[Tenant, InstagramAccount], settings: Any
) -> None:
    tenant, account = world
    _endpoint(tenant, receiver.url, ["comment.received"])
    settings.CALLBACKS_ALLOW_PRIVATE_URLS = False
    with scope(tenant=tenant):
        inbound.comment_receive(
            account=account, comment_id="1", commented_at=_at(0), text="hi", from_id="9"
        )
    partner_delivery.relay(time_budget=5)
    with scope(tenant=tenant):
        delivery = CallbackDelivery.objects.get()
    assert delivery.status == "failed"
    assert "public" in delivery.last_error
    assert receiver.events() == []
    for url in (
        "http://127.0.0.1/x",
        "http://169.254.169.254/latest",
        "http://[::ffff:10.0.0.1]/",
        "ftp://example.com/",
        "http://localhost:8000/",
        "https://user:pw@example.com/",
    ):
        with pytest.raises(partner_delivery.UnsafeCallbackUrl):
            partner_delivery.url_check(url)
    partner_delivery.url_check("https://hooks.example.com/relay")


def test_a_rotated_key_overlaps_with_the_previous_one(
    world: tuple[Tenant, InstagramAccount],
) -> None:
    tenant, _ = world
    endpoint = _endpoint(tenant, "https://hooks.example.com/relay")
    old = endpoint.secret
    with scope(tenant=tenant):
        rotated = partner_endpoints.endpoint_rotate_key(
            endpoint=endpoint, overlap=timedelta(hours=1)
        )
    body = b'{"id":1}'
    header = partner_delivery.signature_header(rotated, 1_700_000_000, body)
    assert header.count("v1=") == 2
    for key in (old, rotated.secret):
        assert partner_delivery.signature_verify(
            secret=key, header=header, body=body, now=1_700_000_000
        )
    # Replays are refused by their age.
    assert not partner_delivery.signature_verify(
        secret=rotated.secret, header=header, body=body, now=1_700_000_000 + 301
    )


@pytest.mark.parametrize("timestamp", ["\u00b2", "1\u2460", "9" * 5000, "", "-1"])
def test_a_timestamp_that_is_not_ascii_digits_fails_verification(timestamp: str) -> None:
    # str.isdigit() is true for "²" and "①", which int() refuses.
    body = b'{"id":1}'
    header = f"t={timestamp},v1={partner_delivery.sign('key', 1_700_000_000, body)}"
    assert (
        partner_delivery.signature_verify(secret="key", header=header, body=body, now=1_700_000_000)
        is False
    )
