"""Acceptance 1 and 4 for contacts: export everything as JSON, erase everything (messages,
comments, reactions, profile, attachment URLs, partner logs), from the UI and the API, and
never across workspaces."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django_scopes import scope
from rest_framework.test import APIClient

from accounts import services
from accounts.audit import Action
from accounts.models import ApiScope, InstagramAccount, Role, Tenant
from messaging.models import Contact
from tests.compliance.support import audit_actions, rows_containing
from tests.factories import InstagramAccountFactory, MembershipFactory, UserFactory
from tests.isolation.factories import ContactFactory, MessageFactory
from tests.messaging.inbound_support import (
    BUSINESS,
    CUSTOMER,
    T0,
    deliver,
    envelope,
    item,
    text_message,
)
from webhooks.models import CallbackEndpoint

pytestmark = pytest.mark.django_db

TEXT = "please deliver to 221B Baker Street"
PHOTO = "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=88&signature=CONTACTSIG"
COMMENT = "is this available in size 38?"


def _converse(client: Client) -> None:
    photo = {"mid": "aWdfPHOTO01", "attachments": [{"type": "image", "payload": {"url": PHOTO}}]}
    react = {"reaction": {"mid": "aWdfTEXT01", "action": "react", "reaction": "love",
                          "emoji": "\u2764"}}  # fmt: skip
    deliver(
        client,
        envelope(
            {
                BUSINESS: [
                    text_message("aWdfTEXT01", TEXT, ts=T0),
                    item({"message": photo}, ts=T0 + 1),
                    item(react, ts=T0 + 2),
                ]
            }
        ),
    )
    comment = {
        "field": "comments",
        "value": {
            "id": "18000000000000001",
            "text": COMMENT,
            "from": {"id": CUSTOMER, "username": "jane_customer"},
            "media": {"id": "17900000000000001", "media_product_type": "FEED"},
        },
    }
    deliver(client, envelope({BUSINESS: [comment]}, key="changes"))


def _contact(tenant: Tenant) -> Contact:
    with scope(tenant=tenant):
        contact = Contact.objects.get(igsid=CUSTOMER)
        Contact.objects.filter(pk=contact.pk).update(username="jane_customer", name="Jane Customer")
        contact.refresh_from_db()
        return contact


@pytest.fixture
def admin_client(tenant: Tenant) -> Client:
    member = MembershipFactory(tenant=tenant, role=Role.ADMIN, user=UserFactory())
    client = Client()
    client.force_login(member.user)
    return client


def _api(tenant: Tenant, scopes: list[str]) -> APIClient:
    with scope(tenant=tenant):
        _, secret = services.api_key_create(
            tenant=tenant, name="helpdesk", scopes=scopes, created_by=None
        )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def test_export_holds_everything_about_the_contact(
    client: Client, tenant: Tenant, account: InstagramAccount, admin_client: Client
) -> None:
    _converse(client)
    contact = _contact(tenant)
    response = admin_client.get(f"/compliance/contacts/{contact.pk}/export/")
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment;")
    data = json.loads(response.content)
    assert data["contact"]["igsid"] == CUSTOMER
    assert data["contact"]["name"] == "Jane Customer"
    assert next(m["text"] for m in data["messages"]) == TEXT
    assert data["messages"][1]["attachments"][0]["url"] == PHOTO
    assert data["reactions"][0]["reaction"] == "love"
    assert data["comments"][0]["text"] == COMMENT
    (entry,) = audit_actions(tenant, Action.CONTACT_EXPORTED)
    assert TEXT not in json.dumps(entry.detail)
    assert entry.target_id == str(contact.pk)


def test_erasure_from_the_ui_leaves_nothing_of_the_contact(
    client: Client,
    tenant: Tenant,
    account: InstagramAccount,
    endpoint: CallbackEndpoint,
    admin_client: Client,
    run_queued: Callable[[], list[str]],
    django_capture_on_commit_callbacks: Any,
) -> None:
    _converse(client)
    contact = _contact(tenant)
    needles = (TEXT, PHOTO, "CONTACTSIG", COMMENT, "jane_customer", "Jane Customer", CUSTOMER)
    assert rows_containing(*needles) != []
    assert admin_client.get(f"/compliance/contacts/{contact.pk}/erase/").status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(f"/compliance/contacts/{contact.pk}/erase/")
    assert response.status_code == 302
    assert run_queued() == ["accounts.erase_contact"]
    assert rows_containing(*needles) == []
    assert len(audit_actions(tenant, Action.CONTACT_ERASED)) == 1
    assert len(audit_actions(tenant, Action.CONTACT_ERASURE_REQUESTED)) == 1
    # Running the erasure again (a retried task) is harmless.
    from accounts import tasks

    tasks.erase_contact(tenant.pk, contact.pk)
    assert len(audit_actions(tenant, Action.CONTACT_ERASED)) == 1


def test_export_and_erasure_through_the_api(
    client: Client,
    tenant: Tenant,
    account: InstagramAccount,
    run_queued: Callable[[], list[str]],
    django_capture_on_commit_callbacks: Any,
) -> None:
    _converse(client)
    contact = _contact(tenant)
    api = _api(tenant, [ApiScope.COMPLIANCE_MANAGE])
    exported = api.get(f"/api/v1/contacts/{contact.pk}/export")
    assert exported.status_code == 200
    assert exported.json()["messages"][0]["text"] == TEXT
    with django_capture_on_commit_callbacks(execute=True):
        erased = api.post(f"/api/v1/contacts/{contact.pk}/erase")
    assert erased.status_code == 202
    run_queued()
    assert rows_containing(TEXT, PHOTO, COMMENT, CUSTOMER) == []
    assert len(audit_actions(tenant, Action.CONTACT_ERASED)) == 1
    (request,) = audit_actions(tenant, Action.CONTACT_ERASURE_REQUESTED)
    assert request.actor_api_key_id is not None


def test_the_api_needs_the_compliance_scope(tenant: Tenant, account: InstagramAccount) -> None:
    contact = ContactFactory(account=account)
    api = _api(tenant, [ApiScope.CONVERSATIONS_READ])
    assert api.get(f"/api/v1/contacts/{contact.pk}/export").status_code == 403
    assert api.post(f"/api/v1/contacts/{contact.pk}/erase").status_code == 403


def test_agents_cannot_export_or_erase(
    tenant: Tenant, account: InstagramAccount, agent_client: Client
) -> None:
    contact = ContactFactory(account=account)
    assert agent_client.get(f"/compliance/contacts/{contact.pk}/export/").status_code == 403
    assert agent_client.post(f"/compliance/contacts/{contact.pk}/erase/").status_code == 403


def test_another_workspaces_contact_is_not_found_anywhere(
    tenant: Tenant,
    other_tenant: Tenant,
    admin_client: Client,
    queued: list[Any],
) -> None:
    theirs = MessageFactory(
        conversation__contact__account=InstagramAccountFactory(tenant=other_tenant),
        text="their private words",
    )
    contact_id = theirs.conversation.contact_id
    api = _api(tenant, list(ApiScope.values))
    for response in (
        admin_client.get(f"/compliance/contacts/{contact_id}/export/"),
        admin_client.get(f"/compliance/contacts/{contact_id}/erase/"),
        admin_client.post(f"/compliance/contacts/{contact_id}/erase/"),
        api.get(f"/api/v1/contacts/{contact_id}/export"),
        api.post(f"/api/v1/contacts/{contact_id}/erase"),
    ):
        assert response.status_code == 404
        assert b"their private words" not in response.content
    assert queued == []
    # A task handed another workspace's id does nothing either.
    from accounts import tasks

    tasks.erase_contact(tenant.pk, contact_id)
    assert rows_containing("their private words") != []
    assert audit_actions(other_tenant) == []
