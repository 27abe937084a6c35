"""Stored events are processed exactly once, bad ones quarantined, failures retried."""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest
from django.core.management import call_command

from integrations.meta.signatures import meta_json_bytes
from webhooks import relay, services
from webhooks.models import WebhookEvent

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _empty_broker() -> Any:
    """Wake-ups left in the broker by earlier tests (no worker took them) would count against
    the relay's bound on waiting wake-ups."""
    from config.celery_app import app

    app.control.purge()
    yield
    app.control.purge()


def _store(body: bytes) -> WebhookEvent:
    services.webhook_event_store(raw_body=body, signed_with="meta")
    return WebhookEvent.objects.order_by("-id").first()  # type: ignore[return-value]


def test_pending_events_are_processed_once() -> None:
    for n in range(3):
        _store(meta_json_bytes({"object": "instagram", "entry": [], "n": n}))
    assert relay.drain() == 3
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {"processed"}
    assert relay.drain() == 0


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[]",
        b'{"a": NaN}',
        b'{"a": Infinity}',
        b"\xff\xfe",
        b"[" * 3000 + b"]" * 3000,
        b'{"a":' * 100 + b"1" + b"}" * 100,
    ],
)
def test_signed_garbage_is_quarantined_without_retries(body: bytes) -> None:
    event = _store(body)
    relay.drain()
    event.refresh_from_db()
    assert event.status == WebhookEvent.Status.QUARANTINED
    assert event.attempts == 1
    assert event.last_error


def test_a_failing_event_is_retried_later_then_quarantined() -> None:
    event = _store(meta_json_bytes({"object": "instagram", "entry": []}))
    with mock.patch("webhooks.processing.process_event", side_effect=RuntimeError("boom")):
        relay.drain()
        event.refresh_from_db()
        assert event.status == WebhookEvent.Status.PENDING
        assert event.next_attempt_at is not None
        assert "boom" in event.last_error
        for _ in range(relay.MAX_ATTEMPTS):
            WebhookEvent.objects.filter(pk=event.pk).update(next_attempt_at=None)
            relay.drain()
    event.refresh_from_db()
    assert event.status == WebhookEvent.Status.QUARANTINED
    assert event.attempts == relay.MAX_ATTEMPTS


def test_the_relay_publishes_a_drain_when_events_wait() -> None:
    _store(meta_json_bytes({"object": "instagram", "entry": []}))
    with mock.patch("webhooks.tasks.drain.apply_async") as publish:
        call_command("webhook_relay", "--once")
    publish.assert_called_once()


def test_the_relay_survives_a_broker_outage() -> None:
    _store(meta_json_bytes({"object": "instagram", "entry": []}))
    with mock.patch("webhooks.tasks.drain.apply_async", side_effect=ConnectionError("down")):
        call_command("webhook_relay", "--once")
    assert WebhookEvent.objects.get().status == WebhookEvent.Status.PENDING


def _waiting_drains() -> int:
    from config.celery_app import app

    with app.connection_for_write() as conn:
        channel: Any = conn.default_channel
        try:
            return int(channel.queue_declare(queue="webhooks")[1])
        except Exception:
            return 0


def test_wake_ups_waiting_in_the_broker_stay_bounded_under_steady_traffic(settings: Any) -> None:
    """Every notification used to publish a drain: with events arriving steadily faster than
    workers took the wake-ups, the webhooks queue grew without bound. Now no more than
    ``WEBHOOK_DRAIN_WAKEUPS`` wait, however many rounds find events waiting."""
    settings.WEBHOOK_DRAIN_WAKEUPS = 3
    _store(meta_json_bytes({"object": "instagram", "entry": []}))
    for _ in range(20):
        call_command("webhook_relay", "--once")
    assert _waiting_drains() == 3
    assert WebhookEvent.objects.get().status == WebhookEvent.Status.PENDING
