"""The audit log: append-only, written by the services that change things, never carrying
content, filtered by owners and admins in the UI and read through the API, per workspace."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import DatabaseError, connection, transaction
from django.test import Client
from django_scopes import scope
from rest_framework.test import APIClient

from accounts import services
from accounts.audit import Action, audit_record
from accounts.models import ApiScope, AuditEntry, Membership, Role, Tenant
from tests.compliance.support import audit_actions
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_entries_cannot_be_changed_or_removed(tenant: Tenant) -> None:
    with scope(tenant=tenant):
        entry = audit_record(tenant=tenant, action=Action.SETTINGS_CHANGED)
        with pytest.raises(PermissionError):
            AuditEntry.objects.filter(pk=entry.pk).update(action="x")
        with pytest.raises(PermissionError):
            AuditEntry.objects.filter(pk=entry.pk).delete()
        with pytest.raises(PermissionError):
            entry.save()
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE accounts_auditentry SET action = 'x'")
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM accounts_auditentry")


def test_detail_refuses_content(tenant: Tenant) -> None:
    with scope(tenant=tenant), pytest.raises(ValueError, match="text"):
        audit_record(tenant=tenant, action=Action.CONTACT_ERASED, detail={"text": "hi"})


def test_people_and_key_changes_are_logged(tenant: Tenant, owner: Membership) -> None:
    user = owner.user
    with scope(tenant=tenant):
        _invitation, _ = services.invitation_create(
            tenant=tenant, email="new@example.com", role=Role.AGENT, invited_by=user,
            acting_role=Role.OWNER,
        )  # fmt: skip
        member = MembershipFactory(tenant=tenant, role=Role.AGENT, user=UserFactory())
        services.membership_change_role(
            membership=member, role=Role.ADMIN, acting_role=Role.OWNER, actor_user=user
        )
        services.membership_remove(membership=member, acting_role=Role.OWNER, actor_user=user)
        key, secret = services.api_key_create(
            tenant=tenant, name="crm", scopes=["members:read"], created_by=user
        )
        services.api_key_revoke(api_key=key, actor_user=user)
        services.tenant_rename(tenant=tenant, name="Renamed agency", actor_user=user)
    actions = [e.action for e in audit_actions(tenant)]
    assert actions == [
        Action.MEMBER_INVITED,
        Action.MEMBER_ROLE_CHANGED,
        Action.MEMBER_REMOVED,
        Action.API_KEY_CREATED,
        Action.API_KEY_REVOKED,
        Action.SETTINGS_CHANGED,
    ]
    entries = audit_actions(tenant)
    assert all(e.actor_user_id == user.pk for e in entries)
    assert entries[1].detail == {"from": "agent", "to": "admin"}
    assert secret not in str([e.detail for e in entries])


def _entries(tenant: Tenant, user: Any) -> None:
    with scope(tenant=tenant):
        audit_record(tenant=tenant, action=Action.API_KEY_CREATED, actor_user=user,
                     target_type="api_key", target_id=1)  # fmt: skip
        audit_record(tenant=tenant, action=Action.CONTACT_EXPORTED, actor_user=user,
                     target_type="contact", target_id=2)  # fmt: skip
        audit_record(tenant=tenant, action=Action.RETENTION_PURGED, actor_label="Retention")


def test_owners_and_admins_filter_the_log_agents_may_not(
    tenant: Tenant, other_tenant: Tenant, owner: Membership, owner_client: Client,
    agent_client: Client,
) -> None:  # fmt: skip
    _entries(tenant, owner.user)
    with scope(tenant=other_tenant):
        audit_record(tenant=other_tenant, action=Action.CONTACT_EXPORTED, actor_label="B person")
    page = owner_client.get("/compliance/audit-log/").content.decode()
    assert page.count("<tr data-action=") == 3
    assert "B person" not in page
    filtered = owner_client.get("/compliance/audit-log/?action=contact.exported").content.decode()
    assert filtered.count("<tr data-action=") == 1
    by_system = owner_client.get("/compliance/audit-log/?actor=system").content.decode()
    assert by_system.count('<tr data-action="retention.purged"') == 1
    assert by_system.count("<tr data-action=") == 1
    future = owner_client.get("/compliance/audit-log/?since=2999-01-01").content.decode()
    assert future.count("<tr data-action=") == 0
    assert agent_client.get("/compliance/audit-log/").status_code == 403


@pytest.mark.parametrize("actor", ["\u00b2", "key:\u00b2", "\u2460", "key:" + "9" * 28])
def test_an_actor_that_is_not_ascii_digits_is_ignored_like_any_bad_actor(
    tenant: Tenant, owner: Membership, owner_client: Client, api_client: APIClient, actor: str
) -> None:
    # str.isdigit() is true for "²" and "①", which int() refuses; 28 digits are no id either.
    _entries(tenant, owner.user)
    page = owner_client.get("/compliance/audit-log/", {"actor": actor})
    assert page.status_code == 200
    rows = page.content.decode().count("<tr data-action=")
    bad = owner_client.get("/compliance/audit-log/", {"actor": "abc"}).content.decode()
    assert rows == bad.count("<tr data-action=") >= 3
    listed = api_client.get("/api/v1/audit-log", {"actor": actor})
    assert listed.status_code == 200
    assert listed.json() == api_client.get("/api/v1/audit-log", {"actor": "abc"}).json()


def test_the_api_reads_the_own_workspaces_log_with_filters(
    tenant: Tenant, other_tenant: Tenant, owner: Membership
) -> None:
    _entries(tenant, owner.user)
    with scope(tenant=other_tenant):
        audit_record(tenant=other_tenant, action=Action.CONTACT_EXPORTED, actor_label="B person")
    with scope(tenant=tenant):
        _, secret = services.api_key_create(
            tenant=tenant, name="auditor", scopes=[ApiScope.AUDIT_READ], created_by=None
        )
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    body = api.get("/api/v1/audit-log").json()
    # The key's own creation is logged too (by no person).
    assert [r["action"] for r in body["results"]] == [
        Action.API_KEY_CREATED,
        Action.RETENTION_PURGED,
        Action.CONTACT_EXPORTED,
        Action.API_KEY_CREATED,
    ]
    assert "B person" not in str(body)
    only = api.get("/api/v1/audit-log", {"action": "contact.", "actor": str(owner.user.pk)}).json()
    assert [r["action"] for r in only["results"]] == [Action.CONTACT_EXPORTED]
    assert only["results"][0]["actor"] == {
        "type": "user", "id": owner.user.pk, "label": owner.user.email,
    }  # fmt: skip
    assert api.get("/api/v1/audit-log", {"since": "yesterday"}).status_code == 400
    with scope(tenant=tenant):
        _, other = services.api_key_create(
            tenant=tenant, name="no audit", scopes=[ApiScope.MEMBERS_READ], created_by=None
        )
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {other}")
    assert api.get("/api/v1/audit-log").status_code == 403
