"""Automation in Chromium against the Meta sandbox: an admin sets ice breakers and Instagram's
messenger_profile holds them; an admin creates a keyword rule; an agent takes a conversation
over from automation and hands it back."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from allauth.account.models import EmailAddress
from django_scopes import scope
from playwright.sync_api import Page, expect

from automation.models import AccountAutomation, Rule
from integrations.meta.sandbox.testing import RunningSandbox, running_sandbox
from messaging.models import Conversation
from tests.accounts.onboarding_support import ACME, point_settings_at
from tests.inbox.seed import World, seed_world

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery staple"
SHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots" / "automation"
ACME_PAGE_TOKEN = "EAAGsbxPage200000000000001"


@pytest.fixture
def meta(settings: Any, live_server: Any) -> Iterator[RunningSandbox]:
    with running_sandbox(relaxed_rate_limits=True) as sandbox:
        point_settings_at(settings, sandbox, site=live_server.url)
        yield sandbox


@pytest.fixture
def eager_worker() -> Iterator[None]:
    """Tasks run where they are queued, as a worker would run them at once."""
    from config.celery_app import app as celery_app

    celery_app.conf.task_always_eager = True
    try:
        yield
    finally:
        celery_app.conf.task_always_eager = False


@pytest.fixture
def world(db: Any) -> World:
    world = seed_world(acme_ig_user_id=ACME, acme_token=ACME_PAGE_TOKEN)
    for membership in (world.owner, world.agent):
        user = membership.user
        EmailAddress.objects.create(user=user, email=user.email, primary=True, verified=True)
    return world


def log_in(page: Page, email: str) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_test_id("current-workspace")).to_be_attached()


def profile_at_meta(meta: RunningSandbox) -> dict[str, Any]:
    with meta.sandbox.lock:
        return dict(meta.sandbox.world.accounts[ACME].messenger_profile)


@pytest.mark.usefixtures("eager_worker")
def test_ice_breakers_set_in_the_ui_reach_instagrams_messenger_profile(
    meta: RunningSandbox, world: World, new_page: Callable[[], Page]
) -> None:
    page = new_page()
    log_in(page, world.owner.user.email)
    page.get_by_role("link", name="Automation", exact=True).click()
    page.get_by_test_id("automation-account").filter(has_text="acme.store").click()
    page.get_by_test_id("tab-profile").click()
    expect(page.get_by_test_id("sync-status")).to_have_attribute("data-status", "none")

    questions = page.get_by_test_id("ice-question")
    payloads = page.get_by_test_id("ice-payload")
    questions.nth(0).fill("Where is my order?")
    payloads.nth(0).fill("ORDER_STATUS")
    questions.nth(1).fill("Do you ship abroad?")
    payloads.nth(1).fill("SHIPPING")
    page.get_by_test_id("profile-save").click()

    expect(page.get_by_test_id("sync-status")).to_have_attribute("data-status", "synced")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "ice-breakers.png"), full_page=True, animations="disabled")
    assert profile_at_meta(meta)["ice_breakers"] == [
        {
            "locale": "default",
            "call_to_actions": [
                {"question": "Where is my order?", "payload": "ORDER_STATUS"},
                {"question": "Do you ship abroad?", "payload": "SHIPPING"},
            ],
        }
    ]
    with scope(tenant=world.tenant):
        row = AccountAutomation.objects.get(account=world.acme)
    assert row.profile_synced_at is not None
    assert row.profile_sync_error == ""

    # Emptied in the UI: deleted at Meta.
    questions.nth(0).fill("")
    payloads.nth(0).fill("")
    questions.nth(1).fill("")
    payloads.nth(1).fill("")
    page.get_by_test_id("profile-save").click()
    expect(page.get_by_test_id("sync-status")).to_have_attribute("data-status", "synced")
    assert "ice_breakers" not in profile_at_meta(meta)


def test_an_admin_creates_a_keyword_rule(world: World, new_page: Callable[[], Page]) -> None:
    page = new_page()
    log_in(page, world.owner.user.email)
    page.goto(f"/automation/accounts/{world.acme.pk}/")
    page.get_by_test_id("new-rule").click()
    page.get_by_test_id("rule-name").fill("Price question")
    page.get_by_test_id("rule-keywords").fill("price, how much")
    # The message field appears once an action that sends text is chosen.
    text = page.get_by_test_id("action-text").first
    expect(text).to_be_hidden()
    page.get_by_test_id("action-type").first.select_option("reply_text")
    expect(text).to_be_visible()
    text.fill("Our prices are on the site: shop.example.com")
    page.get_by_test_id("rule-save").click()

    row = page.get_by_test_id("rule-row").filter(has_text="Price question")
    expect(row).to_be_visible()
    expect(row.get_by_test_id("rule-trigger")).to_have_text(
        "A message contains “price”, “how much”"
    )
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "rules.png"), full_page=True, animations="disabled")
    with scope(tenant=world.tenant):
        rule = Rule.objects.get(account=world.acme)
    assert rule.keywords == ["price", "how much"]
    assert rule.actions == [
        {"type": "reply_text", "text": "Our prices are on the site: shop.example.com"}
    ]

    # Turned off from the list.
    row.get_by_test_id("rule-toggle").click()
    expect(
        page.get_by_test_id("rule-row")
        .filter(has_text="Price question")
        .get_by_test_id("rule-toggle")
    ).to_have_attribute("aria-checked", "false")


def test_the_thread_header_shows_the_mode_and_take_over_flips_it(
    world: World, new_page: Callable[[], Page]
) -> None:
    page = new_page()
    log_in(page, world.agent.user.email)
    conversation = world.open_
    page.goto(f"/inbox/{conversation.pk}/")
    mode = page.get_by_test_id("conversation-mode")
    expect(mode).to_have_text("Automation")
    page.get_by_test_id("mode-toggle").click()
    expect(mode).to_have_text("Human")
    expect(page.get_by_test_id("mode-toggle")).to_have_text("Hand back to automation")
    with scope(tenant=world.tenant):
        assert Conversation.objects.get(pk=conversation.pk).mode == "human"
    page.get_by_test_id("mode-toggle").click()
    expect(mode).to_have_text("Automation")
    with scope(tenant=world.tenant):
        assert Conversation.objects.get(pk=conversation.pk).mode == "automation"
