"""Token upkeep against the Meta sandbox: daily checks, refresh, reconnect after a dead token.

Time moves with time-machine, which moves the sandbox's clock too (it reads ``time.time``).
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_scopes import scope

from accounts import onboarding, tasks
from accounts.models import InstagramAccount, Membership, Tenant
from integrations.meta.client import client_from_settings
from integrations.meta.sandbox.testing import RunningSandbox
from tests.accounts.onboarding_support import (
    ACME,
    CREATOR,
    account,
    backfills,
    connect,
    eager_tasks,
    sandbox,
)

__all__ = ["backfills", "eager_tasks", "sandbox"]  # fixtures used by the tests below


@pytest.mark.django_db(transaction=True)
def test_a_revoked_token_needs_reauth_after_one_check_keeps_inbound_and_reconnects(
    sandbox: RunningSandbox,
    tenant: Tenant,
    owner: Membership,
    live_server: Any,
    settings: Any,
    backfills: list[Any],
    eager_tasks: None,
) -> None:
    from messaging.models import Contact
    from tests.isolation.factories import ContactFactory
    from webhooks.models import WebhookEvent
    from webhooks.router import account_for_meta_id

    connect(tenant, "facebook", [ACME], user=owner.user)
    acme = account(tenant, ACME)
    ContactFactory.create(account=acme, username="alice_history")
    sandbox.configure_webhooks(
        f"{live_server.url}/webhooks/meta", verify_token=settings.META_WEBHOOK_VERIFY_TOKEN
    )

    # The client changes their password: Meta revokes the Page token (190/460).
    sandbox.control("POST", "tokens/revoke", {"token": acme.access_token, "subcode": 460})
    with time_machine.travel(timezone.now() + timedelta(hours=21), tick=False):
        assert tasks.check_account_tokens() == 1  # the daily check, as beat runs it
    acme.refresh_from_db()
    assert acme.status == InstagramAccount.Status.NEEDS_REAUTH
    assert acme.health_label == "Needs reconnect"
    assert "password" in acme.last_error
    [notice] = [m for m in mail.outbox if "needs to be reconnected" in m.subject]
    assert notice.to == [owner.user.email]

    # Customers keep writing: their messages are still received, stored and routed.
    sandbox.customer("alice", "send", account="acme.store", text="Are you there?")
    assert sandbox.flush()["delivered"] >= 1
    bodies = [json.loads(bytes(e.raw_body)) for e in WebhookEvent.objects.all()]
    assert any(entry["id"] == ACME for body in bodies for entry in body["entry"])
    routed = account_for_meta_id(ACME)
    assert routed is not None
    assert routed.pk == acme.pk

    # The admin reconnects: the same row is active again, with its history.
    connect(tenant, "facebook", [ACME], user=owner.user)
    acme.refresh_from_db()
    assert acme.status == InstagramAccount.Status.ACTIVE
    assert acme.last_error == ""
    assert client_from_settings().debug_token(acme.access_token).is_valid
    with scope(tenant=tenant):
        assert InstagramAccount.objects.filter(ig_user_id=ACME).count() == 1
        assert Contact.objects.filter(account=acme, username="alice_history").exists()


@pytest.mark.django_db
def test_needs_reauth_shows_on_the_accounts_page(
    sandbox: RunningSandbox, tenant: Tenant, owner_client: Client
) -> None:
    connect(tenant, "facebook", [ACME])
    acme = account(tenant, ACME)
    sandbox.control("POST", "tokens/revoke", {"token": acme.access_token, "subcode": 458})
    with scope(tenant=tenant):
        onboarding.instagram_account_verify(account=acme)
    page = owner_client.get(reverse("frontend:instagram_accounts")).content.decode()
    assert 'data-testid="reauth-alert"' in page
    assert "Needs reconnect" in page


@pytest.mark.django_db
def test_an_expiring_instagram_token_is_refreshed_by_the_scheduled_task(
    sandbox: RunningSandbox, tenant: Tenant, eager_tasks: None
) -> None:
    """D10: a token is refreshed well before it expires (15 days left here; the refresh
    threshold is at least 10 days, checked daily)."""
    connect(tenant, "instagram", [CREATOR], account=CREATOR)
    creator = account(tenant, CREATOR)
    old_token, old_expiry = creator.access_token, creator.token_expires_at
    assert old_expiry is not None

    # Days later, far from expiry: nothing to do.
    with time_machine.travel(timezone.now() + timedelta(days=10), tick=False):
        assert tasks.refresh_instagram_tokens() == 0

    # 45 days in, 15 left: the beat task refreshes it for another 60 days.
    later = timezone.now() + timedelta(days=45)
    with time_machine.travel(later, tick=False):
        assert tasks.refresh_instagram_tokens() == 1
        creator.refresh_from_db()
        assert creator.access_token != old_token
        assert creator.token_expires_at is not None
        assert creator.token_expires_at > later + timedelta(days=59)
        assert creator.status == InstagramAccount.Status.ACTIVE
        with client_from_settings() as client:
            assert client.instagram_me(creator.access_token).user_id == CREATOR


@pytest.mark.django_db
def test_an_expired_instagram_token_needs_reauth(
    sandbox: RunningSandbox, tenant: Tenant, eager_tasks: None
) -> None:
    """D10: a token that could not be refreshed marks the account "reauth needed"."""
    connect(tenant, "instagram", [CREATOR], account=CREATOR)
    with time_machine.travel(timezone.now() + timedelta(days=61), tick=False):
        tasks.refresh_instagram_tokens()
    assert account(tenant, CREATOR).status == InstagramAccount.Status.NEEDS_REAUTH


@pytest.mark.django_db
def test_the_beat_schedule_runs_refresh_and_check(settings: Any) -> None:
    """D10: refresh and check run daily; the refresh starts 10 days or more before expiry."""
    schedule = {entry["task"]: entry for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert schedule["accounts.refresh_instagram_tokens"]["schedule"] <= timedelta(days=1)
    assert schedule["accounts.check_account_tokens"]["schedule"] <= timedelta(days=1)
    assert timedelta(days=10) <= onboarding.REFRESH_WHEN_LEFT
