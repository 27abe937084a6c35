"""What processing one stored delivery costs in SQL statements (reliability row P6).

The backlog drain rate is bounded by round trips per event: a typical delivery (one message
from a customer the account knows) is pinned at a maximum, so a change that adds a statement to
the hot path fails here instead of in the next benchmark.

Typical delivery, 11 statements: claim the event (1), its savepoint (2), the customer's
erasure lock and erasure marks (2), the conversation with its contact, locked, with whether the
account has automation rules (1), the message insert (1), the conversation update (1), the
event's mark (1), and the transaction's BEGIN/COMMIT (2; a savepoint pair inside a test).
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_scopes import scopes_disabled

from accounts.models import InstagramAccount, Tenant
from integrations.meta.signatures import meta_json_bytes
from messaging.models import Message
from tests.factories import InstagramAccountFactory
from webhooks import relay, router, services
from webhooks.models import WebhookEvent

pytestmark = pytest.mark.django_db

TYPICAL_DELIVERY_MAX_STATEMENTS = 11
NEW_CUSTOMER_DELIVERY_MAX_STATEMENTS = 24


def _deliver(business: str, customer: str, mid: str, n: int) -> None:
    services.webhook_event_store(
        raw_body=meta_json_bytes(
            {
                "object": "instagram",
                "entry": [
                    {
                        "id": business,
                        "time": 1_718_000_000_000 + n,
                        "messaging": [
                            {
                                "sender": {"id": customer},
                                "recipient": {"id": business},
                                "timestamp": 1_718_000_000_000 + n,
                                "message": {"mid": mid, "text": f"Hello {n}"},
                            }
                        ],
                    }
                ],
            }
        ),
        signed_with="meta",
    )


def _process_one() -> int:
    with CaptureQueriesContext(connection) as queries:
        assert relay.drain_batch(1) == 1
    return len(queries)


def _statuses() -> set[str]:
    return set(WebhookEvent.objects.values_list("status", flat=True))


def test_a_typical_delivery_stays_within_its_statement_budget(tenant: Tenant) -> None:
    account = InstagramAccountFactory(tenant=tenant)
    business = account.ig_user_id

    _deliver(business, "5550001", "aWdfbudget1", 1)
    first = _process_one()
    assert first <= NEW_CUSTOMER_DELIVERY_MAX_STATEMENTS, first

    for n in range(2, 5):
        _deliver(business, "5550001", f"aWdfbudget{n}", n)
        typical = _process_one()
        assert typical <= TYPICAL_DELIVERY_MAX_STATEMENTS, typical

    assert _statuses() == {WebhookEvent.Status.PROCESSED}
    with scopes_disabled():
        assert Message.objects.filter(account=account).count() == 4
        conversation = Message.objects.filter(account=account).first().conversation  # type: ignore[union-attr]
        assert conversation.unread_count == 4


def test_a_redelivered_message_is_stored_once_within_the_budget(tenant: Tenant) -> None:
    account = InstagramAccountFactory(tenant=tenant)
    _deliver(account.ig_user_id, "5550002", "aWdfbudgetdup", 1)
    _process_one()
    # The same message in another delivery (a different body: another batch composition).
    _deliver(account.ig_user_id, "5550002", "aWdfbudgetdup", 2)
    again = _process_one()
    assert again <= TYPICAL_DELIVERY_MAX_STATEMENTS + 1, again
    with scopes_disabled():
        assert Message.objects.filter(account=account, mid="aWdfbudgetdup").count() == 1
        assert (
            Message.objects.get(account=account, mid="aWdfbudgetdup").conversation.unread_count == 1
        )


def test_a_remembered_route_ends_when_the_account_is_disconnected(tenant: Tenant) -> None:
    account = InstagramAccountFactory(tenant=tenant)
    assert router.account_for_meta_id(account.ig_user_id) is not None
    with CaptureQueriesContext(connection) as queries:
        assert router.account_for_meta_id(account.ig_user_id) is not None
    assert len(queries) == 0  # remembered

    with scopes_disabled():
        account.status = InstagramAccount.Status.DISCONNECTED
        account.save(update_fields=["status"])
    assert router.account_for_meta_id(account.ig_user_id) is None

    _deliver(account.ig_user_id, "5550003", "aWdfbudgetgone", 1)
    relay.drain_batch(1)
    assert _statuses() == {WebhookEvent.Status.QUARANTINED}


def test_each_caller_gets_its_own_copy_of_a_remembered_account(tenant: Tenant) -> None:
    account = InstagramAccountFactory(tenant=tenant)
    first = router.account_for_meta_id(account.ig_user_id)
    assert first is not None
    first.username = "changed in memory"
    second = router.account_for_meta_id(account.ig_user_id)
    assert second is not None
    assert second.username == account.username
