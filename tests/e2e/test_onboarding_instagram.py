"""Connecting Instagram accounts in Chromium, through the Meta sandbox's real dialog pages.

The sandbox runs in this process and stands in for facebook.com and instagram.com: the browser
is sent to its Facebook Login and Instagram Login dialogs, clicks them, and comes back to the
live server's callback.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import Client
from django_scopes import scope
from playwright.sync_api import Page, expect

from accounts.models import InstagramAccount, Membership, OnboardingLink, Role, Tenant
from integrations.meta.sandbox.testing import RunningSandbox, running_sandbox
from tests.accounts.onboarding_support import ACME, BELLA, CREATOR, backfills, point_settings_at
from tests.factories import MembershipFactory, TenantFactory, UserFactory

__all__ = ["backfills"]  # a fixture used by the tests below

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def meta(settings: Any, live_server: Any) -> Iterator[RunningSandbox]:
    with running_sandbox(relaxed_rate_limits=True) as sandbox:
        point_settings_at(settings, sandbox, site=live_server.url)
        yield sandbox


@pytest.fixture
def agency(db: Any) -> Membership:
    tenant = TenantFactory.create(name="Northwind Social")
    return MembershipFactory.create(
        tenant=tenant, role=Role.OWNER, user=UserFactory.create(email="owner@northwind.example")
    )


def _signed_in(page: Page, membership: Membership, live_server: Any) -> Page:
    client = Client()
    client.force_login(membership.user)
    session = client.cookies[django_settings.SESSION_COOKIE_NAME].value
    page.context.add_cookies(
        [{"name": django_settings.SESSION_COOKIE_NAME, "value": session, "url": live_server.url}]
    )
    return page


def _accounts(tenant: Tenant) -> dict[str, InstagramAccount]:
    with scope(tenant=tenant):
        return {a.ig_user_id: a for a in InstagramAccount.objects.all()}


def test_an_admin_connects_two_accounts_with_facebook_and_one_with_instagram(
    meta: RunningSandbox,
    agency: Membership,
    live_server: Any,
    new_page: Callable[[], Page],
    screenshot: Callable[[Page, str], Path],
    backfills: list[Any],
) -> None:
    page = _signed_in(new_page(), agency, live_server)
    page.goto("/instagram-accounts/")
    page.get_by_role("link", name="Connect account").first.click()
    screenshot(page, "onboarding-connect")

    # Facebook Login for Business: the sandbox's dialog lists the Pages and permissions.
    page.get_by_role("button", name="Continue with Facebook").click()
    expect(page.get_by_role("heading", name=re.compile("is requesting access"))).to_be_visible()
    expect(page.get_by_text("Acme Store")).to_be_visible()
    screenshot(page, "onboarding-facebook-dialog")
    page.get_by_role("button", name="Continue").click()

    # Back here: every account the login reaches, with what each can do.
    expect(page.get_by_role("heading", name="Pick the accounts to connect")).to_be_visible()
    candidates = page.get_by_test_id("candidate")
    expect(candidates).to_have_count(2)
    expect(page.get_by_text("@acme.store")).to_be_visible()
    expect(page.get_by_text("@bella.boutique")).to_be_visible()
    screenshot(page, "onboarding-pick")
    page.get_by_role("button", name="Connect selected accounts").click()
    expect(page.get_by_role("heading", name="2 accounts connected")).to_be_visible()
    screenshot(page, "onboarding-connected")

    # Instagram Login: one Professional account without a Page.
    page.goto("/instagram-accounts/connect/")
    page.get_by_role("button", name="Continue with Instagram").click()
    expect(page.get_by_role("heading", name=re.compile("to access your Instagram"))).to_be_visible()
    page.get_by_label(re.compile("@chloe.creates")).check()
    page.get_by_role("button", name="Allow").click()
    expect(page.get_by_text("@chloe.creates")).to_be_visible()
    page.get_by_role("button", name="Connect selected accounts").click()
    expect(page.get_by_role("heading", name="1 account connected")).to_be_visible()

    page.get_by_role("link", name="Go to accounts").click()
    expect(page.get_by_test_id("account-row")).to_have_count(3)
    screenshot(page, "onboarding-accounts")
    page.get_by_role("link", name="@chloe.creates").click()
    expect(page.get_by_test_id("health")).to_contain_text("Active")
    expect(page.get_by_test_id("subscription")).to_contain_text("Subscribed")
    screenshot(page, "onboarding-health")

    connected = _accounts(agency.tenant)
    assert set(connected) == {ACME, BELLA, CREATOR}
    assert {a.status for a in connected.values()} == {"active"}
    assert connected[CREATOR].login_kind == "instagram"
    assert len(backfills) == 3


def test_a_client_completes_an_onboarding_link(
    meta: RunningSandbox,
    agency: Membership,
    live_server: Any,
    new_page: Callable[[], Page],
    screenshot: Callable[[Page, str], Path],
    backfills: list[Any],
) -> None:
    admin = _signed_in(new_page(), agency, live_server)
    admin.goto("/instagram-accounts/links/")
    admin.get_by_label("Note (optional)").fill("Acme spring campaign")
    admin.get_by_role("button", name="Create link").click()
    link = admin.get_by_test_id("onboarding-link").input_value()
    expect(admin.get_by_test_id("link-state").first).to_have_text("Not opened yet")

    # The client has no account here: a fresh browser.
    client = new_page()
    client.goto(link)
    expect(client.get_by_text("Northwind Social asks you to connect")).to_be_visible()
    screenshot(client, "onboarding-client-start")
    client.get_by_role("button", name="Continue with Facebook").click()
    client.get_by_role("button", name="Continue").click()
    expect(client.get_by_role("heading", name="Pick the accounts to connect")).to_be_visible()
    client.get_by_role("row", name=re.compile("bella.boutique")).get_by_role("checkbox").uncheck()
    client.get_by_role("button", name="Connect selected accounts").click()
    expect(client.get_by_role("heading", name="Thank you, you're all set")).to_be_visible()
    screenshot(client, "onboarding-client-done")

    # The agency sees the link's state, and the account in its workspace.
    admin.goto("/instagram-accounts/links/")
    row = admin.get_by_test_id("link-row").filter(has_text="Acme spring campaign")
    expect(row.get_by_test_id("link-state")).to_have_text("Completed")
    expect(row).to_contain_text("@acme.store")
    assert set(_accounts(agency.tenant)) == {ACME}

    # The link works once.
    client.goto(link)
    expect(client.get_by_test_id("refusal-reason")).to_contain_text("already used")
    with scope(tenant=agency.tenant):
        assert OnboardingLink.objects.get().completed_at is not None


def test_a_cancelled_login_says_what_happened(
    meta: RunningSandbox,
    agency: Membership,
    live_server: Any,
    new_page: Callable[[], Page],
    screenshot: Callable[[Page, str], Path],
) -> None:
    page = _signed_in(new_page(), agency, live_server)
    page.goto("/instagram-accounts/connect/")
    page.get_by_role("button", name="Continue with Facebook").click()
    page.get_by_role("button", name="Cancel").click()
    expect(page.get_by_role("heading", name="Login not completed")).to_be_visible()
    expect(page.get_by_test_id("refusal-reason")).to_contain_text("Facebook login was cancelled")
    screenshot(page, "onboarding-refused")

    page.goto("/instagram-accounts/connect/")
    page.get_by_role("button", name="Continue with Instagram").click()
    page.get_by_role("button", name="Cancel").click()
    expect(page.get_by_test_id("refusal-reason")).to_contain_text("Instagram login was cancelled")
    assert _accounts(agency.tenant) == {}
