"""Connecting Instagram accounts through both Meta logins, against the Meta sandbox."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse
from django_scopes import scope

from accounts import onboarding, selectors
from accounts.models import InstagramAccount, Membership, MessagingStatus, Tenant
from integrations.meta.sandbox.testing import RunningSandbox
from tests.accounts.onboarding_support import (
    ACME,
    BELLA,
    CREATOR,
    FB_USER_ID,
    FRESH,
    META_APP_SECRET,
    QUIET,
    account,
    attempt_for,
    backfills,
    connect,
    eager_tasks,
    sandbox,
    signed_request,
)

__all__ = ["backfills", "eager_tasks", "sandbox"]  # fixtures used by the tests below

pytestmark = pytest.mark.django_db


def test_facebook_login_lists_every_reachable_account_with_what_it_can_do(
    sandbox: RunningSandbox, tenant: Tenant
) -> None:
    attempt = attempt_for(tenant, "facebook")
    by_id = {c["ig_user_id"]: c for c in attempt.candidates}
    assert set(by_id) == {ACME, BELLA}
    assert by_id[ACME]["username"] == "acme.store"
    assert by_id[ACME]["page_id"] == "200000000000001"
    assert by_id[ACME]["can_message"] is True
    assert by_id[ACME]["missing"] == []
    assert "instagram_manage_messages" in by_id[ACME]["granted"]
    assert by_id[ACME]["availability"] == "available"
    # The Page tokens are kept encrypted, never in the list shown to the person.
    assert "EAAG" not in str(attempt.candidates)
    with connection.cursor() as cursor:
        cursor.execute("SELECT secrets FROM accounts_onboardingattempt WHERE id = %s", [attempt.pk])
        assert "EAAG" not in cursor.fetchone()[0]


def test_connecting_stores_tokens_encrypted_subscribes_checks_and_queues_a_backfill(
    sandbox: RunningSandbox,
    tenant: Tenant,
    owner: Membership,
    backfills: list[Any],
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        outcome = connect(tenant, "facebook", [ACME, BELLA], user=owner.user)
    assert outcome.refused == []
    assert sorted(a.username for a in outcome.connected) == ["acme.store", "bella.boutique"]
    acme = account(tenant, ACME)
    assert acme.status == InstagramAccount.Status.ACTIVE
    assert acme.login_kind == "facebook"
    assert acme.page_id == "200000000000001"
    assert acme.meta_user_id == FB_USER_ID
    assert acme.access_token.startswith("EAAG")
    assert acme.token_expires_at is None  # a Page token from a long-lived login does not expire
    assert acme.missing_permissions == []
    assert acme.webhook_subscribed is True
    assert "messages" in acme.subscribed_fields
    assert acme.messaging_status == MessagingStatus.AVAILABLE
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT access_token FROM accounts_instagramaccount WHERE id = %s", [acme.pk]
        )
        assert "EAAG" not in cursor.fetchone()[0]
    # Meta sees the app installed on the Page.
    with sandbox.sandbox.lock:
        page = sandbox.sandbox.world.pages["200000000000001"]
        assert page.subscribed_fields.get("880000000000001")
    assert sorted(backfills) == sorted(
        [
            ("messaging.backfill_account", [tenant.pk, acme.pk]),
            ("messaging.backfill_account", [tenant.pk, account(tenant, BELLA).pk]),
        ]
    )


def test_instagram_login_connects_a_creator_and_calls_the_conversations_api(
    sandbox: RunningSandbox, tenant: Tenant, backfills: list[Any]
) -> None:
    outcome = connect(tenant, "instagram", [CREATOR], account=CREATOR)
    assert [a.username for a in outcome.connected] == ["chloe.creates"]
    creator = account(tenant, CREATOR)
    assert creator.login_kind == "instagram"
    assert creator.is_creator
    assert creator.token_expires_at is not None
    assert creator.messaging_status == MessagingStatus.AVAILABLE
    assert creator.messaging_checked_at is not None
    assert creator.webhook_subscribed is True
    assert creator.granted_permissions == sorted(onboarding.REQUIRED_PERMISSIONS["instagram"])


def test_an_account_not_eligible_yet_says_messaging_is_not_available_yet(
    sandbox: RunningSandbox, tenant: Tenant, owner_client: Client, backfills: list[Any]
) -> None:
    connect(tenant, "instagram", [FRESH], account=FRESH)
    fresh = account(tenant, FRESH)
    assert fresh.messaging_status == MessagingStatus.NOT_ELIGIBLE
    assert fresh.health == "not_eligible"
    assert backfills == []
    page = owner_client.get(reverse("frontend:onboarding_account", args=[fresh.pk]))
    assert "Messaging not available for this account yet" in page.content.decode()
    listing = owner_client.get(reverse("frontend:instagram_accounts")).content.decode()
    assert "Not eligible" in listing


def test_an_account_with_message_access_off_says_so(
    sandbox: RunningSandbox, tenant: Tenant, owner_client: Client
) -> None:
    connect(tenant, "instagram", [QUIET], account=QUIET)
    quiet = account(tenant, QUIET)
    assert quiet.health == "message_access_off"
    page = owner_client.get(reverse("frontend:onboarding_account", args=[quiet.pk])).content
    assert "Allow access to messages" in page.decode()


def test_a_missing_permission_is_named_on_the_health_page(
    sandbox: RunningSandbox, tenant: Tenant, owner_client: Client
) -> None:
    granted = "instagram_basic,pages_show_list,pages_manage_metadata,instagram_manage_comments"
    connect(tenant, "facebook", [ACME], scopes=granted)
    acme = account(tenant, ACME)
    assert "instagram_manage_messages" in acme.missing_permissions
    assert acme.messaging_status == MessagingStatus.MISSING_PERMISSION
    page = owner_client.get(reverse("frontend:onboarding_account", args=[acme.pk])).content.decode()
    assert "instagram_manage_messages" in page.split('data-testid="missing-permissions"')[1]


def test_a_second_tenant_cannot_take_an_account_and_is_not_told_whose_it_is(
    sandbox: RunningSandbox, tenant: Tenant, other_tenant: Tenant
) -> None:
    connect(tenant, "facebook", [ACME])
    before = account(tenant, ACME)
    attempt = attempt_for(other_tenant, "facebook")
    by_id = {c["ig_user_id"]: c for c in attempt.candidates}
    assert by_id[ACME]["availability"] == "elsewhere"
    with scope(tenant=other_tenant):
        outcome = onboarding.onboarding_connect(
            attempt=attempt, ig_user_ids=[ACME, BELLA], user=None
        )
        assert not InstagramAccount.objects.filter(ig_user_id=ACME).exists()
    assert [a.ig_user_id for a in outcome.connected] == [BELLA]
    [(username, reason)] = outcome.refused
    assert username == "acme.store"
    assert "already connected to another workspace" in reason
    assert tenant.name not in reason
    after = account(tenant, ACME)
    assert (after.status, after.access_token) == (before.status, before.access_token)


def test_reconnecting_in_the_same_tenant_updates_the_same_row(
    sandbox: RunningSandbox, tenant: Tenant
) -> None:
    connect(tenant, "facebook", [ACME])
    first = account(tenant, ACME)
    attempt = attempt_for(tenant, "facebook")
    assert {c["ig_user_id"]: c["availability"] for c in attempt.candidates}[ACME] == (
        "connected_here"
    )
    with scope(tenant=tenant):
        onboarding.onboarding_connect(attempt=attempt, ig_user_ids=[ACME], user=None)
        assert InstagramAccount.objects.filter(ig_user_id=ACME).count() == 1
    assert account(tenant, ACME).pk == first.pk


def test_an_attempt_is_used_once(sandbox: RunningSandbox, tenant: Tenant) -> None:
    attempt = attempt_for(tenant, "facebook")
    with scope(tenant=tenant):
        onboarding.onboarding_connect(attempt=attempt, ig_user_ids=[ACME], user=None)
        attempt.refresh_from_db()
        assert attempt.secrets == ""
        with pytest.raises(onboarding.OnboardingError):
            onboarding.onboarding_connect(attempt=attempt, ig_user_ids=[BELLA], user=None)


def test_disconnect_unsubscribes_deletes_tokens_and_keeps_conversations(
    sandbox: RunningSandbox, tenant: Tenant
) -> None:
    from tests.isolation.factories import ContactFactory

    connect(tenant, "facebook", [ACME])
    acme = account(tenant, ACME)
    ContactFactory.create(account=acme, username="alice")
    with scope(tenant=tenant):
        onboarding.instagram_account_disconnect(account=acme, erase_conversations=False)
    acme.refresh_from_db()
    assert acme.status == InstagramAccount.Status.DISCONNECTED
    assert acme.access_token == ""
    with sandbox.sandbox.lock:
        assert not sandbox.sandbox.world.pages["200000000000001"].subscribed_fields
    from messaging.models import Contact

    with scope(tenant=tenant):
        assert Contact.objects.filter(account=acme).count() == 1


def test_disconnect_can_erase_the_conversations(sandbox: RunningSandbox, tenant: Tenant) -> None:
    from messaging.models import Contact, Conversation, Message
    from tests.isolation.factories import ContactFactory, ConversationFactory, MessageFactory

    connect(tenant, "facebook", [ACME])
    acme = account(tenant, ACME)
    contact = ContactFactory.create(account=acme)
    MessageFactory.create(conversation=ConversationFactory.create(contact=contact))
    with scope(tenant=tenant):
        onboarding.instagram_account_disconnect(account=acme, erase_conversations=True)
        assert not Contact.objects.filter(account=acme).exists()
        assert not Conversation.objects.filter(account=acme).exists()
        assert not Message.objects.filter(account=acme).exists()


def test_erasing_on_disconnect_also_scrubs_the_raw_meta_deliveries(
    sandbox: RunningSandbox, tenant: Tenant
) -> None:
    from integrations.meta.signatures import meta_json_bytes
    from tests.isolation.factories import ContactFactory, ConversationFactory, MessageFactory
    from webhooks import relay
    from webhooks import services as webhook_services
    from webhooks.models import WebhookEvent

    connect(tenant, "facebook", [ACME])
    acme = account(tenant, ACME)
    contact = ContactFactory.create(account=acme, igsid="6000000000999001")
    conversation = ConversationFactory.create(contact=contact)
    MessageFactory.create(conversation=conversation, mid="aWdfERASEME1", text="my address is 1 Elm")
    body = meta_json_bytes(
        {
            "object": "instagram",
            "entry": [
                {
                    "id": ACME,
                    "time": 1764072000000,
                    "messaging": [
                        {
                            "sender": {"id": "6000000000999001"},
                            "recipient": {"id": ACME},
                            "timestamp": 1764072000000,
                            "message": {"mid": "aWdfERASEME1", "text": "my address is 1 Elm"},
                        }
                    ],
                }
            ],
        }
    )
    webhook_services.webhook_event_store(raw_body=body, signed_with="meta")
    relay.drain()  # processed deliveries are the ones kept raw for replay detection
    assert WebhookEvent.objects.get().status == WebhookEvent.Status.PROCESSED
    with scope(tenant=tenant):
        onboarding.instagram_account_disconnect(account=acme, erase_conversations=True)
    assert not any(b"1 Elm" in bytes(e.raw_body) for e in WebhookEvent.objects.all())


def test_a_disconnected_account_can_be_connected_by_another_tenant(
    sandbox: RunningSandbox, tenant: Tenant, other_tenant: Tenant
) -> None:
    connect(tenant, "facebook", [ACME])
    with scope(tenant=tenant):
        onboarding.instagram_account_disconnect(account=account(tenant, ACME))
    outcome = connect(other_tenant, "facebook", [ACME])
    assert [a.ig_user_id for a in outcome.connected] == [ACME]
    assert account(tenant, ACME).status == InstagramAccount.Status.DISCONNECTED


def test_deauthorize_callback_disconnects_the_accounts_of_that_person(
    sandbox: RunningSandbox, tenant: Tenant, client: Client
) -> None:
    connect(tenant, "facebook", [ACME, BELLA])
    connect(tenant, "instagram", [CREATOR], account=CREATOR)
    body = {"signed_request": signed_request({"user_id": FB_USER_ID}, META_APP_SECRET)}
    response = client.post(reverse("webhooks:meta_deauthorize"), body)
    assert response.status_code == 200
    for ig_id in (ACME, BELLA):
        gone = account(tenant, ig_id)
        assert (gone.status, gone.access_token) == ("disconnected", "")
    assert account(tenant, CREATOR).status == "active"


def test_deauthorize_callback_refuses_a_bad_signature(
    sandbox: RunningSandbox, tenant: Tenant, client: Client
) -> None:
    connect(tenant, "facebook", [ACME])
    body = {"signed_request": signed_request({"user_id": FB_USER_ID}, "not-the-secret")}
    assert client.post(reverse("webhooks:meta_deauthorize"), body).status_code == 400
    assert account(tenant, ACME).status == "active"


def test_agents_limited_to_chosen_accounts_see_only_those(
    sandbox: RunningSandbox, tenant: Tenant, make_member: Any
) -> None:
    connect(tenant, "facebook", [ACME, BELLA])
    agent = make_member(tenant, "agent")
    acme = account(tenant, ACME)
    with scope(tenant=tenant):
        assert set(selectors.visible_account_ids(agent)) == {acme.pk, account(tenant, BELLA).pk}
        onboarding.membership_set_account_access(
            membership=agent, limited=True, account_ids=[acme.pk]
        )
        agent.refresh_from_db()
        assert list(selectors.visible_account_ids(agent)) == [acme.pk]
        assert [a.pk for a in selectors.instagram_account_list(membership=agent)] == [acme.pk]
