"""Acceptance 1 for a workspace's deletion: an owner confirms by typing its name; tokens go
first and webhooks are unsubscribed; then everything is erased, with visible progress that
outlives the workspace; the deletion job stays as the record."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django_scopes import scope

from accounts.models import AuditEntry, Membership, Role, Tenant, TenantDeletionJob
from integrations.meta.sandbox.testing import RunningSandbox
from tests.accounts.onboarding_support import ACME, account, backfills, connect, sandbox
from tests.compliance.support import rows_containing
from tests.factories import MembershipFactory, UserFactory
from tests.isolation.factories import CommentFactory, MessageFactory
from tests.messaging.inbound_support import deliver, envelope, text_message
from webhooks.models import CallbackEndpoint, CallbackEventType

__all__ = ["backfills", "sandbox"]

pytestmark = pytest.mark.django_db


def test_an_owner_deletes_the_workspace_and_nothing_of_it_remains(
    sandbox: RunningSandbox,
    backfills: Any,
    tenant: Tenant,
    other_tenant: Tenant,
    owner: Membership,
    owner_client: Client,
    client: Client,
    run_queued: Callable[[], list[str]],
    django_capture_on_commit_callbacks: Any,
) -> None:
    connect(tenant, "facebook", [ACME])
    acme = account(tenant, ACME)
    with scope(tenant=tenant):
        CallbackEndpoint.objects.create(
            tenant=tenant,
            url="https://partner.example/hooks",
            events=list(CallbackEventType.values),
            secret="partner-signing-secret",
        )
    deliver(client, envelope({ACME: [text_message("aWdfTENANT1", "workspace secret words")]}))
    MessageFactory(conversation__contact__account=acme, text="more workspace words")
    CommentFactory(account=acme, text="workspace comment words")
    theirs = MessageFactory(
        conversation__contact__account__tenant=other_tenant, text="other workspace words"
    )
    token = acme.access_token
    assert rows_containing("workspace secret words") != []

    # The typed confirmation must match.
    assert (
        owner_client.post("/compliance/delete-workspace/", {"confirm": "nope"}).status_code == 400
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post("/compliance/delete-workspace/", {"confirm": tenant.name})
    assert response.status_code == 302
    job = TenantDeletionJob.objects.get()
    assert response["Location"] == f"/compliance/workspace-deletions/{job.pk}/"
    assert owner_client.get(response["Location"]).status_code == 200

    assert run_queued() == ["accounts.delete_tenant"]
    job.refresh_from_db()
    assert job.status == TenantDeletionJob.Status.DONE
    assert job.progress["done"] == ["tokens", "api_keys", "messages", "copies", "workspace"]
    assert not Tenant.objects.filter(pk=tenant.pk).exists()
    with sandbox.sandbox.lock:  # webhooks for its account were unsubscribed with Meta
        assert not sandbox.sandbox.world.pages["200000000000001"].subscribed_fields
    assert (
        rows_containing(
            "workspace secret words", "more workspace words", "workspace comment words", token, ACME
        )
        == []
    )
    assert rows_containing(tenant.name) == []
    theirs.refresh_from_db()
    assert theirs.text == "other workspace words"
    # The person who asked still sees the finished job; nobody else does.
    page = owner_client.get(f"/compliance/workspace-deletions/{job.pk}/")
    assert page.status_code == 200
    assert "Completed" in page.content.decode()
    stranger = Client()
    stranger.force_login(UserFactory())
    assert stranger.get(f"/compliance/workspace-deletions/{job.pk}/").status_code == 404


def test_only_owners_may_delete_and_admins_see_no_button(tenant: Tenant, owner: Membership) -> None:
    admin = MembershipFactory(tenant=tenant, role=Role.ADMIN, user=UserFactory())
    client = Client()
    client.force_login(admin.user)
    assert client.get("/compliance/delete-workspace/").status_code == 403
    assert client.post("/compliance/delete-workspace/", {"confirm": tenant.name}).status_code == 403
    assert b"delete-workspace" not in client.get("/compliance/").content
    assert not TenantDeletionJob.objects.exists()


def test_the_audit_log_cannot_be_deleted_except_with_its_workspace(tenant: Tenant) -> None:
    from django.db import DatabaseError, connection, transaction

    from accounts.audit import Action, audit_record

    with scope(tenant=tenant):
        audit_record(tenant=tenant, action=Action.SETTINGS_CHANGED)
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM accounts_auditentry")
    with pytest.raises(DatabaseError), transaction.atomic():
        Tenant.objects.filter(pk=tenant.pk).delete()
    assert Tenant.objects.filter(pk=tenant.pk).exists()
    with scope(tenant=tenant):
        assert AuditEntry.objects.count() == 1


def test_workspace_deletion_removes_its_automation_too(
    tenant: Tenant,
    other_tenant: Tenant,
    owner: Membership,
    run_queued: Callable[[], list[str]],
    django_capture_on_commit_callbacks: Any,
) -> None:
    from accounts import compliance
    from automation.models import AccountAutomation, Rule, RuleRun, Trigger
    from tests.factories import InstagramAccountFactory

    def automate(workspace: Tenant, words: str) -> None:
        account = InstagramAccountFactory(tenant=workspace, access_token="")
        message = MessageFactory(conversation__contact__account=account, text=f"{words} message")
        with scope(tenant=workspace):
            rule = Rule.objects.create(
                tenant=workspace,
                account=account,
                name=f"{words} rule",
                trigger=Trigger.KEYWORD,
                keywords=[f"{words} keyword"],
                actions=[{"type": "reply_text", "text": f"{words} answer"}],
                bot_secret=f"{words} bot secret",
            )
            RuleRun.objects.create(
                tenant=workspace,
                rule=rule,
                account=account,
                contact=message.conversation.contact,
                conversation=message.conversation,
                customer_igsid=f"{words} customer",
                source=f"message:{message.pk}",
                outcome=RuleRun.Outcome.FIRED,
            )
            AccountAutomation.objects.create(
                tenant=workspace, account=account, hours={"mon": [["09:00", "17:00"]]},
                ice_breakers=[{"question": f"{words} question", "payload": "Q1"}],
            )  # fmt: skip

    automate(tenant, "ours")
    automate(other_tenant, "theirs")
    assert rows_containing("ours rule", "ours answer", "ours customer", "ours question") != []
    with django_capture_on_commit_callbacks(execute=True), scope(tenant=tenant):
        compliance.tenant_deletion_request(
            tenant=tenant, requested_by=owner.user, confirm_name=tenant.name
        )
    assert run_queued() == ["accounts.delete_tenant"]
    assert TenantDeletionJob.objects.get().status == TenantDeletionJob.Status.DONE
    ours = ("ours rule", "ours keyword", "ours answer", "ours bot secret", "ours customer")
    assert rows_containing(*ours, "ours question", "ours message") == []
    assert len(rows_containing("theirs rule", "theirs customer", "theirs question")) == 3
