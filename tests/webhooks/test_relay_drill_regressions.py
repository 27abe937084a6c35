"""Regressions found by the reliability drills (tests/drills).

W8: draining 100 events in one transaction held the contact and conversation locks of all of
them until the end, so two workers whose batches shared customers deadlocked about once a
second; each deadlock cost the event an attempt and a 10 s back-off, and five quarantined it.

W9: a PostgreSQL restart ended the relay process: waiting for notifications on the raw
connection raises psycopg's own errors, which the relay did not catch. And every 503 during the
outage formatted a full traceback, which doubled the time to answer under load.
"""

from __future__ import annotations

import logging
import threading
from typing import Any
from unittest import mock

import psycopg
import pytest
from django.db import OperationalError, connection
from django.test import Client

from integrations.meta.signatures import meta_json_bytes, sign_hub_body
from webhooks import processing, relay, services, views
from webhooks.models import WebhookEvent


def _store(n: int) -> WebhookEvent:
    services.webhook_event_store(
        raw_body=meta_json_bytes({"object": "instagram", "entry": [], "n": n}), signed_with="meta"
    )
    return WebhookEvent.objects.order_by("-id").first()  # type: ignore[return-value]


@pytest.mark.django_db(transaction=True)
def test_an_event_is_committed_before_the_next_one_is_processed() -> None:
    first, second = _store(1), _store(2)
    inside_second = threading.Event()
    release = threading.Event()
    process = processing.process_event

    def slow_on_second(event: WebhookEvent) -> Any:
        if event.pk == second.pk:
            inside_second.set()
            release.wait(10)
        return process(event)

    def worker() -> None:
        try:
            relay.drain_batch()
        finally:
            connection.close()

    with mock.patch("webhooks.processing.process_event", side_effect=slow_on_second):
        thread = threading.Thread(target=worker)
        thread.start()
        try:
            assert inside_second.wait(10)
            # Seen from another connection while the worker is still busy with the second one.
            assert WebhookEvent.objects.get(pk=first.pk).status == WebhookEvent.Status.PROCESSED
            assert WebhookEvent.objects.get(pk=second.pk).status == WebhookEvent.Status.PENDING
            # Another worker skips the event being processed instead of waiting for it.
            assert relay.drain_batch() == 0
        finally:
            release.set()
            thread.join(20)
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {"processed"}


@pytest.mark.django_db
def test_the_relay_outlives_a_database_restart_while_listening() -> None:
    connection.ensure_connection()
    broken = psycopg.OperationalError("consuming input failed: server closed the connection")
    with mock.patch.object(type(connection.connection), "notifies", side_effect=broken):
        assert relay.wait_for_events(0.01) is False
    # And it listens again on a fresh connection afterwards.
    assert relay.wait_for_events(0.01) is False


def test_an_outage_logs_one_traceback_per_interval_not_one_per_delivery(
    client: Client, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(views, "_last_store_traceback", -views.STORE_FAILURE_TRACEBACK_INTERVAL)
    body = meta_json_bytes({"object": "instagram", "entry": []})
    headers = {"HTTP_X_HUB_SIGNATURE_256": sign_hub_body(body, "test-meta-app-secret")}
    down = OperationalError("connection refused")
    with (
        caplog.at_level(logging.ERROR, logger="webhooks.views"),
        mock.patch("webhooks.services.webhook_event_store", side_effect=down),
    ):
        statuses = [
            client.generic(
                "POST", "/webhooks/meta", body, "application/json", **headers
            ).status_code
            for _ in range(3)
        ]
    assert statuses == [503, 503, 503]
    records = [r for r in caplog.records if r.name == "webhooks.views"]
    assert len(records) == 3
    assert [r.exc_info is not None for r in records] == [True, False, False]
    assert "OperationalError" in records[1].getMessage()
