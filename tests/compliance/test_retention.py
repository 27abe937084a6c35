"""Acceptance 1 for retention: content older than the period is erased in batches (tombstones
stay), newer content and other workspaces are untouched, the run is logged and shown."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from django_scopes import scope

from accounts import compliance, tasks
from accounts.audit import Action
from accounts.models import InstagramAccount, Tenant, TenantCompliance
from messaging.models import Message
from tests.compliance.support import audit_actions, rows_containing
from tests.factories import InstagramAccountFactory
from tests.isolation.factories import CommentFactory, ContactFactory, MessageFactory

pytestmark = pytest.mark.django_db


def _message(account: InstagramAccount, text: str, days_old: float) -> Message:
    return MessageFactory(
        conversation__contact__account=account,
        text=text,
        attachments=[{"type": "image", "url": f"https://cdn.example/{text.replace(' ', '-')}"}],
        sent_at=timezone.now() - timedelta(days=days_old),
    )


def test_retention_erases_old_content_in_batches_and_keeps_the_rest(
    tenant: Tenant, other_tenant: Tenant, account: InstagramAccount, owner_client: Client
) -> None:
    old = [_message(account, f"old words {i}", 40) for i in range(7)]
    fresh = _message(account, "fresh words", 2)
    comment = CommentFactory(
        account=account, text="old comment words", commented_at=timezone.now() - timedelta(days=40)
    )
    theirs = _message(InstagramAccountFactory(tenant=other_tenant), "their ancient words", 400)
    with scope(tenant=tenant):
        compliance.retention_policy_set(tenant=tenant, days=30)
        result = compliance.retention_purge(tenant_id=tenant.pk, batch_size=3)
    assert result["messages"] == 7
    assert result["batches"] == 3
    assert result["comments"] == 1
    assert rows_containing("old words", "cdn.example/old", "old comment words") == []
    assert rows_containing("fresh words", "their ancient words") != []
    with scope(tenant=tenant):
        for message in old:
            message.refresh_from_db()
            assert message.is_unsent
            assert message.text == ""
            assert message.attachments == []
        fresh.refresh_from_db()
        assert fresh.text == "fresh words"
        comment.refresh_from_db()
        assert comment.text == ""
    theirs.refresh_from_db()
    assert theirs.text == "their ancient words"
    assert len(audit_actions(tenant, Action.RETENTION_PURGED)) == 1
    assert audit_actions(other_tenant) == []
    assert "7 messages, 1 comments" in owner_client.get("/compliance/").content.decode()
    # A second night finds nothing more and logs nothing more.
    with scope(tenant=tenant):
        assert compliance.retention_purge(tenant_id=tenant.pk)["messages"] == 0
    assert len(audit_actions(tenant, Action.RETENTION_PURGED)) == 1


def test_an_account_override_beats_the_workspace_period(
    tenant: Tenant, account: InstagramAccount
) -> None:
    other = InstagramAccountFactory(tenant=tenant)
    _message(account, "ten days old", 10)
    _message(other, "ten days old too", 10)
    with scope(tenant=tenant):
        compliance.retention_policy_set(tenant=tenant, days=30, account_days={other.pk: 7})
        compliance.retention_purge(tenant_id=tenant.pk)
    assert rows_containing("ten days old too") == []
    assert rows_containing("ten days old") != []


def test_the_nightly_beat_visits_only_workspaces_with_a_period(
    tenant: Tenant, other_tenant: Tenant, account: InstagramAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    with scope(tenant=tenant):
        compliance.retention_policy_set(tenant=tenant, days=30)
    queued: list[int] = []
    monkeypatch.setattr(tasks.retention_purge, "delay", queued.append)
    assert tasks.retention_purge_all() == 1
    assert queued == [tenant.pk]
    _message(account, "old words", 60)
    tasks.retention_purge(tenant.pk)
    with scope(tenant=tenant):
        policy = TenantCompliance.objects.get()
    assert policy.last_retention_run_at is not None
    assert policy.last_retention_erased["messages"] == 1


def test_the_policy_is_set_on_the_settings_page_by_admins_only(
    tenant: Tenant, account: InstagramAccount, owner_client: Client, agent_client: Client
) -> None:
    response = owner_client.post("/compliance/", {"days": "90", f"account_{account.pk}": "14"})
    assert response.status_code == 302
    with scope(tenant=tenant):
        policy = TenantCompliance.objects.get()
    assert policy.message_retention_days == 90
    assert policy.account_retention_days == {str(account.pk): 14}
    assert owner_client.post("/compliance/", {"days": "0"}).status_code == 400
    assert agent_client.get("/compliance/").status_code == 200
    assert agent_client.post("/compliance/", {"days": "1"}).status_code == 403
    (entry,) = audit_actions(tenant, Action.RETENTION_CHANGED)
    assert entry.detail["days"] == 90


@pytest.mark.parametrize("days", ["\u00b2", "3\u2460", "9" * 5000])
def test_days_that_are_not_ascii_digits_are_refused_with_the_reason(
    tenant: Tenant, account: InstagramAccount, owner_client: Client, days: str
) -> None:
    # str.isdigit() is true for "²" and "①", which int() refuses.
    for form in ({"days": days}, {"days": "90", f"account_{account.pk}": days}):
        response = owner_client.post("/compliance/", form)
        assert response.status_code == 400
        assert "Enter a number of days." in response.content.decode()
    with scope(tenant=tenant):
        assert not TenantCompliance.objects.filter(message_retention_days__isnull=False).exists()


def test_processed_raw_deliveries_lose_their_bodies_after_the_retention(
    tenant: Tenant, account: InstagramAccount, client: Client
) -> None:
    from tests.messaging.inbound_support import BUSINESS, deliver, envelope, text_message
    from webhooks.models import WebhookEvent

    deliver(client, envelope({BUSINESS: [text_message("aWdfOLD", "eight days ago")]}))
    # Stored by the database's clock: made eight days old here.
    WebhookEvent.objects.update(received_at=timezone.now() - timedelta(days=8))
    deliver(client, envelope({BUSINESS: [text_message("aWdfNEW", "just now")]}))
    ContactFactory(account=account)
    assert compliance.webhook_raw_bodies_purge() == 1
    bodies = {bytes(e.raw_body) for e in WebhookEvent.objects.all()}
    assert b"" in bodies
    assert any(b"just now" in body for body in bodies)
    assert rows_containing("eight days ago") != []  # the message itself has no retention set
    assert WebhookEvent.objects.exclude(body_sha256="").count() == 2


def test_messages_erased_by_retention_say_so_in_the_inbox_the_api_and_partner_events(
    tenant: Tenant, account: InstagramAccount, agent_client: Client, api_client: Any
) -> None:
    from webhooks.partner_events import message_data

    old = _message(account, "old words", 40)
    unsent = MessageFactory(
        conversation=old.conversation,
        text="",
        sent_at=timezone.now() - timedelta(days=1),
        deleted_at=timezone.now(),
    )
    with scope(tenant=tenant):
        compliance.retention_policy_set(tenant=tenant, days=30)
        compliance.retention_purge(tenant_id=tenant.pk)
        old.refresh_from_db()
        assert old.erased_reason == Message.ErasedReason.RETENTION
        assert message_data(old)["erased_reason"] == "retention"
        assert message_data(unsent)["erased_reason"] == "unsent"
    html = agent_client.get(f"/inbox/{old.conversation_id}/").content.decode()
    assert "Removed by the retention policy" in html
    assert "This message was unsent" in html  # the one the customer unsent
    response = api_client.get(f"/api/v1/conversations/{old.conversation_id}/messages")
    assert response.status_code == 200
    reasons = {m["id"]: (m["unsent"], m["erased_reason"]) for m in response.json()["results"]}
    assert reasons == {old.pk: (True, "retention"), unsent.pk: (True, "unsent")}
