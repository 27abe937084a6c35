"""A thousand real messages acknowledged while no worker runs are all stored, once, later."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.test import Client
from django_scopes import scope

from messaging.models import Conversation, Message
from tests.factories import InstagramAccountFactory, TenantFactory
from tests.integration.conftest import Worker, wait_for
from tests.messaging.inbound_support import T0, envelope, post, text_message
from webhooks.models import WebhookEvent

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

DELIVERIES = 1000
CUSTOMERS = 10


def test_a_backlog_of_real_messages_is_processed_exactly_once_by_the_worker(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Profile fetches the worker queues must not leave the machine: Meta is unreachable here.
    monkeypatch.setenv("META_GRAPH_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("META_INSTAGRAM_GRAPH_URL", "http://127.0.0.1:9")
    tenant = TenantFactory()
    account = InstagramAccountFactory(tenant=tenant)
    business = account.ig_user_id
    client = Client()
    for n in range(DELIVERIES):
        body = envelope(
            {
                business: [
                    text_message(
                        f"aWdfBACKLOG{n}",
                        f"message {n}",
                        ts=T0 + n,
                        customer=str(10**15 + n % CUSTOMERS),
                        business=business,
                    )
                ]
            }
        )
        assert post(client, body).status_code == 200
    assert WebhookEvent.objects.filter(status="pending").count() == DELIVERIES
    with scope(tenant=tenant):
        assert not Message.objects.exists()

    worker: Worker = request.getfixturevalue("celery_worker")
    call_command("webhook_relay", "--once")

    def all_stored() -> bool:
        with scope(tenant=tenant):
            return (
                Message.objects.count() >= DELIVERIES
                and not WebhookEvent.objects.filter(status="pending").exists()
            )

    wait_for(all_stored, timeout=180, interval=0.5)
    assert worker.process.poll() is None, worker.log()[-3000:]
    with scope(tenant=tenant):
        mids = list(Message.objects.values_list("mid", flat=True))
        assert len(mids) == len(set(mids)) == DELIVERIES
        assert set(mids) == {f"aWdfBACKLOG{n}" for n in range(DELIVERIES)}
        conversations = list(Conversation.objects.all())
        assert len(conversations) == CUSTOMERS
        assert sum(c.unread_count for c in conversations) == DELIVERIES
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {"processed"}
