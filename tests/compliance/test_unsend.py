"""Acceptance 1, unsend: the content leaves every table (raw deliveries and partner events
included), the tombstone stays, and the audit log has one entry."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone
from django_scopes import scope

from accounts.audit import Action
from accounts.models import InstagramAccount, Tenant
from tests.compliance.support import audit_actions, rows_containing
from tests.messaging.inbound_support import (
    BUSINESS,
    CUSTOMER,
    T0,
    deliver,
    envelope,
    item,
    messages,
)
from webhooks import services as webhook_services
from webhooks.models import CallbackEndpoint, CallbackEvent, WebhookEvent

pytestmark = pytest.mark.django_db

MID = "aWdfZAG1UNSENT0001"
TEXT = "my secret address is 12 Rue Oberkampf"
PHOTO = "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=77&signature=PHOTOSIG"
EDITED = "edited: my secret address is 14 Rue Oberkampf"


def _original(text: str = TEXT) -> bytes:
    message = {
        "mid": MID,
        "text": text,
        "attachments": [{"type": "image", "payload": {"url": PHOTO}}],
    }
    return envelope({BUSINESS: [item({"message": message}, ts=T0)]})


def _unsend() -> bytes:
    return envelope({BUSINESS: [item({"message": {"mid": MID, "is_deleted": True}}, ts=T0 + 5)]})


def test_unsend_leaves_no_copy_anywhere_and_one_audit_entry(
    client: Client, tenant: Tenant, account: InstagramAccount, endpoint: CallbackEndpoint
) -> None:
    deliver(client, _original())
    with scope(tenant=tenant):
        assert CallbackEvent.objects.exists()  # the partner's copy exists before
    assert rows_containing(TEXT, PHOTO) != []

    deliver(client, _unsend())
    deliver(client, _unsend() + b" ")  # a repeat changes nothing

    assert rows_containing(TEXT, PHOTO, "PHOTOSIG") == []
    (message,) = messages(tenant)
    assert message.is_unsent
    assert message.mid == MID
    assert len(audit_actions(tenant, Action.MESSAGE_UNSENT)) == 1
    # The raw deliveries keep their hash (a replay is still recognised), not their bytes.
    assert WebhookEvent.objects.filter(raw_body=b"").count() >= 1
    assert not WebhookEvent.objects.filter(body_sha256="").exists()


def test_a_late_original_or_edit_of_an_unsent_message_is_not_kept_raw(
    client: Client, tenant: Tenant, account: InstagramAccount
) -> None:
    deliver(client, _unsend())
    deliver(client, _original())
    edit = item({"message_edit": {"mid": MID, "text": EDITED, "num_edit": 1}}, ts=T0 + 9)
    deliver(client, envelope({BUSINESS: [edit]}))
    assert rows_containing(TEXT, PHOTO, EDITED) == []
    assert len(audit_actions(tenant, Action.MESSAGE_UNSENT)) == 1


def test_unsend_cancels_a_queued_send_and_blanks_its_payload(
    tenant: Tenant, account: InstagramAccount
) -> None:
    from accounts import compliance
    from messaging.models import OutboundJob
    from tests.isolation.factories import MessageFactory

    message = MessageFactory(
        conversation__contact__account=account, text="outbound secret words", mid=""
    )
    with scope(tenant=tenant):
        job = OutboundJob.objects.create(
            tenant=tenant,
            account=account,
            conversation=message.conversation,
            message=message,
            sender_kind="agent",
            payload={"kind": "text", "text": "outbound secret words"},
        )
        compliance.messages_erase(message_ids=[message.pk])
        job.refresh_from_db()
    assert job.status == OutboundJob.Status.FAILED
    assert job.payload == {}
    assert rows_containing("outbound secret words") == []


def test_nothing_about_a_message_is_cached(
    client: Client, tenant: Tenant, account: InstagramAccount
) -> None:
    """The cache (Redis) never holds message content: nothing to purge there on unsend."""
    import redis
    from django.conf import settings

    deliver(client, _original())
    prefix = settings.CACHES["default"].get("KEY_PREFIX", "")
    connection = redis.Redis.from_url(settings.REDIS_URL)
    for key in connection.scan_iter(match=f"{prefix}:*", count=1000):
        value = connection.dump(key) or b""
        assert TEXT.encode() not in value
        assert PHOTO.encode() not in value


def test_processing_records_the_ids_a_delivery_names(
    client: Client, tenant: Tenant, account: InstagramAccount
) -> None:
    deliver(client, _original())
    (event,) = WebhookEvent.objects.all()
    assert event.named_ids == sorted({BUSINESS, CUSTOMER, MID})


def test_unsend_still_finds_deliveries_processed_before_their_ids_were_recorded(
    client: Client, tenant: Tenant, account: InstagramAccount
) -> None:
    deliver(client, _original())
    WebhookEvent.objects.update(named_ids=None)
    deliver(client, _unsend())
    assert rows_containing(TEXT, PHOTO) == []


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the index is PostgreSQL's")
def test_the_unsend_scan_of_raw_deliveries_uses_an_index(
    tenant: Tenant, account: InstagramAccount
) -> None:
    """Among 20,000 processed deliveries, the one naming the unsent message is found through
    the GIN index on the ids deliveries name, not by reading every body."""
    table = WebhookEvent._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {table} (received_at, raw_body, body_sha256, signed_with, status,
                                 attempts, last_error, processed_at, named_ids)
            SELECT now() - (n || ' seconds')::interval,
                   convert_to('{{"entry":[{{"id":"{BUSINESS}","messaging":[{{"message":'
                              || '{{"mid":"aWdfBULK' || n || '","text":"words ' || n
                              || '"}}}}]}}]}}', 'UTF8'),
                   md5(n::text) || md5((n + 1)::text), 'meta', 'processed', 1, '', now(),
                   jsonb_build_array('{BUSINESS}', 'aWdfBULK' || n)
            FROM generate_series(1, 20000) AS n
            """  # noqa: S608 (test data, no outside input)
        )
        cursor.execute(f"ANALYZE {table}")
    statements = webhook_services.bodies_erase_statements(
        needles=["aWdfBULK12345"], received_after=timezone.now() - timedelta(days=2)
    )
    plans = []
    with connection.cursor() as cursor:
        for sql, params in statements:
            cursor.execute(f"EXPLAIN {sql}", params)
            plans.append("\n".join(row[0] for row in cursor.fetchall()))
    indexed, unindexed = plans
    assert "webhook_event_named_ids" in indexed, indexed
    assert "Seq Scan" not in indexed, indexed
    assert "webhook_event_unindexed" in unindexed, unindexed
    assert "Seq Scan" not in unindexed, unindexed
    assert webhook_services.webhook_bodies_erase(needles=["aWdfBULK12345"]) == 1
    assert rows_containing('words 12345"') == []
    assert rows_containing('words 12346"') != []
