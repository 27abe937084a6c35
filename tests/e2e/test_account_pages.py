"""Menus, account pages and refused links look and work right in the browser."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from allauth.account.models import EmailAddress
from playwright.sync_api import Page, expect

from accounts.models import Role
from tests.factories import MembershipFactory, TenantFactory, UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery staple"  # the factories' password


def test_menus_account_pages_and_refused_invitation(
    new_page: Callable[[], Page], screenshot: Callable[[Page, str], Path]
) -> None:
    user = UserFactory(email="dana@example.com")
    EmailAddress.objects.create(user=user, email=user.email, primary=True, verified=True)
    MembershipFactory(user=user, tenant=TenantFactory(name="Bright Pixel"), role=Role.ADMIN)
    MembershipFactory(user=user, tenant=TenantFactory(name="Northwind Social"), role=Role.VIEWER)

    page = new_page()
    page.goto("/accounts/login/")
    page.get_by_label("Email address").fill("dana@example.com")
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator(".alert--danger")).to_be_visible()
    screenshot(page, "login_error")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_test_id("current-workspace")).to_have_text("Bright Pixel")

    # The switcher lists both workspaces and switches.
    page.get_by_label("Switch workspace").click()
    expect(page.locator(".switcher__menu")).to_be_visible()
    screenshot(page, "switcher_open")
    page.locator(".switcher__menu").get_by_role("button", name="Northwind Social").click()
    expect(page.get_by_test_id("current-workspace")).to_have_text("Northwind Social")
    expect(page.get_by_role("link", name="API keys", exact=True)).to_have_count(0)

    page.get_by_label("Your account").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    screenshot(page, "user_menu_open")

    page.goto("/accounts/email/")
    expect(page.get_by_role("heading", name="Email Addresses")).to_be_visible()
    screenshot(page, "account_email")
    page.goto("/accounts/password/change/")
    screenshot(page, "account_password")

    page.goto("/api-keys/")
    expect(page.get_by_text("do that here")).to_be_visible()
    screenshot(page, "forbidden")

    page.goto("/invitations/no-such-token/")
    expect(page.get_by_test_id("invitation-reason")).to_have_text(
        "This invitation link is not valid."
    )
    screenshot(page, "invitation_invalid")

    page.goto("/")
    page.get_by_label("Your account").click()
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Welcome back")).to_be_visible()
    page.goto("/members/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/members/$"))
