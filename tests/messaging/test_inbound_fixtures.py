"""Every Meta fixture, posted signed and processed, leaves the state a person would notice.

Then it is delivered again (byte-identical, and as a different delivery with the same content)
and nothing changes; and the events of one conversation converge on one state in any order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django_scopes import scope
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.models import InstagramAccount, Tenant
from messaging.models import Comment, Conversation, Message, Reaction
from tests.factories import InstagramAccountFactory
from tests.messaging.inbound_support import (
    BUSINESS,
    CUSTOMER,
    FIXTURES,
    T0,
    conversation,
    deliver,
    envelope,
    fixture_body,
    item,
    messages,
    post,
    snapshot,
    text_message,
)
from webhooks import metrics, relay, services
from webhooks.models import WebhookEvent

pytestmark = pytest.mark.django_db

SECOND_BUSINESS = "17841499999999999"
Kind = Message.Kind


@pytest.fixture
def account(tenant: Tenant) -> InstagramAccount:
    return InstagramAccountFactory(tenant=tenant, ig_user_id=BUSINESS, username="acme")


@pytest.fixture
def second_account(other_tenant: Tenant) -> InstagramAccount:
    return InstagramAccountFactory(tenant=other_tenant, ig_user_id=SECOND_BUSINESS)


def _one(tenant: Tenant) -> Message:
    found = messages(tenant)
    assert len(found) == 1, found
    return found[0]


def _comment(tenant: Tenant) -> Comment:
    with scope(tenant=tenant):
        return Comment.objects.get()


def _reaction(tenant: Tenant) -> Reaction:
    with scope(tenant=tenant):
        return Reaction.objects.get()


def _nothing(tenant: Tenant) -> None:
    assert snapshot(tenant)["messages"] == []
    assert snapshot(tenant)["comments"] == []


def _inbound(tenant: Tenant, kind: str, **expected: Any) -> Message:
    message = _one(tenant)
    assert message.kind == kind
    assert message.direction == Message.Direction.INBOUND
    assert message.sender_kind == Message.SenderKind.CUSTOMER
    for name, value in expected.items():
        assert getattr(message, name) == value, name
    thread = conversation(tenant)
    assert thread.unread_count == 1
    assert thread.last_message_at == message.sent_at
    return message


def _attachment_urls(message: Message) -> list[str]:
    return [a.get("url", "") for a in message.attachments]


def _check_text(tenant: Tenant) -> None:
    message = _inbound(tenant, Kind.TEXT, text="Do you ship to Lisbon?")
    thread = conversation(tenant)
    assert thread.customer_last_message_at == message.sent_at
    assert thread.window_opened_by == "message"
    assert message.sent_at.isoformat() == "2024-06-10T06:13:20+00:00"


def _check_media(kind: str, count: int = 1) -> Callable[[Tenant], None]:
    def check(tenant: Tenant) -> None:
        message = _inbound(tenant, kind)
        urls = _attachment_urls(message)
        assert len(urls) == count
        assert all(u.startswith("https://lookaside.fbsbx.com/") for u in urls)

    return check


def _check_post_share(tenant: Tenant) -> None:
    message = _inbound(tenant, Kind.POST_SHARE)
    assert message.attachments == [
        {
            "type": "ig_post",
            "url": "https://www.instagram.com/p/Cabc123/",
            "title": "caption text",
            "media_id": "17900000000000000",
        }
    ]


def _check_story_mention(tenant: Tenant) -> None:
    _check_media(Kind.STORY_MENTION)(tenant)
    assert conversation(tenant).window_opened_by == "story_mention"


def _check_story_reply(tenant: Tenant) -> None:
    message = _inbound(tenant, Kind.STORY_REPLY, text="Love this!")
    assert message.reply_to_story == {
        "id": "17900000000000002",
        "url": "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=17900000000000001&signature=AbCd",
        "link_sticker_url": "https://shop.example.com/summer",
    }
    assert conversation(tenant).window_opened_by == "story_reply"


def _check_echo(kind: str, app_id: str = "", text: str | None = None) -> Callable[[Tenant], None]:
    def check(tenant: Tenant) -> None:
        message = _one(tenant)
        assert message.kind == kind
        assert message.direction == Message.Direction.OUTBOUND
        assert message.sender_kind == Message.SenderKind.EXTERNAL
        assert message.app_id == app_id
        if text is not None:
            assert message.text == text
        thread = conversation(tenant)
        assert thread.unread_count == 0
        assert thread.customer_last_message_at is None
        assert thread.last_message_at == message.sent_at

    return check


def _check_edit(text: str, count: int) -> Callable[[Tenant], None]:
    def check(tenant: Tenant) -> None:
        # The original has not arrived: a placeholder keeps the edit until it does.
        message = _one(tenant)
        assert (message.kind, message.text, message.edit_count) == (Kind.UNKNOWN, text, count)
        assert message.edited_at is not None
        assert conversation(tenant).unread_count == 0

    return check


def _check_unsend(tenant: Tenant) -> None:
    message = _one(tenant)
    assert message.is_unsent
    assert (message.kind, message.text, message.attachments) == (Kind.UNKNOWN, "", [])


def _check_referral(source: str, **fields: str) -> Callable[[Tenant], None]:
    def check(tenant: Tenant) -> None:
        message = _inbound(tenant, Kind.REFERRAL)
        assert message.referral is not None
        assert message.referral["source"] == source
        for name, value in fields.items():
            assert message.referral[name] == value
        assert conversation(tenant).window_opened_by == "referral"

    return check


def _check_ad_referral(tenant: Tenant) -> None:
    message = _inbound(tenant, Kind.TEXT, text="Is this available?")
    assert message.referral == {
        "source": "ADS",
        "type": "OPEN_THREAD",
        "ref": "optional-ref",
        "ad_id": "238000000",
        "ad_title": "Summer sale",
        "photo_url": "https://scontent.example/p.jpg",
        "video_url": "https://scontent.example/v.mp4",
    }


def _check_postback(standby: bool) -> Callable[[Tenant], None]:
    def check(tenant: Tenant) -> None:
        message = _inbound(tenant, Kind.POSTBACK, text="Track my order", is_standby=standby)
        expected = {"title": "Track my order"}
        if not standby:
            expected["payload"] = "TRACK_ORDER"
        assert message.postback == expected
        assert conversation(tenant).owned_by_other_app is standby
        assert conversation(tenant).window_opened_by == "postback"

    return check


def _check_standby_message(tenant: Tenant) -> None:
    _inbound(tenant, Kind.TEXT, text="hi while another app owns the thread", is_standby=True)
    assert conversation(tenant).owned_by_other_app is True


def _check_reaction(emoji: str, reaction: str) -> Callable[[Tenant], None]:
    def check(tenant: Tenant) -> None:
        row = _reaction(tenant)
        assert (row.actor, row.emoji, row.reaction, row.removed_at) == (
            "customer",
            emoji,
            reaction,
            None,
        )
        assert messages(tenant) == []

    return check


def _check_unreact(tenant: Tenant) -> None:
    assert _reaction(tenant).removed_at is not None


def _check_read(tenant: Tenant) -> None:
    thread = conversation(tenant)
    assert thread.customer_read_mid.startswith("aWdfZAG1")
    assert thread.customer_read_up_to is None  # its message is not stored yet
    assert messages(tenant) == []


def _check_handover(owned_by_other_app: bool) -> Callable[[Tenant], None]:
    def check(tenant: Tenant) -> None:
        assert conversation(tenant).owned_by_other_app is owned_by_other_app

    return check


def _check_no_thread(tenant: Tenant) -> None:
    with scope(tenant=tenant):
        assert not Conversation.objects.exists()
    _nothing(tenant)


def _check_comment(comment_id: str, **expected: Any) -> Callable[[Tenant], None]:
    def check(tenant: Tenant) -> None:
        comment = _comment(tenant)
        assert comment.comment_id == comment_id
        assert comment.from_username == "alice"
        for name, value in expected.items():
            assert getattr(comment, name) == value, name
        assert messages(tenant) == []

    return check


def _check_self_message(tenant: Tenant) -> None:
    _check_no_thread(tenant)


def _check_text_escaped(tenant: Tenant) -> None:
    message = _inbound(tenant, Kind.TEXT)
    assert message.text == "Olá! äöå 😀 see https://shop.example.com/p/1"


def _check_quarantined(tenant: Tenant) -> None:
    _check_no_thread(tenant)


def _check_batch(tenant: Tenant) -> None:
    # Handled with two accounts in two tenants; see the batch test below.
    raise AssertionError("not used")


# fixture -> (expected WebhookEvent status, check of the stored state)
EXPECTED: dict[str, tuple[str, Callable[[Tenant], None]]] = {
    "comment.json": ("processed", _check_comment("17900000000000003", media_product_type="FEED")),
    "comment_by_business.json": ("processed", _nothing),
    "comment_flat_entry.json": ("processed", _check_comment("17900000000000003")),
    "comment_flat_top_level.json": ("quarantined", _check_quarantined),
    "comment_reply_on_ad.json": (
        "processed",
        _check_comment("17900000000000006", parent_id="17900000000000004"),
    ),
    "dashboard_test_changes.json": ("processed", _check_no_thread),
    "dashboard_test_messaging.json": ("processed", _check_no_thread),
    "handover_pass.json": ("processed", _check_handover(True)),
    "handover_request.json": ("processed", _check_no_thread),
    "handover_take.json": ("processed", _check_handover(True)),
    "legacy_event_type.json": ("processed", _check_no_thread),
    "live_comment.json": ("processed", _check_comment("17900000000000008", is_live=True)),
    "mention_caption.json": ("processed", _check_no_thread),
    "mention_comment.json": ("processed", _check_no_thread),
    "message_ad_referral.json": ("processed", _check_ad_referral),
    "message_audio.json": ("processed", _check_media(Kind.AUDIO)),
    "message_deleted.json": ("processed", _check_unsend),
    "message_echo.json": ("processed", _check_echo(Kind.TEXT, "123456789", "Thanks!")),
    "message_echo_template.json": ("processed", _check_echo(Kind.TEMPLATE)),
    "message_echo_without_flag.json": (
        "processed",
        _check_echo(Kind.TEXT, text="Sent from the Instagram app"),
    ),
    "message_edit.json": ("processed", _check_edit("corrected text", 1)),
    "message_edit_num_edit_string.json": ("processed", _check_edit("corrected again", 2)),
    "message_ephemeral.json": ("processed", lambda t: _inbound(t, Kind.UNSUPPORTED)),
    "message_fallback.json": ("processed", lambda t: _inbound(t, Kind.TEXT)),
    "message_file.json": ("processed", _check_media(Kind.FILE)),
    "message_ig_post.json": ("processed", _check_post_share),
    "message_ig_reel.json": (
        "processed",
        lambda t: _inbound(
            t,
            Kind.REEL_SHARE,
            attachments=[
                {
                    "type": "ig_reel",
                    "url": "https://www.instagram.com/reel/Cxyz/",
                    "title": "caption",
                    "media_id": "18000000000000000",
                }
            ],
        ),
    ),
    "message_ig_story.json": ("processed", _check_media(Kind.STORY_SHARE)),
    "message_image.json": ("processed", _check_media(Kind.IMAGE)),
    "message_multiple_images.json": ("processed", _check_media(Kind.IMAGE, count=2)),
    "message_quick_reply.json": (
        "processed",
        lambda t: _inbound(t, Kind.TEXT, text="Red", quick_reply_payload="COLOR_RED"),
    ),
    "message_reel_legacy.json": (
        "processed",
        lambda t: _inbound(
            t,
            Kind.REEL_SHARE,
            attachments=[
                {
                    "type": "ig_reel",
                    "url": "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=2&signature=y",
                    "title": "old reel",
                }
            ],
        ),
    ),
    "message_reply_to_message.json": (
        "processed",
        lambda t: _inbound(t, Kind.TEXT, text="yes that one", reply_to_mid="aWdfORIGINAL"),
    ),
    "message_self.json": ("processed", _check_self_message),
    "message_share_and_ig_post.json": ("processed", _check_post_share),
    "message_share_legacy.json": ("processed", _check_media(Kind.POST_SHARE)),
    "message_story_mention.json": ("processed", _check_story_mention),
    "message_story_reply.json": ("processed", _check_story_reply),
    "message_text.json": ("processed", _check_text),
    "message_text_meta_escaped.json": ("processed", _check_text_escaped),
    "message_unsupported.json": ("processed", lambda t: _inbound(t, Kind.UNSUPPORTED, text="")),
    "message_unsupported_type_attachment.json": (
        "processed",
        lambda t: _inbound(t, Kind.UNSUPPORTED),
    ),
    "message_video.json": ("processed", _check_media(Kind.VIDEO)),
    "optin.json": ("processed", _check_no_thread),
    "postback.json": ("processed", _check_postback(standby=False)),
    "postback_standby.json": ("processed", _check_postback(standby=True)),
    "reaction_react.json": ("processed", _check_reaction("\u2764\ufe0f", "love")),
    "reaction_react_laugh.json": ("processed", _check_reaction("\U0001f602", "laugh")),
    "reaction_unreact.json": ("processed", _check_unreact),
    "read.json": ("processed", _check_read),
    "read_watermark_page.json": ("quarantined", _check_quarantined),
    "referral_igme.json": ("processed", _check_referral("IGME-SOURCE-LINK", ref="campaign42")),
    "referral_product.json": ("processed", _check_referral("SHOP", product_id="7000000000000000")),
    "referral_shortlink.json": ("processed", _check_referral("SHORTLINK", ref="campaign42")),
    "standby_message.json": ("processed", _check_standby_message),
    "story_insights.json": ("processed", _check_no_thread),
    "batch_multiple_entries.json": ("processed", _check_batch),
}


def test_every_fixture_has_an_expectation() -> None:
    assert {p.name for p in FIXTURES.glob("*.json")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(n for n in EXPECTED if n != "batch_multiple_entries.json"))
def test_fixture_is_stored_as_a_person_would_expect_and_only_once(
    name: str, client: Client, tenant: Tenant, account: InstagramAccount
) -> None:
    status, check = EXPECTED[name]
    body = fixture_body(name)
    deliver(client, body)
    event = WebhookEvent.objects.get()
    assert event.status == status, event.last_error
    check(tenant)
    before = snapshot(tenant)

    # Meta's retry of the same bytes is stored once; the same content in another delivery
    # (another batch, other whitespace) is processed again and changes nothing.
    deliver(client, body)
    deliver(client, body + b"\n")
    deliver(client, b" " + body)
    assert WebhookEvent.objects.count() == 3
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {status}
    assert snapshot(tenant) == before


def test_batch_with_two_businesses_routes_each_entry_to_its_tenant(
    client: Client,
    tenant: Tenant,
    other_tenant: Tenant,
    account: InstagramAccount,
    second_account: InstagramAccount,
) -> None:
    deliver(client, fixture_body("batch_multiple_entries.json"))
    assert WebhookEvent.objects.get().status == "processed"
    first = _one(tenant)
    assert (first.mid, first.text) == ("aWdfA", "first")
    assert _reaction(tenant).message_mid == "aWdfB"
    with scope(tenant=tenant):
        assert not Comment.objects.exists()
    assert messages(other_tenant) == []
    assert conversation(other_tenant).customer_read_mid == "aWdfC"
    assert _comment(other_tenant).comment_id == "17900000000000099"
    before = (snapshot(tenant), snapshot(other_tenant))
    deliver(client, fixture_body("batch_multiple_entries.json") + b" ")
    assert (snapshot(tenant), snapshot(other_tenant)) == before


def test_dashboard_test_deliveries_are_acknowledged_counted_and_ignored(
    client: Client, tenant: Tenant, account: InstagramAccount
) -> None:
    before = metrics.snapshot().get("webhook.test_delivery", 0)
    deliver(client, fixture_body("dashboard_test_messaging.json"))
    assert metrics.snapshot()["webhook.test_delivery"] == before + 1
    assert WebhookEvent.objects.get().status == "processed"


# -- W6: one conversation's events in every order, with duplicates ---------------------------

M1, M2, ECHO = "aWdfM1", "aWdfM2", "aWdfECHO"
CONVERSATION_EVENTS: list[dict[str, Any]] = [
    text_message(M1, "Do you have it in red?", ts=T0),
    item({"message": {"mid": ECHO, "text": "We do!", "is_echo": True}}, ts=T0 + 1000,
         from_business=True),
    item({"message": {"mid": M2, "text": "Great, that one", "reply_to": {"mid": ECHO}}},
         ts=T0 + 2000),
    item({"reaction": {"mid": ECHO, "action": "react", "reaction": "love", "emoji": "❤️"}},
         ts=T0 + 3000),
    item({"read": {"mid": ECHO}}, ts=T0 + 4000),
    item({"message_edit": {"mid": M1, "text": "Do you have it in blue?", "num_edit": 1}},
         ts=T0 + 5000),
    item({"message": {"mid": M2, "is_deleted": True}}, ts=T0 + 6000),
]  # fmt: skip


def _deliver_in_order(order: list[int]) -> None:
    for n, index in enumerate(order):
        body = envelope({BUSINESS: [CONVERSATION_EVENTS[index]]}).replace(
            b'"time":', f'"delivery":{n},"time":'.encode(), 1
        )
        services.webhook_event_store(raw_body=body, signed_with="meta")
    relay.drain()


def _reset(tenant: Tenant) -> None:
    with scope(tenant=tenant):
        Reaction.objects.all().delete()
        Message.objects.all().delete()
        Conversation.objects.all().delete()
        from messaging.models import Contact

        Contact.objects.all().delete()
    WebhookEvent.objects.all().delete()


@pytest.fixture
def reference_state(tenant: Tenant, account: InstagramAccount) -> dict[str, Any]:
    _deliver_in_order(list(range(len(CONVERSATION_EVENTS))))
    state = snapshot(tenant)
    first, echo, second = messages(tenant)
    assert (first.text, first.edit_count) == ("Do you have it in blue?", 1)
    assert echo.sender_kind == Message.SenderKind.EXTERNAL
    assert second.is_unsent
    assert second.text == ""
    assert second.reply_to_mid == ""
    thread = conversation(tenant)
    assert thread.unread_count == 2
    assert thread.last_message_at == second.sent_at == thread.customer_last_message_at
    assert thread.customer_read_up_to == echo.sent_at
    assert _reaction(tenant).emoji == "❤️"
    _reset(tenant)
    return state


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    order=st.permutations(list(range(len(CONVERSATION_EVENTS)))),
    duplicates=st.lists(st.integers(0, len(CONVERSATION_EVENTS) - 1), max_size=3),
    positions=st.randoms(use_true_random=False),
)
def test_final_state_is_the_same_for_every_order_and_duplication(
    order: list[int],
    duplicates: list[int],
    positions: Any,
    tenant: Tenant,
    reference_state: dict[str, Any],
) -> None:
    deliveries = list(order)
    for index in duplicates:
        deliveries.insert(positions.randint(0, len(deliveries)), index)
    try:
        _deliver_in_order(deliveries)
        assert snapshot(tenant) == reference_state
        assert set(WebhookEvent.objects.values_list("status", flat=True)) == {"processed"}
    finally:
        _reset(tenant)


def test_all_orders_of_three_events_converge(
    tenant: Tenant, reference_state: dict[str, Any]
) -> None:
    import itertools

    # Exhaustive over the message, its unsend and its edit: the hardest interleavings.
    states = []
    for order in itertools.permutations([0, 5, 2, 6]):
        _deliver_in_order(list(order))
        states.append(snapshot(tenant))
        _reset(tenant)
    assert all(s == states[0] for s in states)


def test_a_late_echo_of_a_stored_message_is_matched_by_mid(
    client: Client, tenant: Tenant, account: InstagramAccount
) -> None:
    deliver(client, envelope({BUSINESS: [CONVERSATION_EVENTS[1]]}))
    with scope(tenant=tenant):
        Message.objects.filter(mid=ECHO).update(sender_kind=Message.SenderKind.AGENT, app_id="")
    deliver(client, envelope({BUSINESS: [CONVERSATION_EVENTS[1]]}) + b" ")
    echo = _one(tenant)
    assert echo.sender_kind == Message.SenderKind.AGENT


def test_customer_id_is_never_enough_on_its_own(
    client: Client,
    tenant: Tenant,
    other_tenant: Tenant,
    account: InstagramAccount,
    second_account: InstagramAccount,
) -> None:
    """T5: the same IGSID writing to two businesses is two contacts in two tenants."""
    deliver(
        client,
        envelope(
            {
                BUSINESS: [text_message("aWdfT5A", "to A")],
                SECOND_BUSINESS: [text_message("aWdfT5B", "to B", business=SECOND_BUSINESS)],
            }
        ),
    )
    assert snapshot(tenant)["contacts"] == [(CUSTOMER, BUSINESS, "", "")]
    assert snapshot(other_tenant)["contacts"] == [(CUSTOMER, SECOND_BUSINESS, "", "")]
    assert [m.text for m in messages(tenant)] == ["to A"]
    assert [m.text for m in messages(other_tenant)] == ["to B"]


def test_a_forged_recipient_of_another_tenant_touches_only_the_entrys_tenant(
    client: Client,
    tenant: Tenant,
    other_tenant: Tenant,
    account: InstagramAccount,
    second_account: InstagramAccount,
) -> None:
    seed = text_message("aWdfSEED", "B's thread", business=SECOND_BUSINESS)
    deliver(client, envelope({SECOND_BUSINESS: [seed]}))
    before_b = snapshot(other_tenant)
    forged = [
        text_message("aWdfFORGED", "forged", business=SECOND_BUSINESS),
        item({"message": {"mid": "aWdfSEED", "is_deleted": True}}, business=SECOND_BUSINESS),
        item({"read": {"mid": "aWdfSEED"}}, business=SECOND_BUSINESS),
    ]
    deliver(client, envelope({BUSINESS: forged}))
    assert snapshot(other_tenant) == before_b
    assert {m.mid for m in messages(tenant)} == {"aWdfFORGED", "aWdfSEED"}
    assert all(m.account_id == account.pk for m in messages(tenant))


def test_post_helper_signs_with_the_app_secret(client: Client) -> None:
    assert post(client, b"{}").status_code == 200
