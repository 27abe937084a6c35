"""The inbox against the Meta sandbox: a customer writes, the message appears live in the open
inbox, the agent replies and the customer receives it, a comment gets its one private reply.

The sandbox runs in this process and posts its signed webhooks to the live server; the test
drains the stored events and runs the outbox the way the relay and the workers do."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from allauth.account.models import EmailAddress
from django_scopes import scope
from playwright.sync_api import Page, expect

from integrations.meta.sandbox.testing import RunningSandbox, running_sandbox
from messaging import outbox
from messaging.models import Comment, Conversation, Message, OutboundJob
from tests.accounts.onboarding_support import ACME, point_settings_at
from tests.inbox.seed import World, seed_world
from webhooks import relay

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery staple"
SHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots" / "inbox"
ACME_PAGE_TOKEN = "EAAGsbxPage200000000000001"
ALICE_AT_ACME = "6000000000100001"


@pytest.fixture
def meta(settings: Any, live_server: Any) -> Iterator[RunningSandbox]:
    with running_sandbox(relaxed_rate_limits=True) as sandbox:
        point_settings_at(settings, sandbox, site=live_server.url)
        sandbox.configure_webhooks(f"{live_server.url}/webhooks/meta")
        yield sandbox


@pytest.fixture
def world(db: Any) -> World:
    world = seed_world(acme_ig_user_id=ACME, acme_token=ACME_PAGE_TOKEN)
    user = world.agent.user
    EmailAddress.objects.create(user=user, email=user.email, primary=True, verified=True)
    return world


def deliver(meta: RunningSandbox) -> None:
    """The sandbox posts its queued webhooks; the relay processes what was stored."""
    meta.flush()
    relay.drain()


def run_outbox(world: World) -> list[str]:
    """Send every waiting outbox row, as the workers do."""
    with scope(tenant=world.tenant):
        ids = list(
            OutboundJob.objects.filter(status__in=OutboundJob.ACTIVE)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        return [outbox.job_run(job_id=pk) for pk in ids]


def wait_for(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_live_message_reply_to_the_customer_and_private_reply(
    meta: RunningSandbox,
    world: World,
    live_server: Any,
    new_page: Callable[[], Page],
) -> None:
    page = new_page()
    page.goto("/accounts/login/")
    page.get_by_label("Email address").fill(world.agent.user.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.goto("/inbox/")
    expect(page.get_by_test_id("conversation-row").first).to_be_visible()
    title_before = page.title()

    # Alice writes to @acme.store in Instagram: within 2 seconds it is in the open inbox.
    meta.customer("alice", "send", account="acme.store", text="Is the linen shirt back in M?")
    deliver(meta)
    row = page.get_by_test_id("conversation-row").filter(has_text="Is the linen shirt back in M?")
    expect(row).to_be_visible(timeout=2500)
    expect(page).not_to_have_title(title_before)
    expect(page).to_have_title(re.compile(r"^\(\d+\) Inbox"))
    row.click()
    thread = page.get_by_test_id("thread")
    expect(thread.get_by_text("Is the linen shirt back in M?")).to_be_visible()

    # A second message shows up in the open thread without a reload.
    meta.customer("alice", "send", account="acme.store", text="Size M please")
    deliver(meta)
    expect(thread.get_by_text("Size M please")).to_be_visible(timeout=2500)

    # The agent replies: queued at once, then sent, and Alice receives it in Instagram.
    page.get_by_test_id("composer-text").fill("Yes! Back in stock since this morning.")
    page.get_by_test_id("send").click()
    mine = thread.locator("[data-testid='message']").filter(
        has_text="Yes! Back in stock since this morning."
    )
    expect(mine).to_have_attribute("data-delivery", "queued")
    expect(page.get_by_test_id("composer-text")).to_have_value("")
    wait_for(lambda: run_outbox(world))
    received = meta.received("alice", account="acme.store")
    assert any(r.get("text") == "Yes! Back in stock since this morning." for r in received)
    expect(mine).to_have_attribute("data-delivery", re.compile("sent|seen"), timeout=2500)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "thread-live-reply.png"), animations="disabled")
    with scope(tenant=world.tenant):
        conversation = Conversation.objects.get(contact__igsid=ALICE_AT_ACME)
        sent = Message.objects.get(conversation=conversation, direction="out")
        assert sent.status == "sent"
        assert sent.mid
        assert sent.sender_user_id == world.agent.user_id

    # Alice reads it: the tick turns to "Seen" live.
    meta.customer("alice", "read", account="acme.store")
    deliver(meta)
    expect(mine).to_have_attribute("data-delivery", "seen", timeout=2500)

    # Comments: Dmitri commented on a post; one private reply, then the action is gone.
    page.goto(f"/inbox/accounts/{world.acme.pk}/comments/")
    comment = page.get_by_test_id("comment").filter(has_text="How much is this?")
    comment.get_by_test_id("private-reply-text").fill("It's €49. Sent you the link here!")
    comment.get_by_test_id("private-reply-send").click()
    expect(page.get_by_text("Private reply sent to @dmitri.s")).to_be_visible()
    expect(comment.get_by_test_id("comment-reply-queued")).to_be_visible()
    expect(comment.get_by_test_id("private-reply-send")).to_have_count(0)
    page.screenshot(path=str(SHOTS / "comments.png"), animations="disabled")
    wait_for(lambda: run_outbox(world))
    received = meta.received("dmitri", account="acme.store")
    assert any(r.get("text") == "It's €49. Sent you the link here!" for r in received)
    with scope(tenant=world.tenant):
        assert Comment.objects.get(pk=world.comment.pk).private_reply_at is not None
    page.reload()  # answered comments leave the "waiting" view...
    expect(comment).to_have_count(0)
    page.get_by_role("link", name="All", exact=True).click()  # ...and show as answered
    expect(comment.get_by_test_id("comment-replied")).to_be_visible()
