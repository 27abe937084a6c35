"""Inbox pages and htmx endpoints: what each role may do, isolation between workspaces and
between accounts, fixed query counts, sending through the policy, comments and settings."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from django_scopes import scope

from accounts.models import Membership
from messaging.models import CannedReply, Comment, Conversation, Label, Message, Note
from tests.factories import InstagramAccountFactory
from tests.inbox.seed import World, seed_world
from tests.messaging.factories import ConversationFactory, MessageFactory, ReactionFactory

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def reads(world: World, conversation: Conversation) -> list[str]:
    c = conversation.pk
    with scope(tenant=world.tenant):
        newest = Message.objects.filter(conversation=conversation).latest("sent_at", "id")
    return [
        f"/inbox/{c}/earlier/?before={newest.pk}",
        "/inbox/",
        f"/inbox/?account={world.acme.pk}&box=mine&unread=1&q=alice",
        f"/inbox/{c}/",
        f"/inbox/{c}/thread/",
        "/inbox/list/?q=alice",
        f"/inbox/poll/?conversation={c}",
        f"/inbox/accounts/{world.acme.pk}/comments/",
        "/settings/replies/",
        "/settings/messaging/",
    ]


def writes(world: World) -> list[tuple[str, dict[str, str]]]:
    c = world.every_kind.pk
    with scope(tenant=world.tenant):
        label = Label.objects.get(name="VIP")
        reply = CannedReply.objects.get(shortcut="thanks")
        failed = Message.objects.get(conversation=world.every_kind, status="failed")
    return [
        (f"/inbox/{c}/assign/", {"member": "me"}),
        (f"/inbox/{c}/status/", {"status": "resolved"}),
        (f"/inbox/{c}/notes/", {"body": "hello"}),
        (f"/inbox/{c}/labels/", {"name": "Urgent"}),
        (f"/inbox/{c}/labels/{label.pk}/remove/", {}),
        (f"/inbox/{c}/send/", {"text": "Hi"}),
        (f"/inbox/{c}/messages/{failed.pk}/retry/", {}),
        (f"/inbox/comments/{world.comment.pk}/reply/", {"text": "Sent you a DM"}),
        ("/settings/replies/", {"shortcut": "new", "body": "x"}),
        (f"/settings/replies/{reply.pk}/", {"shortcut": "thanks", "body": "y"}),
        (f"/settings/replies/{reply.pk}/delete/", {}),
        ("/settings/labels/", {"name": "New", "color": "red"}),
        (f"/settings/labels/{label.pk}/delete/", {}),
    ]


def test_every_page_renders_for_every_role(world: World, as_member: Any) -> None:
    for membership in (world.owner, world.agent, world.viewer):
        client = as_member(membership)
        for url in reads(world, world.every_kind):
            response = client.get(url)
            assert response.status_code == 200, (membership.role, url)


def test_viewers_read_but_every_write_answers_403(world: World, as_member: Any) -> None:
    client = as_member(world.viewer)
    html = client.get(f"/inbox/{world.every_kind.pk}/").content.decode()
    assert "Read only" in html
    assert 'data-testid="send"' not in html or "disabled" in html
    for url, data in writes(world):
        assert client.post(url, data, **HTMX).status_code == 403, url
    with scope(tenant=world.tenant):
        assert not Note.objects.filter(body="hello").exists()
        assert Conversation.objects.get(pk=world.every_kind.pk).status == "open"


def test_another_workspaces_ids_are_not_found_anywhere(world: World, as_member: Any) -> None:
    theirs = seed_world(domain="other.example")
    client = as_member(world.owner)
    for url in reads(theirs, theirs.every_kind):
        if (
            url.startswith(("/settings/", "/inbox/list", "/inbox/?", "/inbox/poll"))
            or url == "/inbox/"
        ):
            continue
        assert client.get(url).status_code == 404, url
    poll = client.get(f"/inbox/poll/?conversation={theirs.every_kind.pk}").json()
    assert poll["thread"] is None
    for url, data in writes(theirs):
        if url in ("/settings/replies/", "/settings/labels/"):
            continue  # no id in the URL: these create in the member's own workspace
        assert client.post(url, data, **HTMX).status_code == 404, url
    html = client.get(f"/inbox/?q=alice&account={theirs.acme.pk}").content.decode()
    assert f"/inbox/{theirs.every_kind.pk}/" not in html
    with scope(tenant=theirs.tenant):
        assert Conversation.objects.get(pk=theirs.every_kind.pk).status == "open"
        assert CannedReply.objects.count() == 2
        assert Comment.objects.get(pk=theirs.comment.pk).private_reply_at is None


def test_an_agent_limited_to_some_accounts_sees_nothing_of_the_others(
    world: World, limited_agent: Callable[..., Membership], as_member: Any
) -> None:
    client = as_member(limited_agent([world.bella]))
    html = client.get("/inbox/").content.decode()
    assert "Dmitri Søren" in html
    assert "Alice Martin" not in html
    assert "@acme.store" not in html
    assert 'data-testid="count-all">3<' in html
    for url in reads(world, world.every_kind):
        if (
            url.startswith(("/settings/", "/inbox/list", "/inbox/?", "/inbox/poll"))
            or url == "/inbox/"
        ):
            continue
        assert client.get(url).status_code == 404, url
    poll = client.get(f"/inbox/poll/?conversation={world.every_kind.pk}").json()
    assert poll["thread"] is None
    assert poll["unread"] == 2  # Dmitri's and Farid's, not Alice's
    assert "Alice" not in client.get("/inbox/list/?q=alice").content.decode()
    for url, data in writes(world)[:8]:
        assert client.post(url, data, **HTMX).status_code == 404, url
    assert client.get(f"/inbox/{world.open_.pk}/").status_code == 200


def _bulk(world: World, conversations: int, messages: int) -> None:
    with scope(tenant=world.tenant):
        for _ in range(conversations):
            conversation = ConversationFactory(account=world.acme)
            MessageFactory(conversation=conversation)
        for _ in range(messages):
            ReactionFactory(message=MessageFactory(conversation=world.every_kind, text="more"))


def _queries(client: Client, url: str, django_assert_max_num_queries: Any) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


def test_inbox_and_thread_pages_cost_a_fixed_number_of_queries(
    world: World, as_member: Any, django_assert_max_num_queries: Any
) -> None:
    """P5: the inbox list, a thread and the live-update poll cost the same number of queries
    with 60 more conversations and messages (list ≤ 14, thread ≤ 25, poll ≤ 6)."""
    client = as_member(world.agent)
    list_url, thread_url = "/inbox/", f"/inbox/{world.every_kind.pk}/"
    fragment_url = f"/inbox/{world.every_kind.pk}/thread/"
    urls = (list_url, thread_url, fragment_url)
    for url in urls:
        client.get(url)  # the first visit marks the thread read and warms the session
    small = [_queries(client, u, django_assert_max_num_queries) for u in urls]
    _bulk(world, conversations=60, messages=60)
    # Right after a change the filter counts are computed once (three queries), then cached
    # until the next change.
    cold = [_queries(client, u, django_assert_max_num_queries) for u in urls]
    assert cold[0] <= small[0] + 3
    large = [_queries(client, u, django_assert_max_num_queries) for u in urls]
    # The same bound whatever the size (a page of quotes or reactions may be absent).
    assert all(big <= few for big, few in zip(large, small, strict=True))
    with django_assert_max_num_queries(14):
        client.get(list_url)
    with django_assert_max_num_queries(25):
        client.get(thread_url)
    with django_assert_max_num_queries(6):
        client.get(f"/inbox/poll/?conversation={world.every_kind.pk}")


def test_opening_a_thread_marks_it_read_for_agents_not_viewers(
    world: World, as_member: Any
) -> None:
    as_member(world.viewer).get(f"/inbox/{world.every_kind.pk}/")
    with scope(tenant=world.tenant):
        assert Conversation.objects.get(pk=world.every_kind.pk).unread_count == 2
    as_member(world.agent).get(f"/inbox/{world.every_kind.pk}/")
    with scope(tenant=world.tenant):
        assert Conversation.objects.get(pk=world.every_kind.pk).unread_count == 0


def test_team_work_through_htmx_answers_the_refreshed_thread(world: World, as_member: Any) -> None:
    client = as_member(world.agent)
    c = world.every_kind.pk
    response = client.post(f"/inbox/{c}/assign/", {"member": "me"}, **HTMX)
    assert response.status_code == 200
    assert json.loads(response["HX-Trigger"]) == {"inbox:changed": 1}
    assert 'id="thread-header" class="th" hx-swap-oob="true"' in response.content.decode()
    assert "Me (Sam Reyes)" in response.content.decode()
    client.post(f"/inbox/{c}/notes/", {"body": "Ping @olivia"}, **HTMX)
    client.post(f"/inbox/{c}/labels/", {"name": "Refund"}, **HTMX)
    page = client.post(f"/inbox/{c}/status/", {"status": "resolved"}, **HTMX).content.decode()
    assert "Ping @olivia" in page
    assert "Reopen" in page
    with scope(tenant=world.tenant):
        row = Conversation.objects.get(pk=c)
        assert (row.assignee_id, row.status) == (world.agent.user_id, "resolved")
        assert Note.objects.get(conversation_id=c, body="Ping @olivia").mentions == [
            world.owner.user_id
        ]
    # Without htmx, a plain form post lands back on the thread.
    plain = client.post(f"/inbox/{c}/status/", {"status": "open"})
    assert plain.status_code == 302
    assert plain["Location"] == f"/inbox/{c}/"


def test_a_note_error_is_shown_next_to_the_notes(world: World, as_member: Any) -> None:
    html = (
        as_member(world.agent)
        .post(f"/inbox/{world.every_kind.pk}/notes/", {"body": "  "}, **HTMX)
        .content.decode()
    )
    assert "Write something first." in html


def test_sending_queues_a_message_through_the_policy(world: World, as_member: Any) -> None:
    client = as_member(world.agent)
    response = client.post(
        f"/inbox/{world.open_.pk}/send/",
        {"text": "See you Saturday at 10!", "idempotency_key": "k-1"},
        **HTMX,
    )
    assert response.status_code == 200
    assert "inbox:sent" in response["HX-Trigger"]
    assert "See you Saturday at 10!" in response.content.decode()
    # The same key again (a double click) queues nothing more.
    client.post(
        f"/inbox/{world.open_.pk}/send/",
        {"text": "See you Saturday at 10!", "idempotency_key": "k-1"},
        **HTMX,
    )
    with scope(tenant=world.tenant):
        sent = Message.objects.filter(conversation=world.open_, direction="out")
        assert [(m.text, m.status, m.sender_user_id) for m in sent] == [
            ("See you Saturday at 10!", "queued", world.agent.user_id)
        ]


def test_the_composer_refuses_with_the_reason_after_the_window(
    world: World, as_member: Any
) -> None:
    client = as_member(world.agent)
    page = client.get(f"/inbox/{world.closed.pk}/").content.decode()
    assert 'data-can-send="0"' in page
    assert "Replies are closed" in page
    response = client.post(f"/inbox/{world.closed.pk}/send/", {"text": "Hello?"}, **HTMX)
    assert "inbox:send-refused" in response["HX-Trigger"]
    assert "more than 7 days ago" in response.content.decode()
    with scope(tenant=world.tenant):
        assert not Message.objects.filter(conversation=world.closed, direction="out").exists()


def test_the_composer_refuses_more_than_1000_bytes(world: World, as_member: Any) -> None:
    response = as_member(world.agent).post(
        f"/inbox/{world.open_.pk}/send/", {"text": "é" * 501}, **HTMX
    )
    assert "at most 1000 bytes" in response.content.decode()


def test_window_banner_words(world: World, as_member: Any, settings: Any) -> None:
    from messaging.services import outbound

    client = as_member(world.agent)
    html = client.get(f"/inbox/{world.every_kind.pk}/").content.decode()
    assert "Window closes in 23 h 11 min" in html or "Window closes in 23 h 12 min" in html
    human = client.get(f"/inbox/{world.human.pk}/").content.decode()
    assert "The 24-hour window has closed" in human
    assert 'data-can-send="0"' in human
    with scope(tenant=world.tenant):
        outbound.messaging_settings_update(tenant_id=world.tenant.pk, human_agent_enabled=True)
    human = client.get(f"/inbox/{world.human.pk}/").content.decode()
    assert "Human-agent reply, 4 days" in human
    assert 'data-can-send="1"' in human


def test_private_reply_once_per_comment(world: World, as_member: Any) -> None:
    client = as_member(world.agent)
    url = f"/inbox/comments/{world.comment.pk}/reply/"
    first = client.post(url, {"text": "Sent you the price in DM!"}, follow=True)
    assert "Private reply sent to @dmitri.s" in first.content.decode()
    assert 'data-testid="comment-reply-queued"' in first.content.decode()
    second = client.post(url, {"text": "Again"}, follow=True).content.decode()
    assert "one" in second.lower()
    assert "Private reply sent" not in second.split("alert")[-1]


def test_old_comments_offer_no_private_reply(world: World, as_member: Any) -> None:
    html = as_member(world.agent).get(f"/inbox/accounts/{world.acme.pk}/comments/").content.decode()
    assert "Too old for a private reply" in html
    assert html.count('data-testid="private-reply-send"') == 2


def test_saved_replies_settings(world: World, as_member: Any) -> None:
    client = as_member(world.agent)
    response = client.post("/settings/replies/", {"shortcut": "hours", "body": "9 to 5"})
    assert response.status_code == 302
    bad = client.post("/settings/replies/", {"shortcut": "hours", "body": "again"})
    assert bad.status_code == 400
    assert "/hours is already used." in bad.content.decode()
    page = client.get(f"/inbox/{world.every_kind.pk}/").content.decode()
    assert '"shortcut": "hours"' in page  # offered to the composer's "/" menu


def test_messaging_settings_need_the_settings_capability(world: World, as_member: Any) -> None:
    form = {"disclosure_text": "Hi, I'm Acme's assistant.", "disclosure_mode": "always"}
    assert as_member(world.agent).post("/settings/messaging/", form).status_code == 403
    assert as_member(world.owner).post("/settings/messaging/", form).status_code == 302
    page = as_member(world.agent).get("/settings/messaging/").content.decode()
    assert "Hi, I&#x27;m Acme&#x27;s assistant." in page


def test_the_list_pages_with_a_cursor(world: World, as_member: Any) -> None:
    with scope(tenant=world.tenant):
        for i in range(60):
            ConversationFactory(
                account=world.acme, last_message_at=timezone.now() - timedelta(days=20, minutes=i)
            )
    client = as_member(world.agent)
    html = client.get("/inbox/").content.decode()
    assert html.count('data-testid="conversation-row"') == 50
    start = html.index("/inbox/list/?before=")
    more_url = html[start : html.index('"', start)].replace("&amp;", "&")
    more = client.get(more_url).content.decode()
    assert more.count('data-testid="conversation-row"') == len(world.conversations) + 60 - 50
    assert 'id="inbox-filters"' not in more


def test_signed_out_people_go_to_log_in(world: World, client: Client) -> None:
    for url in ("/inbox/", f"/inbox/{world.every_kind.pk}/", "/inbox/poll/"):
        response = client.get(url)
        assert response.status_code == 302
        assert "/accounts/login/" in response["Location"]


def test_conversation_of_an_unknown_account_kind_still_renders(
    world: World, as_member: Any
) -> None:
    account = InstagramAccountFactory(tenant=world.tenant, username="")
    conversation = ConversationFactory(account=account, contact__name="", contact__username="")
    MessageFactory(conversation=conversation, kind="template", text="")
    assert as_member(world.agent).get(f"/inbox/{conversation.pk}/").status_code == 200


def test_a_long_thread_opens_on_its_newest_messages_and_loads_earlier_ones(
    world: World, as_member: Any
) -> None:
    from datetime import timedelta

    conversation = world.closed
    with scope(tenant=world.tenant):
        start = timezone.now() - timedelta(days=9)
        for i in range(129):
            MessageFactory(
                conversation=conversation,
                text=f"history {i:03d}",
                sent_at=start + timedelta(minutes=i),
            )
    client = as_member(world.agent)
    html = client.get(f"/inbox/{conversation.pk}/").content.decode()
    assert html.count('data-testid="message"') == 60
    assert "history 128" in html
    assert "history 068" not in html

    def earlier_url(page: str) -> str:
        found = re.search(r'hx-get="([^"]+)"[^>]*data-testid="earlier"', page)
        assert found
        return found.group(1)

    older = client.get(earlier_url(html)).content.decode()
    assert older.count('data-testid="message"') == 60
    assert "history 068" in older
    assert "history 009" in older
    oldest = client.get(earlier_url(older)).content.decode()
    assert oldest.count('data-testid="message"') == 10  # 9 more of history and the first
    assert "history 008" in oldest
    assert 'data-testid="earlier"' not in oldest


# str.isdigit() is true for superscripts and circled digits, which int() refuses; a 5,000-digit
# number is more than int() reads. Each is ignored exactly like any other id that is not one.
@pytest.mark.parametrize("value", ["\u00b2", "\u2460", "9" * 5000])
def test_ids_that_are_not_ascii_digits_are_treated_like_any_bad_id(
    world: World, as_member: Any, value: str
) -> None:
    c = world.every_kind.pk
    moment = timezone.now().isoformat()
    client = as_member(world.agent)
    client.raise_request_exception = False  # a crash is answered 500, as in production
    answers = []
    for method, path, name, template in [
        ("get", "/inbox/", "account", "{}"),
        ("get", "/inbox/", "label", "{}"),
        ("get", "/inbox/list/", "current", "{}"),
        ("get", "/inbox/list/", "account", "{}"),
        ("get", "/inbox/list/", "before", moment + "_{}"),
        ("get", f"/inbox/{c}/earlier/", "before", "{}"),
        ("get", "/inbox/poll/", "conversation", "{}"),
        ("post", f"/inbox/{c}/assign/", "member", "{}"),
        ("post", f"/inbox/{c}/labels/", "label", "{}"),
    ]:
        send = getattr(client, method)
        bad = send(path, {name: template.format("abc")}, **HTMX)
        response = send(path, {name: template.format(value)}, **HTMX)
        answers.append((path, name, response.status_code, bad.status_code))
    assert [a for a in answers if a[2] != a[3] or a[2] >= 500] == []
    polled = client.get("/inbox/poll/", {"conversation": value}).json()
    assert polled.keys() == {"list", "unread"}  # no thread named, none fingerprinted
