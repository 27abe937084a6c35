"""Acceptance 1 for contacts, against deliveries not yet processed: a delivery stored before a
contact's erasure, processed after it, brings back nothing of them; the other customers in the
same delivery are still processed; the customer writing again later is a new contact. Also: the
automation history of the customer goes with them."""

from __future__ import annotations

import hashlib
import json
import time
from datetime import datetime, timedelta

import pytest
from django.test import Client
from django.utils import timezone
from django_scopes import scope

from accounts import tasks
from accounts.audit import Action
from accounts.models import InstagramAccount, Tenant
from automation.models import Rule, RuleRun, Trigger
from messaging.models import Contact, Conversation, Message
from tests.compliance.support import audit_actions, rows_containing
from tests.messaging.inbound_support import (
    BUSINESS,
    CUSTOMER,
    T0,
    deliver,
    envelope,
    post,
    text_message,
)
from webhooks import relay
from webhooks.models import CallbackEndpoint, ErasedCustomer, WebhookEvent

pytestmark = pytest.mark.django_db

OTHER = "7654321098765432"
FIRST = "my first words, before the erasure"
WAITING = "words stored but not yet processed"
OTHERS_WORDS = "another customer's question"


def _contact(tenant: Tenant, igsid: str = CUSTOMER) -> Contact:
    with scope(tenant=tenant):
        return Contact.objects.get(igsid=igsid)


def _erase(tenant: Tenant) -> None:
    tasks.erase_contact(tenant.pk, _contact(tenant).pk)


def _received_at(body: bytes, moment: datetime) -> None:
    """Date a stored delivery. The ingest dates it by the database's clock, which stands still
    during a test (one transaction): here it is dated as the ingest would have."""
    WebhookEvent.objects.filter(body_sha256=hashlib.sha256(body).hexdigest()).update(
        received_at=moment
    )


def _now_ms(offset_seconds: float = 0) -> int:
    return int((time.time() + offset_seconds) * 1000)


def _stored_as(body: bytes) -> WebhookEvent:
    """The stored delivery of these bytes (found by their hash: its body may be gone)."""
    return WebhookEvent.objects.get(body_sha256=hashlib.sha256(body).hexdigest())


def test_a_delivery_waiting_during_the_erasure_brings_nothing_back(
    client: Client, tenant: Tenant, account: InstagramAccount, endpoint: CallbackEndpoint
) -> None:
    deliver(client, envelope({BUSINESS: [text_message("aWdfFIRST", FIRST, ts=T0)]}))
    # Meta batches customers together: one delivery, the erased customer's and another's.
    waiting = envelope(
        {
            BUSINESS: [
                text_message("aWdfWAITING", WAITING, ts=T0 + 60_000),
                text_message("aWdfOTHER", OTHERS_WORDS, ts=T0 + 61_000, customer=OTHER),
            ]
        }
    )
    assert post(client, waiting).status_code == 200
    assert WebhookEvent.objects.filter(status=WebhookEvent.Status.PENDING).count() == 1

    _erase(tenant)
    assert rows_containing(FIRST, WAITING, CUSTOMER) == []
    relay.drain()

    assert rows_containing(FIRST, WAITING, CUSTOMER) == []
    with scope(tenant=tenant):
        assert not Contact.objects.filter(igsid=CUSTOMER).exists()
        assert Message.objects.get(mid="aWdfOTHER").text == OTHERS_WORDS
    assert len(audit_actions(tenant, Action.CONTACT_ERASED)) == 1
    # Meta retrying the very bytes it sent is still recognised, and changes nothing.
    assert post(client, waiting).status_code == 200
    relay.drain()
    assert rows_containing(FIRST, WAITING, CUSTOMER) == []


def test_a_delivery_only_about_the_erased_customer_is_closed_without_its_body(
    client: Client, tenant: Tenant, account: InstagramAccount
) -> None:
    deliver(client, envelope({BUSINESS: [text_message("aWdfFIRST", FIRST, ts=T0)]}))
    waiting = envelope({BUSINESS: [text_message("aWdfWAITING", WAITING, ts=T0 + 60_000)]})
    post(client, waiting)
    _erase(tenant)
    event = _stored_as(waiting)
    assert event.status == WebhookEvent.Status.PROCESSED
    assert bytes(event.raw_body) == b""
    assert event.last_error == "erased before it was processed"
    relay.drain()
    assert rows_containing(FIRST, WAITING, CUSTOMER) == []
    with scope(tenant=tenant):
        assert not Contact.objects.filter(igsid=CUSTOMER).exists()


@pytest.mark.parametrize(
    ("received_after_erasure", "written_seconds_from_now"),
    [
        # Held by a worker while the erasure ran (received before it, written just now).
        pytest.param(-5, 0, id="received-before-the-erasure"),
        # Meta's late retry of something written before the erasure, received after it.
        pytest.param(1, -3600, id="written-before-the-erasure"),
    ],
)
def test_a_delivery_the_erasure_could_not_rewrite_is_not_applied_nor_kept(
    client: Client,
    tenant: Tenant,
    account: InstagramAccount,
    received_after_erasure: int,
    written_seconds_from_now: int,
) -> None:
    deliver(client, envelope({BUSINESS: [text_message("aWdfFIRST", FIRST, ts=T0)]}))
    _erase(tenant)
    with scope(tenant=tenant):
        erased_at = ErasedCustomer.objects.get().erased_at
    late = envelope(
        {
            BUSINESS: [
                text_message("aWdfLATE", WAITING, ts=_now_ms(written_seconds_from_now)),
                text_message("aWdfOTHER", OTHERS_WORDS, ts=_now_ms(), customer=OTHER),
            ]
        }
    )
    post(client, late)
    _received_at(late, erased_at + timedelta(seconds=received_after_erasure))
    relay.drain()
    assert rows_containing(FIRST, WAITING, CUSTOMER) == []
    with scope(tenant=tenant):
        assert not Contact.objects.filter(igsid=CUSTOMER).exists()
        assert Message.objects.get(mid="aWdfOTHER").text == OTHERS_WORDS
    event = _stored_as(late)
    assert event.status == WebhookEvent.Status.PROCESSED
    assert (bytes(event.raw_body), event.named_ids) == (b"", [])


def test_the_customer_writing_again_after_the_erasure_is_a_new_contact(
    client: Client, tenant: Tenant, account: InstagramAccount
) -> None:
    deliver(client, envelope({BUSINESS: [text_message("aWdfFIRST", FIRST, ts=T0)]}))
    _erase(tenant)
    again = envelope({BUSINESS: [text_message("aWdfAGAIN", "hello again", ts=_now_ms(1))]})
    post(client, again)
    _received_at(again, timezone.now())
    relay.drain()
    with scope(tenant=tenant):
        contact = Contact.objects.get(igsid=CUSTOMER)
        assert [m.text for m in Message.objects.filter(conversation__contact=contact)] == [
            "hello again"
        ]
    assert rows_containing(FIRST) == []


def test_the_erased_customer_is_remembered_by_a_keyed_hash_in_their_workspace_only(
    client: Client, tenant: Tenant, other_tenant: Tenant, account: InstagramAccount
) -> None:
    deliver(client, envelope({BUSINESS: [text_message("aWdfFIRST", FIRST, ts=T0)]}))
    _erase(tenant)
    with scope(tenant=tenant):
        (mark,) = ErasedCustomer.objects.all()
    assert CUSTOMER not in mark.igsid_hash
    assert rows_containing(CUSTOMER) == []
    with scope(tenant=other_tenant):
        assert not ErasedCustomer.objects.exists()


def test_contact_erasure_removes_their_automation_history(
    client: Client, tenant: Tenant, account: InstagramAccount
) -> None:
    deliver(
        client,
        envelope(
            {
                BUSINESS: [
                    text_message("aWdfFIRST", FIRST, ts=T0),
                    text_message("aWdfOTHER", OTHERS_WORDS, ts=T0 + 1, customer=OTHER),
                ]
            }
        ),
    )
    with scope(tenant=tenant):
        rule = Rule.objects.create(
            tenant=tenant,
            account=account,
            name="Prices",
            trigger=Trigger.KEYWORD,
            keywords=["price"],
            actions=[{"type": "reply_text", "text": "Our prices are on the site"}],
        )
        for igsid, source in ((CUSTOMER, "message:1"), (OTHER, "message:2")):
            contact = Contact.objects.get(igsid=igsid)
            RuleRun.objects.create(
                tenant=tenant,
                rule=rule,
                account=account,
                contact=contact,
                conversation=Conversation.objects.get(contact=contact),
                customer_igsid=igsid,
                source=source,
                outcome=RuleRun.Outcome.FIRED,
                done=[{"action": "reply_text", "message_id": 1}],
            )
        # A comment rule's run before any contact row existed: known by the id alone.
        RuleRun.objects.create(
            tenant=tenant,
            rule=rule,
            account=account,
            customer_igsid=CUSTOMER,
            source="comment:3",
            outcome=RuleRun.Outcome.SKIPPED,
            reason="cooldown",
        )
    assert rows_containing(CUSTOMER) != []
    _erase(tenant)
    assert rows_containing(CUSTOMER, FIRST) == []
    with scope(tenant=tenant):
        assert list(RuleRun.objects.values_list("customer_igsid", flat=True)) == [OTHER]
    (entry,) = audit_actions(tenant, Action.CONTACT_ERASED)
    assert entry.detail["rule_runs"] == 2
    assert CUSTOMER not in json.dumps(entry.detail)
