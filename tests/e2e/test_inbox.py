"""The agents' inbox in Chromium: reading every kind, team work, saved replies, search, live
updates, the reply window in the composer, comments, keyboard use and phone width.

Screenshots go to ``var/screenshots/inbox/``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from allauth.account.models import EmailAddress
from django_scopes import scope
from playwright.sync_api import Page, expect

from messaging.models import Conversation, ConversationLabel, Note
from tests.inbox.seed import World, seed_world

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery staple"  # the factories' password
SHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots" / "inbox"


@pytest.fixture
def shot() -> Callable[..., Path]:
    SHOTS.mkdir(parents=True, exist_ok=True)

    def take(page: Page, name: str, *, full_page: bool = False) -> Path:
        path = SHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page, animations="disabled")
        return path

    return take


@pytest.fixture
def world(db: Any) -> World:
    world = seed_world()
    for membership in (world.owner, world.agent, world.viewer):
        EmailAddress.objects.create(
            user=membership.user, email=membership.user.email, primary=True, verified=True
        )
    return world


def log_in(page: Page, email: str) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_test_id("current-workspace")).to_be_attached()


def test_reading_every_kind_and_the_inbox_layout(
    world: World, new_page: Callable[[], Page], shot: Callable[..., Path]
) -> None:
    page = new_page()
    log_in(page, world.agent.user.email)
    page.get_by_role("link", name="Inbox", exact=True).click()
    rows = page.get_by_test_id("conversation-row")
    expect(rows.first).to_be_visible()
    expect(page.get_by_test_id("count-all")).to_have_text(str(len(world.conversations)))
    # The page title carries the number of unread messages.
    expect(page).to_have_title(re.compile(r"^\(\d+\) Inbox"))
    shot(page, "inbox")

    # Pick an account: only its conversations remain, its health shows as a dot.
    page.get_by_test_id("account-link").filter(has_text="@bella.boutique").click()
    expect(page.get_by_text("Dmitri Søren")).to_be_visible()
    expect(page.get_by_text("Alice Martin")).to_have_count(0)
    page.get_by_role("link", name="All accounts").click()

    rows.filter(has_text="Alice Martin").click()
    thread = page.get_by_test_id("thread")
    expect(page.get_by_test_id("contact-name")).to_have_text("Alice Martin")
    for kind in (
        "image",
        "video",
        "audio",
        "file",
        "story_mention",
        "post_share",
        "reel_share",
        "unsupported",
        "story_reply",
    ):
        expect(thread.locator(f"[data-kind='{kind}']").first).to_be_attached()
    expect(thread.get_by_test_id("unsent")).to_have_text("This message was unsent")
    expect(thread.get_by_test_id("story-expired")).to_contain_text("Story no longer available")
    expect(thread.get_by_test_id("quote")).to_contain_text("Do you ship to Lisbon?")
    expect(thread.get_by_test_id("reactions")).to_contain_text("😍")
    expect(thread.get_by_test_id("edited")).to_be_visible()
    labels = thread.get_by_test_id("sender-label")
    expect(labels.filter(has_text="Sent from the Instagram app")).to_have_count(1)
    expect(labels.filter(has_text="Automation · Order bot")).to_have_count(1)
    expect(labels.filter(has_text="Partner · HubSpot")).to_have_count(1)
    expect(thread.get_by_test_id("delivery-failed")).to_contain_text(
        "This person isn't available right now."
    )
    expect(thread.locator("[data-delivery='seen']").first).to_be_visible()
    expect(thread.locator("[data-delivery='queued']")).to_have_count(1)
    expect(page.get_by_test_id("window-title")).to_have_text(re.compile(r"Window closes in 23 h"))
    expect(page.get_by_test_id("followers")).to_have_text("18K")
    shot(page, "thread-every-kind")
    page.set_viewport_size({"width": 1360, "height": 2600})
    shot(page, "thread-every-kind-full")

    # Keyboard only: j/k move between conversations, ? opens the help, r focuses the reply.
    page.set_viewport_size({"width": 1360, "height": 900})
    page.locator("body").press("j")
    expect(page).not_to_have_url(re.compile(rf"/inbox/{world.every_kind.pk}/"))
    page.locator("body").press("k")
    expect(page.get_by_test_id("contact-name")).to_have_text("Alice Martin")
    page.locator("body").press("?")
    expect(page.get_by_test_id("shortcut-help")).to_be_visible()
    shot(page, "shortcuts-help")
    page.keyboard.press("Escape")
    expect(page.get_by_test_id("shortcut-help")).to_be_hidden()
    page.locator("body").press("r")
    expect(page.get_by_test_id("composer-text")).to_be_focused()


def test_team_work_saved_replies_search_and_the_window_in_the_composer(
    world: World, new_page: Callable[[], Page], shot: Callable[..., Path]
) -> None:
    page = new_page()
    log_in(page, world.agent.user.email)
    page.goto(f"/inbox/{world.every_kind.pk}/")

    # Saved reply by typing "/": the list filters, Enter inserts, the byte counter follows.
    text = page.get_by_test_id("composer-text")
    text.click()
    text.type("/ship")
    expect(page.get_by_test_id("canned-option")).to_have_count(1)
    shot(page, "composer-saved-replies")
    text.press("Enter")
    expect(text).to_have_value(re.compile(r"^We ship worldwide"))
    expect(page.get_by_test_id("byte-count")).to_have_text(re.compile(r"^7\d / 1000$"))
    text.fill("é" * 501)
    expect(page.get_by_test_id("byte-count")).to_have_text("1002 / 1000")
    expect(page.get_by_test_id("send")).to_be_disabled()
    shot(page, "composer-over-limit")
    text.fill("")
    # Emoji from the picker.
    page.get_by_label("Insert emoji").click()
    page.locator("[data-emoji]").first.click()
    expect(text).not_to_have_value("")
    text.fill("")

    # Assign to me, then to a teammate; write a note mentioning them; label; resolve.
    text.press("Escape")  # leaves the reply box: shortcuts work again
    page.keyboard.press("a")
    expect(page.locator("#assign-select")).to_have_value(str(world.agent.pk))
    expect(page.get_by_test_id("assign-me")).to_have_count(0)  # the server's answer is in
    # A note being written survives the panel refresh that another action brings.
    note = page.get_by_role("textbox", name="Internal note")
    note.fill("@olivia can you approve a 10% discount?")
    page.locator("#assign-select").select_option(label="Olivia Park")
    expect(page.get_by_test_id("assign-me")).to_have_count(1)
    expect(page.locator("#assign-select")).to_have_value(str(world.owner.pk))
    expect(note).to_have_value("@olivia can you approve a 10% discount?")
    page.get_by_role("button", name="Add note").click()
    expect(page.get_by_test_id("note").last).to_contain_text("approve a 10% discount")
    expect(note).to_have_value("")
    page.get_by_label("Add a label").fill("Refund")
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.get_by_test_id("label").filter(has_text="Refund")).to_be_visible()
    shot(page, "thread-team-work")
    page.locator("#thread-messages").focus()
    page.keyboard.press("e")
    expect(page.get_by_test_id("status-resolved")).to_be_visible()
    expect(page.get_by_test_id("reopen")).to_be_visible()
    with scope(tenant=world.tenant):
        row = Conversation.objects.get(pk=world.every_kind.pk)
        assert (row.assignee_id, row.status) == (world.owner.user_id, "resolved")
        assert Note.objects.filter(conversation=row, mentions=[world.owner.user_id]).exists()
        assert ConversationLabel.objects.filter(conversation=row, label__name="Refund").exists()
    # Resolved conversations leave the open list (updated live) and show under Resolved.
    expect(page.get_by_test_id("conversation-row").filter(has_text="Alice Martin")).to_have_count(0)
    page.get_by_test_id("filter-resolved").click()
    expect(page.get_by_test_id("conversation-row").filter(has_text="Alice Martin")).to_be_visible()

    # Search over names and message text, without reloading.
    page.get_by_test_id("filter-all").click()
    page.get_by_test_id("search").fill("fitting saturday")
    rows = page.get_by_test_id("conversation-row")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Dmitri Søren")
    shot(page, "inbox-search")

    # The reply window in the composer, in each state.
    page.goto(f"/inbox/{world.open_.pk}/")
    expect(page.get_by_test_id("window-title")).to_have_text(re.compile(r"^Window closes in 23 h"))
    shot(page, "composer-window-open")
    page.goto(f"/inbox/{world.human.pk}/")
    expect(page.get_by_test_id("window-title")).to_have_text("The 24-hour window has closed")
    expect(page.get_by_test_id("send")).to_be_disabled()
    shot(page, "composer-human-agent-off")
    with scope(tenant=world.tenant):
        from messaging.services import outbound

        outbound.messaging_settings_update(tenant_id=world.tenant.pk, human_agent_enabled=True)
    page.reload()
    expect(page.get_by_test_id("window-title")).to_have_text(
        re.compile(r"^Human-agent reply, 4 days \d+ h left$|^Human-agent reply, 4 days left$")
    )
    expect(page.get_by_test_id("send")).to_be_enabled()
    shot(page, "composer-human-agent")
    page.goto(f"/inbox/{world.closed.pk}/")
    expect(page.get_by_test_id("window-title")).to_have_text("Replies are closed")
    expect(page.get_by_test_id("composer-text")).to_be_disabled()
    expect(page.get_by_test_id("send")).to_be_disabled()
    expect(page.get_by_test_id("window-banner")).to_contain_text("more than 7 days ago")
    shot(page, "composer-closed")


def test_phone_width(world: World, new_page: Callable[[], Page], shot: Callable[..., Path]) -> None:
    page = new_page()
    page.set_viewport_size({"width": 375, "height": 812})
    log_in(page, world.agent.user.email)
    page.goto("/inbox/")
    expect(page.get_by_test_id("conversation-row").first).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    shot(page, "phone-inbox")
    page.get_by_test_id("conversation-row").filter(has_text="Alice Martin").click()
    expect(page.get_by_test_id("composer-text")).to_be_visible()
    expect(page.get_by_test_id("conversation-list")).to_be_hidden()
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    shot(page, "phone-thread")
    page.get_by_label("Contact details").first.click()
    expect(page.get_by_test_id("contact-panel")).to_be_in_viewport()
    shot(page, "phone-contact-panel")
    page.keyboard.press("Escape")
    page.get_by_label("Open menu").click()
    expect(page.get_by_test_id("filter-mine")).to_be_visible()
    shot(page, "phone-views")


def test_saved_replies_and_messaging_settings(
    world: World, new_page: Callable[[], Page], shot: Callable[..., Path]
) -> None:
    page = new_page()
    log_in(page, world.owner.user.email)
    page.get_by_role("link", name="Saved replies").click()
    page.get_by_label("Shortcut").fill("hours")
    page.get_by_label("Reply", exact=True).fill("We're open 9:00-18:00, Monday to Saturday.")
    page.get_by_role("button", name="Add saved reply").click()
    expect(page.get_by_test_id("canned-row").filter(has_text="/hours")).to_be_visible()
    shot(page, "settings-saved-replies", full_page=True)
    page.get_by_role("link", name="Messaging").click()
    form = page.get_by_test_id("disclosure-form")
    form.get_by_label("Bot disclosure text", exact=True).fill("Hi! I'm Acme's assistant.")
    form.get_by_label(re.compile("Let people answer up to 7 days")).check()
    form.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_text("Messaging settings saved")).to_be_visible()
    shot(page, "settings-messaging", full_page=True)
    page.goto(f"/inbox/{world.human.pk}/")
    expect(page.get_by_test_id("window-title")).to_have_text(re.compile("^Human-agent reply"))
