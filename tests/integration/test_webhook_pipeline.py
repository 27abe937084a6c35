"""Webhooks stored while no worker runs are processed once a worker and the relay are back."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.test import Client

from integrations.meta.signatures import meta_json_bytes, sign_hub_body
from tests.integration.conftest import Worker, wait_for
from webhooks.models import WebhookEvent

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_events_acknowledged_without_a_worker_are_all_processed_later(
    request: pytest.FixtureRequest,
) -> None:
    client = Client()
    for n in range(200):
        body = meta_json_bytes({"object": "instagram", "entry": [], "delivery": n})
        response = client.generic(
            "POST",
            "/webhooks/meta",
            body,
            content_type="application/json",
            HTTP_X_HUB_SIGNATURE_256=sign_hub_body(body, "test-meta-app-secret"),
        )
        assert response.status_code == 200
    assert WebhookEvent.objects.filter(status="pending").count() == 200

    worker: Worker = request.getfixturevalue("celery_worker")
    call_command("webhook_relay", "--once")
    wait_for(lambda: WebhookEvent.objects.filter(status="processed").count() == 200, timeout=60)
    assert worker.process.poll() is None
    assert WebhookEvent.objects.filter(attempts__gt=1).count() == 0
