"""A person signs up, verifies, logs in, creates an API key, invites a colleague who joins."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from django.core import mail
from playwright.sync_api import Page, expect

from accounts import tenancy
from accounts.models import Role, Tenant, User

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PASSWORD = "a long passphrase for tests"


def _confirmation_link(email: str) -> str:
    for message in reversed(mail.outbox):
        if email in message.to:
            match = re.search(r"https?://\S+/accounts/confirm-email/\S+/", message.body)
            if match:
                return match.group(0)
    raise AssertionError(f"no confirmation email for {email}")


def _sign_up(page: Page, email: str, workspace: str | None = None) -> None:
    page.get_by_label("Work email").fill(email)
    if workspace is not None:
        page.get_by_label("Agency or workspace name").fill(workspace)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Confirm password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()


def _verify_and_log_in(page: Page, email: str) -> None:
    page.goto(_confirmation_link(email))
    page.get_by_role("button", name="Confirm email address").click()
    expect(page.get_by_role("heading", name="Welcome back")).to_be_visible()
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()


def test_signup_to_team_in_the_browser(
    new_page: Callable[[], Page], screenshot: Callable[[Page, str], Path]
) -> None:
    # A founder signs up with their agency's name.
    founder = new_page()
    founder.goto("/")
    expect(founder).to_have_url(re.compile(r"/accounts/login/"))
    screenshot(founder, "login")
    founder.get_by_role("link", name="Create an account").click()
    screenshot(founder, "signup")
    _sign_up(founder, "founder@example.com", workspace="Northwind Social")

    # They follow the link from the email, in a fresh browser (as from a mail app), and log in.
    founder = new_page()
    _verify_and_log_in(founder, "founder@example.com")
    expect(founder.get_by_test_id("current-workspace")).to_have_text("Northwind Social")
    expect(founder.get_by_text("No Instagram accounts connected yet")).to_be_visible()
    screenshot(founder, "home")

    # An API key for the CRM: shown once.
    founder.get_by_role("link", name="API keys", exact=True).click()
    expect(founder.get_by_text("No API keys yet")).to_be_visible()
    founder.get_by_role("link", name="New API key").first.click()
    founder.get_by_label("Name").fill("HubSpot sync")
    founder.get_by_label("tenant:read").check()
    founder.get_by_label("conversations:read").check()
    founder.get_by_label("messages:send").check()
    screenshot(founder, "api_key_new")
    founder.get_by_role("button", name="Create key").click()
    expect(founder.get_by_text("Copy this key now. It will not be shown again.")).to_be_visible()
    secret = founder.get_by_test_id("api-key-secret").input_value()
    assert secret.startswith("igk_")
    screenshot(founder, "api_key_created")
    founder.get_by_role("link", name="I have copied it — done").click()
    expect(founder.get_by_test_id("api-keys-table")).to_contain_text("HubSpot sync")
    assert secret not in founder.content()
    screenshot(founder, "api_keys")

    # An invitation for a colleague, as an agent.
    founder.get_by_role("link", name="Members", exact=True).click()
    founder.get_by_label("Email address").fill("colleague@example.com")
    founder.get_by_label("Role", exact=True).select_option(Role.AGENT)
    founder.get_by_role("button", name="Create invitation").click()
    link = founder.get_by_test_id("invite-link").input_value()
    assert "/invitations/" in link
    screenshot(founder, "members_invited")

    # The colleague opens the link in their own browser, signs up, verifies, logs in, accepts.
    colleague = new_page()
    colleague.goto(link)
    expect(colleague.get_by_role("heading", name="Join Northwind Social")).to_be_visible()
    screenshot(colleague, "invitation")
    colleague.get_by_role("link", name="Create an account").click()
    expect(colleague.get_by_label("Agency or workspace name")).to_have_count(0)
    _sign_up(colleague, "colleague@example.com")
    _verify_and_log_in(colleague, "colleague@example.com")
    expect(colleague.get_by_test_id("invitation-workspace")).to_have_text("Northwind Social")
    expect(colleague.get_by_test_id("invitation-role")).to_have_text("Agent")
    colleague.get_by_role("button", name="Accept and open workspace").click()
    expect(colleague.get_by_text("Welcome to Northwind Social")).to_be_visible()
    expect(colleague.get_by_test_id("current-workspace")).to_have_text("Northwind Social")
    expect(colleague.get_by_role("link", name="API keys", exact=True)).to_have_count(0)

    tenant = Tenant.objects.get(name="Northwind Social")
    person = User.objects.get(email="colleague@example.com")
    membership = tenancy.membership_of_user_in(person, tenant.pk)
    assert membership is not None
    assert membership.role == Role.AGENT

    # The founder sees the colleague on the members page.
    founder.get_by_role("link", name="Members", exact=True).click()
    expect(founder.get_by_test_id("members-table")).to_contain_text("colleague@example.com")
    screenshot(founder, "members")
    colleague.get_by_role("link", name="Members", exact=True).click()
    expect(colleague.get_by_text("Invite someone")).to_have_count(0)
    screenshot(colleague, "members_agent_view")

    # Changing a role saves in place (htmx), with the CSRF token sent along.
    row = founder.locator("tr", has_text="colleague@example.com")
    row.get_by_label("Role of colleague@example.com").select_option(Role.VIEWER)
    expect(founder.locator("tr", has_text="colleague@example.com")).to_contain_text("Saved")
    assert tenancy.membership_of_user_in(person, tenant.pk).role == Role.VIEWER  # type: ignore[union-attr]

    # The last owner cannot step down: the reason shows in the row.
    mine = founder.locator("tr", has_text="founder@example.com")
    mine.get_by_label("Role of founder@example.com").select_option(Role.ADMIN)
    expect(founder.locator("tr", has_text="founder@example.com")).to_contain_text(
        "A workspace needs at least one owner."
    )
    screenshot(founder, "members_error")

    # Revoking the key, after confirming, stops it.
    founder.get_by_role("link", name="API keys", exact=True).click()
    founder.get_by_role("link", name="Revoke").click()
    screenshot(founder, "api_key_revoke")
    founder.get_by_role("button", name="Revoke key").click()
    expect(founder.get_by_text("was revoked")).to_be_visible()
    expect(founder.get_by_test_id("api-keys-table")).to_contain_text("Revoked")
    screenshot(founder, "api_keys_revoked")

    # Settings, and the phone-sized layout.
    founder.get_by_role("link", name="Settings", exact=True).click()
    screenshot(founder, "settings")
    founder.set_viewport_size({"width": 390, "height": 844})
    founder.goto("/")
    screenshot(founder, "home_mobile")
    founder.get_by_role("button", name="Open menu").click()
    expect(founder.get_by_role("link", name="Members", exact=True)).to_be_visible()
    founder.wait_for_function(
        "getComputedStyle(document.querySelector('.sidebar')).transform === 'none'"
    )
    screenshot(founder, "nav_mobile")
