"""Processing stored deliveries: routing, quarantine of what cannot be routed, sanitation."""

from __future__ import annotations

import pytest
from django.test import Client
from django_scopes import scope

from accounts.models import InstagramAccount, Tenant
from integrations.meta.signatures import meta_json_bytes
from messaging.models import Comment, Contact, Message
from tests.factories import InstagramAccountFactory
from tests.messaging.inbound_support import (
    BUSINESS,
    deliver,
    envelope,
    item,
    messages,
    text_message,
)
from webhooks import metrics, relay, services
from webhooks.models import WebhookEvent

pytestmark = pytest.mark.django_db

UNKNOWN_BUSINESS = "17841455555555555"


@pytest.fixture
def account(tenant: Tenant) -> InstagramAccount:
    return InstagramAccountFactory(tenant=tenant, ig_user_id=BUSINESS)


def _tenant_rows() -> int:
    from django_scopes import scopes_disabled

    with scopes_disabled():
        return Message.objects.count() + Contact.objects.count() + Comment.objects.count()


def test_w15_events_for_an_unknown_account_are_quarantined_with_no_tenant_rows(
    client: Client, account: InstagramAccount
) -> None:
    """W15: an event for an Instagram account no workspace owns: 200, quarantined, counted."""
    before = metrics.snapshot().get("webhook.unrouted", 0)
    response = deliver(
        client,
        envelope({UNKNOWN_BUSINESS: [text_message("aWdfX", "hi", business=UNKNOWN_BUSINESS)]}),
    )
    assert response.status_code == 200
    event = WebhookEvent.objects.get()
    assert event.status == WebhookEvent.Status.QUARANTINED
    assert event.last_error == f"no connected account for ids {UNKNOWN_BUSINESS}"
    assert metrics.snapshot()["webhook.unrouted"] == before + 1
    assert _tenant_rows() == 0


def test_w15_a_disconnected_account_receives_nothing(client: Client, tenant: Tenant) -> None:
    """W15: an event for a disconnected account: 200, quarantined, counted, 0 tenant rows."""
    InstagramAccountFactory(
        tenant=tenant, ig_user_id=BUSINESS, status=InstagramAccount.Status.DISCONNECTED
    )
    before = metrics.snapshot().get("webhook.unrouted", 0)
    response = deliver(client, envelope({BUSINESS: [text_message("aWdfX", "hi")]}))
    assert response.status_code == 200
    assert WebhookEvent.objects.get().status == WebhookEvent.Status.QUARANTINED
    assert metrics.snapshot()["webhook.unrouted"] == before + 1
    assert _tenant_rows() == 0


def test_routable_entries_are_processed_and_the_others_noted(
    client: Client, tenant: Tenant, account: InstagramAccount
) -> None:
    deliver(
        client,
        envelope(
            {
                BUSINESS: [text_message("aWdfOK", "routed")],
                UNKNOWN_BUSINESS: [text_message("aWdfNO", "lost", business=UNKNOWN_BUSINESS)],
            }
        ),
    )
    event = WebhookEvent.objects.get()
    assert event.status == WebhookEvent.Status.PROCESSED
    assert UNKNOWN_BUSINESS in event.last_error
    assert [m.text for m in messages(tenant)] == ["routed"]


def test_a_mid_longer_than_the_column_quarantines_instead_of_crashing(
    client: Client, tenant: Tenant, account: InstagramAccount
) -> None:
    deliver(client, envelope({BUSINESS: [text_message("a" * 10_000, "long")]}))
    event = WebhookEvent.objects.get()
    assert event.status == WebhookEvent.Status.QUARANTINED
    assert event.attempts == 1
    assert "message id" in event.last_error
    assert messages(tenant) == []


def test_one_bad_item_does_not_drop_the_good_ones(
    client: Client, tenant: Tenant, account: InstagramAccount
) -> None:
    deliver(
        client,
        envelope({BUSINESS: [text_message("a" * 2000, "long"), text_message("aWdfGOOD", "good")]}),
    )
    event = WebhookEvent.objects.get()
    assert event.status == WebhookEvent.Status.PROCESSED
    assert "skipped" in event.last_error
    assert [m.text for m in messages(tenant)] == ["good"]


def test_nul_and_lone_surrogates_are_cleaned_in_text_and_json(
    client: Client, tenant: Tenant, account: InstagramAccount
) -> None:
    body = envelope(
        {
            BUSINESS: [
                item(
                    {
                        "message": {
                            "mid": "aWdf\u0000NUL",
                            "text": "a\u0000b \ud800 c \udfff 😀",
                            "attachments": [
                                {
                                    "type": "file",
                                    "payload": {"url": "https://x.example/\u0000\udc00"},
                                }
                            ],
                            "referral": {"ref": "r\u0000\ud834", "source": "ADS"},
                        }
                    }
                )
            ]
        }
    )
    assert b"\\u0000" in body
    assert b"\\ud800" in body
    deliver(client, body)
    assert WebhookEvent.objects.get().status == WebhookEvent.Status.PROCESSED
    (message,) = messages(tenant)
    assert message.mid == "aWdfNUL"
    assert message.text == "ab \ufffd c \ufffd 😀"
    assert message.attachments == [{"type": "file", "url": "https://x.example/\ufffd"}]
    assert message.referral == {"ref": "r\ufffd", "source": "ADS"}


def test_unsafe_link_schemes_are_not_stored(
    client: Client, tenant: Tenant, account: InstagramAccount
) -> None:
    attachments = [
        {"type": "image", "payload": {"url": "javascript:alert(1)"}},
        {"type": "image", "payload": {"url": "data:text/html,hi"}},
    ]
    message_item = item({"message": {"mid": "aWdfJS", "attachments": attachments}})
    deliver(client, envelope({BUSINESS: [message_item]}))
    (message,) = messages(tenant)
    assert message.attachments == [{"type": "image"}, {"type": "image"}]


def test_unknown_kinds_are_ignored_and_counted(
    client: Client, tenant: Tenant, account: InstagramAccount
) -> None:
    before = metrics.snapshot().get("webhook.event_ignored", 0)
    deliver(client, envelope({BUSINESS: [item({"something_new": {"x": 1}})]}))
    assert WebhookEvent.objects.get().status == WebhookEvent.Status.PROCESSED
    assert metrics.snapshot()["webhook.event_ignored"] == before + 1
    assert _tenant_rows() == 0


@pytest.mark.parametrize(
    "payload",
    [
        {"object": "page", "entry": [{"id": BUSINESS, "messaging": []}]},
        {"no_entry": True},
        {"object": "instagram", "entry": ["not an entry"]},
    ],
)
def test_deliveries_that_can_never_apply_are_quarantined(payload: object) -> None:
    services.webhook_event_store(raw_body=meta_json_bytes(payload), signed_with="meta")
    relay.drain()
    assert WebhookEvent.objects.get().status == WebhookEvent.Status.QUARANTINED


def test_an_empty_delivery_is_simply_processed() -> None:
    services.webhook_event_store(
        raw_body=meta_json_bytes({"object": "instagram", "entry": []}), signed_with="meta"
    )
    relay.drain()
    assert WebhookEvent.objects.get().status == WebhookEvent.Status.PROCESSED


def test_processing_never_runs_outside_the_routed_scope(
    client: Client, tenant: Tenant, other_tenant: Tenant, account: InstagramAccount
) -> None:
    other = InstagramAccountFactory(tenant=other_tenant)
    deliver(
        client,
        envelope(
            {
                BUSINESS: [text_message("aWdfA1", "a")],
                other.ig_user_id: [text_message("aWdfB1", "b", business=other.ig_user_id)],
            }
        ),
    )
    with scope(tenant=tenant):
        assert list(Message.objects.values_list("tenant_id", flat=True)) == [tenant.pk]
    with scope(tenant=other_tenant):
        assert list(Message.objects.values_list("tenant_id", flat=True)) == [other_tenant.pk]


def test_a_database_failure_is_retried_not_quarantined(
    client: Client, account: InstagramAccount
) -> None:
    from unittest import mock

    from django.db import OperationalError

    with mock.patch(
        "messaging.services.inbound.message_receive", side_effect=OperationalError("gone")
    ):
        deliver(client, envelope({BUSINESS: [text_message("aWdfDB", "x")]}))
    event = WebhookEvent.objects.get()
    assert event.status == WebhookEvent.Status.PENDING
    assert event.next_attempt_at is not None


def test_a_delivery_records_when_the_account_last_heard_from_meta(tenant: Tenant) -> None:
    from django_scopes import scopes_disabled

    account = InstagramAccountFactory(tenant=tenant)
    assert account.last_webhook_at is None
    body = meta_json_bytes(
        {
            "object": "instagram",
            "entry": [
                {
                    "id": account.ig_user_id,
                    "time": 1764072000000,
                    "messaging": [
                        {
                            "sender": {"id": "900000000000077"},
                            "recipient": {"id": account.ig_user_id},
                            "timestamp": 1764072000000,
                            "message": {"mid": "aWdfHEARD1", "text": "hello"},
                        }
                    ],
                }
            ],
        }
    )
    services.webhook_event_store(raw_body=body, signed_with="meta")
    relay.drain()
    with scopes_disabled():
        account.refresh_from_db()
    assert account.last_webhook_at is not None
