"""Contact profiles: fetched by a task after commit, never on the webhook path; errors harmless."""

from __future__ import annotations

from datetime import timedelta
from unittest import mock

import pytest
import responses
from django.test import Client
from django.utils import timezone
from django_scopes import scope

from accounts.models import InstagramAccount, Tenant
from messaging import tasks
from messaging.models import Contact
from tests.factories import InstagramAccountFactory
from tests.messaging.inbound_support import (
    BUSINESS,
    CUSTOMER,
    deliver,
    envelope,
    post,
    text_message,
)

pytestmark = pytest.mark.django_db

PROFILE_URL = f"https://graph.facebook.com/v25.0/{CUSTOMER}"
IG_PROFILE_URL = f"https://graph.instagram.com/v25.0/{CUSTOMER}"


@pytest.fixture
def account(tenant: Tenant) -> InstagramAccount:
    return InstagramAccountFactory(
        tenant=tenant, ig_user_id=BUSINESS, page_id="1234567890", access_token="EAAG-page-token"
    )


def _contact(tenant: Tenant) -> Contact:
    with scope(tenant=tenant):
        return Contact.objects.select_related("account").get()


def test_the_webhook_request_never_fetches_the_profile(
    client: Client, account: InstagramAccount
) -> None:
    with mock.patch("messaging.tasks.contact_fetch_profile.apply_async") as publish:
        assert post(client, envelope({BUSINESS: [text_message("aWdfP1", "hi")]})).status_code == 200
    publish.assert_not_called()


def test_a_new_contact_queues_one_profile_fetch_after_commit(
    client: Client,
    tenant: Tenant,
    account: InstagramAccount,
    django_capture_on_commit_callbacks: object,
) -> None:
    with (
        mock.patch("messaging.tasks.contact_fetch_profile.apply_async") as publish,
        django_capture_on_commit_callbacks(execute=True),  # type: ignore[operator]
    ):
        deliver(client, envelope({BUSINESS: [text_message("aWdfP1", "hi")]}))
        deliver(client, envelope({BUSINESS: [text_message("aWdfP2", "again")]}))
    contact = _contact(tenant)
    publish.assert_called_once_with(args=(tenant.pk, contact.pk), retry=False)


@responses.activate
def test_profile_fetch_stores_name_username_picture_and_follows(
    tenant: Tenant, client: Client, account: InstagramAccount
) -> None:
    deliver(client, envelope({BUSINESS: [text_message("aWdfP1", "hi")]}))
    responses.get(
        PROFILE_URL,
        json={
            "id": CUSTOMER,
            "name": "Alice\u0000 Doe",
            "username": "alice",
            "profile_pic": "https://scontent.example/alice.jpg",
            "follower_count": 120,
            "is_user_follow_business": True,
            "is_business_follow_user": False,
            "is_verified_user": False,
        },
    )
    tasks.contact_fetch_profile(tenant.pk, _contact(tenant).pk)
    contact = _contact(tenant)
    assert (contact.name, contact.username) == ("Alice Doe", "alice")
    assert contact.profile_pic_url == "https://scontent.example/alice.jpg"
    assert (contact.follower_count, contact.follows_business, contact.business_follows) == (
        120,
        True,
        False,
    )
    assert contact.profile_fetched_at is not None
    assert "access_token=EAAG-page-token" in (responses.calls[0].request.url or "")


@responses.activate
def test_instagram_login_accounts_use_the_instagram_host(tenant: Tenant, client: Client) -> None:
    InstagramAccountFactory(
        tenant=tenant,
        ig_user_id=BUSINESS,
        login_kind=InstagramAccount.LoginKind.INSTAGRAM,
        access_token="IGAA-token",
    )
    deliver(client, envelope({BUSINESS: [text_message("aWdfP1", "hi")]}))
    responses.get(IG_PROFILE_URL, json={"id": CUSTOMER, "username": "alice"})
    tasks.contact_fetch_profile(tenant.pk, _contact(tenant).pk)
    assert _contact(tenant).username == "alice"


@responses.activate
@pytest.mark.parametrize(
    "error",
    [
        {"message": "User consent is required to access user profile", "type": "OAuthException",
         "code": 230},
        {"message": "Error validating access token", "type": "OAuthException", "code": 190},
    ],
)  # fmt: skip
def test_meta_refusals_leave_the_contact_as_it_was(
    error: dict[str, object], tenant: Tenant, client: Client, account: InstagramAccount
) -> None:
    deliver(client, envelope({BUSINESS: [text_message("aWdfP1", "hi")]}))
    responses.get(PROFILE_URL, json={"error": error}, status=400)
    tasks.contact_fetch_profile(tenant.pk, _contact(tenant).pk)
    contact = _contact(tenant)
    assert contact.username == ""
    assert contact.display_name == f"Customer {CUSTOMER}"
    # Marked as tried, so it is retried on a message after a day, not on every message.
    assert contact.profile_fetched_at is not None


def test_a_stale_profile_is_refreshed_on_a_later_message(
    client: Client,
    tenant: Tenant,
    account: InstagramAccount,
    django_capture_on_commit_callbacks: object,
) -> None:
    deliver(client, envelope({BUSINESS: [text_message("aWdfP1", "hi")]}))
    with scope(tenant=tenant):
        Contact.objects.update(profile_fetched_at=timezone.now() - timedelta(hours=1))
    with (
        mock.patch("messaging.tasks.contact_fetch_profile.apply_async") as publish,
        django_capture_on_commit_callbacks(execute=True),  # type: ignore[operator]
    ):
        deliver(client, envelope({BUSINESS: [text_message("aWdfP2", "fresh")]}))
        publish.assert_not_called()
        with scope(tenant=tenant):
            Contact.objects.update(profile_fetched_at=timezone.now() - timedelta(hours=25))
        deliver(client, envelope({BUSINESS: [text_message("aWdfP3", "stale")]}))
    publish.assert_called_once()


def test_a_broker_outage_costs_the_profile_not_the_message(
    client: Client,
    tenant: Tenant,
    account: InstagramAccount,
    django_capture_on_commit_callbacks: object,
) -> None:
    with (
        mock.patch(
            "messaging.tasks.contact_fetch_profile.apply_async", side_effect=ConnectionError
        ),
        django_capture_on_commit_callbacks(execute=True),  # type: ignore[operator]
    ):
        deliver(client, envelope({BUSINESS: [text_message("aWdfP1", "hi")]}))
    assert _contact(tenant).igsid == CUSTOMER


def test_the_task_ignores_another_tenants_contact(
    tenant: Tenant, other_tenant: Tenant, client: Client, account: InstagramAccount
) -> None:
    deliver(client, envelope({BUSINESS: [text_message("aWdfP1", "hi")]}))
    with mock.patch("messaging.services.inbound.contact_profile_refresh") as refresh:
        tasks.contact_fetch_profile(other_tenant.pk, _contact(tenant).pk)
    refresh.assert_not_called()


@responses.activate
def test_a_dead_token_found_by_the_profile_fetch_asks_for_a_reconnect(
    tenant: Tenant, client: Client, account: InstagramAccount
) -> None:
    deliver(client, envelope({BUSINESS: [text_message("aWdfP190", "hi")]}))
    responses.get(
        PROFILE_URL,
        json={
            "error": {
                "message": "Error validating access token: The session has been invalidated.",
                "type": "OAuthException",
                "code": 190,
                "error_subcode": 460,
            }
        },
        status=400,
    )
    tasks.contact_fetch_profile(tenant.pk, _contact(tenant).pk)
    with scope(tenant=tenant):
        account.refresh_from_db()
    assert account.status == InstagramAccount.Status.NEEDS_REAUTH
