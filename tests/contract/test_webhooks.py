"""Customer actions in the sandbox -> signed delivery to our receiver -> signature check ->
typed events (REFERENCE §3). Page-linked accounts are signed with the Meta app secret,
Instagram Login accounts with the Instagram app secret."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from integrations.meta.client import INSTAGRAM_INBOX_APP_ID, AccountClient, MetaClient
from integrations.meta.sandbox.testing import RunningSandbox
from integrations.meta.signatures import SIGNATURE_HEADER, verify_hub_signature
from integrations.meta.webhooks import (
    AttachmentMessageEvent,
    CommentEvent,
    EchoEvent,
    HandoverEvent,
    LiveCommentEvent,
    MessageDeletedEvent,
    MessageEditEvent,
    MessageEvent,
    MessageReplyEvent,
    PostbackEvent,
    QuickReplyEvent,
    ReactionEvent,
    ReadEvent,
    ReferralEvent,
    StoryMentionEvent,
    StoryReplyEvent,
    TextMessageEvent,
    UnsupportedMessageEvent,
    WebhookEvent,
    parse_webhook_body,
)
from tests.contract import support as w
from tests.webhook_receiver import Receiver


@dataclass
class Account:
    name: str
    client: AccountClient
    ig_id: str
    username: str
    customer: str
    igsid: str
    media_id: str
    secret: str
    other_secret: str


@pytest.fixture(params=["facebook", "instagram"])
def account(
    request: pytest.FixtureRequest,
    meta: MetaClient,
    acme: AccountClient,
    creator: AccountClient,
    receiver: Receiver,
) -> Account:
    w.subscribe_webhooks(meta, receiver, [acme, creator])
    if request.param == "facebook":
        return Account(
            "facebook",
            acme,
            w.IG_ACME,
            "acme.store",
            "alice",
            w.ALICE_AT_ACME,
            w.MEDIA_ACME_POST,
            w.APP_SECRET,
            w.IG_APP_SECRET,
        )
    return Account(
        "instagram",
        creator,
        w.IG_CREATOR,
        "chloe.creates",
        "dmitri",
        w.DMITRI_AT_CREATOR,
        w.MEDIA_CREATOR_POST,
        w.IG_APP_SECRET,
        w.APP_SECRET,
    )


def events_of(sbx: RunningSandbox, receiver: Receiver, account: Account) -> list[WebhookEvent]:
    posts = w.deliver(sbx, receiver)
    assert posts, "nothing was delivered"
    for post in posts:
        header = post.header(SIGNATURE_HEADER)
        assert header is not None
        assert header.startswith("sha256=")
        assert not verify_hub_signature(post.body, header, [account.other_secret])
        assert verify_hub_signature(post.body, header, [account.other_secret, account.secret])
        assert post.header("X-Hub-Signature") is not None  # legacy sha1, ignored
        post.body.decode("ascii")  # Meta escapes every non-ASCII character
    return w.signed_events(posts, account.secret)


def one(sbx: RunningSandbox, receiver: Receiver, account: Account, cls: type[WebhookEvent]) -> Any:
    events = events_of(sbx, receiver, account)
    assert len(events) == 1, events
    event = events[0]
    assert type(event) is cls, event
    assert event.object == "instagram"
    assert event.entry_id == account.ig_id
    assert event.business_id == account.ig_id
    assert event.timestamp is not None
    return event


def inbound(event: Any, account: Account, channel: str = "messaging") -> None:
    assert event.channel == channel
    assert event.customer_id == account.igsid
    assert event.sender_id == account.igsid
    assert event.recipient_id == account.ig_id
    assert not event.is_from_business


def act(sbx: RunningSandbox, account: Account, action: str, **body: Any) -> dict[str, Any]:
    """The account's customer does ``action`` (control API ``customers/{ref}/{action}``)."""
    path = f"customers/{account.customer}/{action}"
    return dict(sbx.control("POST", path, {"account": account.username, **body}))


# -- messages (§3.6) -------------------------------------------------------------------------------


def test_text_with_escaped_bytes(sbx: RunningSandbox, receiver: Receiver, account: Account) -> None:
    text = "Olá! Size 1/2 ☀️ — ok?"
    sent = act(sbx, account, "send", kind="text", text=text)
    posts = w.deliver(sbx, receiver)
    raw = posts[0].body
    assert b"\\u2600" in raw
    assert b"1\\/2" in raw
    # Re-serialising the parsed JSON changes the bytes: only the raw body verifies.
    reserialised = json.dumps(json.loads(raw)).encode()
    header = posts[0].header(SIGNATURE_HEADER)
    assert not verify_hub_signature(reserialised, header, [account.secret])
    (event,) = w.signed_events(posts, account.secret)
    assert isinstance(event, TextMessageEvent)
    inbound(event, account)
    assert event.text == text
    assert event.mid == sent["mid"]
    assert event.dedupe_key == f"message:{sent['mid']}"
    assert event.timestamp_ms is not None
    assert event.timestamp_ms > 10**12  # milliseconds


@pytest.mark.parametrize("kind", ["image", "video", "audio", "file"])
def test_media_attachments(
    sbx: RunningSandbox, receiver: Receiver, account: Account, kind: str
) -> None:
    act(sbx, account, "send", kind=kind, count=2 if kind == "image" else 1)
    event = one(sbx, receiver, account, AttachmentMessageEvent)
    inbound(event, account)
    assert [a.kind for a in event.attachments] == [kind] * (2 if kind == "image" else 1)
    assert all(
        a.url and a.url.startswith("https://lookaside.fbsbx.com/") for a in event.attachments
    )


def test_story_mention(sbx: RunningSandbox, receiver: Receiver, account: Account) -> None:
    act(sbx, account, "send", kind="story_mention")
    event = one(sbx, receiver, account, StoryMentionEvent)
    assert event.attachments[0].kind == "story_mention"
    assert event.attachments[0].url


def test_story_reply(sbx: RunningSandbox, receiver: Receiver, account: Account) -> None:
    act(
        sbx,
        account,
        "send",
        kind="story_reply",
        text="Love this!",
        story_id="17900000000000777",
        link_sticker_url="https://shop.example.com/sale",
    )
    event = one(sbx, receiver, account, StoryReplyEvent)
    assert event.text == "Love this!"
    assert event.reply_to_story is not None
    assert event.reply_to_story.id == "17900000000000777"
    assert event.reply_to_story.link_sticker_url == "https://shop.example.com/sale"


@pytest.mark.parametrize("style", ["ig_post", "share", "both"])
def test_post_shares(sbx: RunningSandbox, receiver: Receiver, account: Account, style: str) -> None:
    act(sbx, account, "send", kind="post_share", style=style, media_id="17900000000000555")
    event = one(sbx, receiver, account, AttachmentMessageEvent)
    kinds = [a.kind for a in event.attachments]
    assert (
        kinds == {"ig_post": ["ig_post"], "share": ["share"], "both": ["share", "ig_post"]}[style]
    )
    shown = event.display_attachments
    assert len(shown) == 1
    if style != "share":
        assert shown[0].media_id == "17900000000000555"


def test_reel_share(sbx: RunningSandbox, receiver: Receiver, account: Account) -> None:
    act(sbx, account, "send", kind="reel", reel_id="18000000000000001", title="My reel")
    event = one(sbx, receiver, account, AttachmentMessageEvent)
    (reel,) = event.attachments
    assert (reel.type, reel.kind, reel.media_id, reel.title) == (
        "ig_reel",
        "ig_reel",
        "18000000000000001",
        "My reel",
    )


def test_quick_reply_tap(sbx: RunningSandbox, receiver: Receiver, account: Account) -> None:
    act(sbx, account, "send", kind="quick_reply", text="Red", payload="COLOR_RED")
    event = one(sbx, receiver, account, QuickReplyEvent)
    assert (event.text, event.quick_reply_payload) == ("Red", "COLOR_RED")


def test_ad_referral_on_the_first_message(
    sbx: RunningSandbox, receiver: Receiver, account: Account
) -> None:
    act(sbx, account, "send", kind="ad_referral", ad_id="238000000000042", ad_title="Summer")
    event = one(sbx, receiver, account, TextMessageEvent)
    assert event.referral is not None
    assert event.referral.is_ad
    assert (event.referral.ad_id, event.referral.ad_title) == ("238000000000042", "Summer")


def test_ephemeral_media(sbx: RunningSandbox, receiver: Receiver, account: Account) -> None:
    act(sbx, account, "send", kind="ephemeral")
    event = one(sbx, receiver, account, AttachmentMessageEvent)
    assert [(a.kind, a.url) for a in event.attachments] == [("ephemeral", None)]


def test_unsupported_message(sbx: RunningSandbox, receiver: Receiver, account: Account) -> None:
    act(sbx, account, "send", kind="unsupported")
    event = one(sbx, receiver, account, UnsupportedMessageEvent)
    assert event.is_unsupported


def test_inline_reply(sbx: RunningSandbox, receiver: Receiver, account: Account) -> None:
    first = act(sbx, account, "send", text="the blue one")
    w.deliver(sbx, receiver)
    act(sbx, account, "send", text="or that one", reply_to_mid=first["mid"])
    event = one(sbx, receiver, account, MessageReplyEvent)
    assert event.reply_to_mid == first["mid"]


def test_unsend_and_edit(sbx: RunningSandbox, receiver: Receiver, account: Account) -> None:
    sent = act(sbx, account, "send", text="tpyo")
    w.deliver(sbx, receiver)
    act(sbx, account, "edit", mid=sent["mid"], text="typo")
    edit = one(sbx, receiver, account, MessageEditEvent)
    assert (edit.mid, edit.text, edit.num_edit) == (sent["mid"], "typo", 1)
    assert edit.dedupe_key == f"edit:{sent['mid']}:1"
    act(sbx, account, "unsend", mid=sent["mid"])
    deleted = one(sbx, receiver, account, MessageDeletedEvent)
    inbound(deleted, account)
    assert deleted.mid == sent["mid"]
    assert deleted.dedupe_key == f"deleted:{sent['mid']}"


# -- the business's own sends come back as echoes (§3.6, §4.1) -------------------------------------


def test_echo_of_an_api_send(sbx: RunningSandbox, receiver: Receiver, account: Account) -> None:
    result = account.client.send_text(account.igsid, "Thanks!", metadata="outbox-42")
    event = one(sbx, receiver, account, EchoEvent)
    assert event.is_echo
    assert event.is_from_business
    assert event.mid == result.message_id
    assert event.dedupe_key == f"message:{result.message_id}"
    assert (event.sender_id, event.recipient_id) == (account.ig_id, account.igsid)
    assert event.customer_id == account.igsid
    assert event.text == "Thanks!"
    assert event.metadata == "outbox-42"
    assert event.app_id == w.APP_ID


# -- reactions, reads, postbacks, referrals (§3.6) -------------------------------------------------


def test_reactions_on_our_message(
    sbx: RunningSandbox, receiver: Receiver, account: Account
) -> None:
    ours = account.client.send_text(account.igsid, "Here you go")
    w.deliver(sbx, receiver)
    act(sbx, account, "react", reaction="laugh")
    react = one(sbx, receiver, account, ReactionEvent)
    inbound(react, account)
    assert (react.mid, react.action, react.reaction, react.emoji) == (
        ours.message_id,
        "react",
        "laugh",
        "\U0001f602",
    )
    act(sbx, account, "unreact")
    unreact = one(sbx, receiver, account, ReactionEvent)
    assert unreact.is_removal
    assert unreact.mid == ours.message_id
    assert unreact.emoji is None


def test_read(sbx: RunningSandbox, receiver: Receiver, account: Account) -> None:
    ours = account.client.send_text(account.igsid, "Did you see this?")
    w.deliver(sbx, receiver)
    act(sbx, account, "read")
    event = one(sbx, receiver, account, ReadEvent)
    inbound(event, account)
    assert event.mid == ours.message_id


def test_postback(sbx: RunningSandbox, receiver: Receiver, account: Account) -> None:
    sent = act(sbx, account, "postback", title="Track my order", payload="TRACK_ORDER")
    event = one(sbx, receiver, account, PostbackEvent)
    inbound(event, account)
    assert (event.mid, event.title, event.payload) == (sent["mid"], "Track my order", "TRACK_ORDER")


def test_igme_referral(sbx: RunningSandbox, receiver: Receiver, account: Account) -> None:
    act(sbx, account, "referral", ref="campaign42")
    event = one(sbx, receiver, account, ReferralEvent)
    inbound(event, account)
    assert (event.referral.ref, event.referral.source) == ("campaign42", "IGME-SOURCE-LINK")
    assert event.referral.is_link


# -- comments (§3.7) -------------------------------------------------------------------------------


def test_comment_reply_and_live_comment(
    sbx: RunningSandbox, receiver: Receiver, account: Account
) -> None:
    top = sbx.customer(account.customer, "comment", media_id=account.media_id, text="Price?")
    event = one(sbx, receiver, account, CommentEvent)
    assert event.channel == "changes"
    assert event.field_name == "comments"
    assert (event.comment_id, event.media_id, event.text) == (
        top["comment_id"],
        account.media_id,
        "Price?",
    )
    assert event.from_username == account.customer
    assert event.media_product_type == "FEED"
    assert event.parent_id is None
    assert event.dedupe_key == f"comment:{top['comment_id']}"
    assert not event.is_from_business

    sbx.customer(
        account.customer,
        "comment",
        media_id=account.media_id,
        text="Hello?",
        parent_id=top["comment_id"],
    )
    reply = one(sbx, receiver, account, CommentEvent)
    assert reply.parent_id == top["comment_id"]

    sbx.customer(account.customer, "comment", media_id=account.media_id, text="Live!", live=True)
    live = one(sbx, receiver, account, LiveCommentEvent)
    assert live.field_name == "live_comments"

    # The commenter can get one private reply; it lands in the DM thread.
    assert account.client.send_private_reply(top["comment_id"], "Sent you the price").message_id


# -- routing events and standby (§3.6, §6) ---------------------------------------------------------


def test_handover_and_standby(sbx: RunningSandbox, receiver: Receiver, account: Account) -> None:
    assert account.client.pass_thread_control(
        account.igsid, INSTAGRAM_INBOX_APP_ID, metadata="escalate"
    )
    passed = one(sbx, receiver, account, HandoverEvent)
    assert passed.action == "pass_thread_control"
    assert (passed.previous_owner_app_id, passed.new_owner_app_id, passed.metadata) == (
        w.APP_ID,
        INSTAGRAM_INBOX_APP_ID,
        "escalate",
    )

    act(sbx, account, "send", text="Is anyone there?")
    standby = one(sbx, receiver, account, TextMessageEvent)
    inbound(standby, account, channel="standby")
    assert standby.is_standby
    act(sbx, account, "postback", title="Talk to a human", payload="HUMAN")
    standby_postback = one(sbx, receiver, account, PostbackEvent)
    assert standby_postback.is_standby
    assert standby_postback.payload is None  # standby postbacks carry only the title

    sbx.control(
        "POST",
        "threads/owner",
        {"account": account.username, "customer": account.customer, "app_id": w.APP_ID},
    )
    taken = one(sbx, receiver, account, HandoverEvent)
    assert taken.action == "take_thread_control"
    assert taken.new_owner_app_id == w.APP_ID
    act(sbx, account, "send", text="Thanks")
    assert one(sbx, receiver, account, TextMessageEvent).channel == "messaging"


# -- batching and the dashboard test (§3.3, §3.5) --------------------------------------------------


def test_several_events_in_one_delivery_keep_their_order(
    sbx: RunningSandbox, receiver: Receiver, account: Account
) -> None:
    mids = [act(sbx, account, "send", text=f"part {n}")["mid"] for n in range(3)]
    posts = w.deliver(sbx, receiver)
    assert len(posts) == 1
    body = json.loads(posts[0].body)
    assert len(body["entry"]) == 1
    assert len(body["entry"][0]["messaging"]) == 3
    events = w.signed_events(posts, account.secret)
    assert [e.mid for e in events] == mids


def test_both_stacks_in_one_flush_are_signed_apart(
    sbx: RunningSandbox, receiver: Receiver, account: Account
) -> None:
    sbx.customer("alice", "send", account="acme.store", text="to acme")
    sbx.customer("dmitri", "send", account="chloe.creates", text="to chloe")
    posts = w.deliver(sbx, receiver)
    assert len(posts) == 2
    by_secret: dict[str, list[MessageEvent]] = {}
    for post in posts:
        header = post.header(SIGNATURE_HEADER)
        for secret in (w.APP_SECRET, w.IG_APP_SECRET):
            if verify_hub_signature(post.body, header, [secret]):
                by_secret.setdefault(secret, []).extend(
                    e for e in parse_webhook_body(post.body) if isinstance(e, MessageEvent)
                )
    assert [e.business_id for e in by_secret[w.APP_SECRET]] == [w.IG_ACME]
    assert [e.business_id for e in by_secret[w.IG_APP_SECRET]] == [w.IG_CREATOR]


@pytest.mark.parametrize("shape", ["changes", "messaging"])
def test_dashboard_test_delivery(
    sbx: RunningSandbox, receiver: Receiver, account: Account, shape: str
) -> None:
    sbx.control("POST", "webhooks/test", {"shape": shape})
    posts = w.deliver(sbx, receiver)
    (event,) = w.signed_events(posts, w.APP_SECRET)
    assert isinstance(event, TextMessageEvent)
    assert event.is_test
    assert event.text == "random_text"
    assert event.timestamp_ms == 1527459824000


def test_unsubscribed_account_gets_nothing(
    sbx: RunningSandbox, receiver: Receiver, account: Account
) -> None:
    assert account.client.unsubscribe_app()
    act(sbx, account, "send", text="anyone?")
    assert sbx.flush()["delivered"] == 0
    assert receiver.take() == []
    assert account.client.subscribe_app()
    act(sbx, account, "send", text="anyone now?")
    assert one(sbx, receiver, account, TextMessageEvent).text == "anyone now?"


def test_inbox_taking_the_thread_is_a_take_event(
    sbx: RunningSandbox, receiver: Receiver, account: Account
) -> None:
    sbx.control(
        "POST", "threads/owner", {"account": account.username, "customer": account.customer}
    )
    event = one(sbx, receiver, account, HandoverEvent)
    assert event.action == "take_thread_control"
    assert event.new_owner_app_id == INSTAGRAM_INBOX_APP_ID
    assert event.previous_owner_app_id is None  # the thread was idle


def test_duplicate_deliveries_share_dedupe_keys(
    sbx: RunningSandbox, receiver: Receiver, account: Account
) -> None:
    sbx.control("POST", "webhooks/options", {"duplicate": 1.0})
    act(sbx, account, "send", text="once")
    events = events_of(sbx, receiver, account)
    assert len(events) == 2
    assert events[0].dedupe_key == events[1].dedupe_key


def test_echoes_need_message_echoes_on_instagram_login_only(
    sbx: RunningSandbox,
    meta: MetaClient,
    receiver: Receiver,
    acme: AccountClient,
    creator: AccountClient,
) -> None:
    fields = [f for f in w.ALL_INSTAGRAM_FIELDS if f != "message_echoes"]
    w.subscribe_webhooks(meta, receiver, [acme, creator], fields=fields)
    creator.send_text(w.DMITRI_AT_CREATOR, "no echo for this one")
    ours = acme.send_text(w.ALICE_AT_ACME, "echo comes under messages")
    events = w.signed_events(w.deliver(sbx, receiver), w.APP_SECRET)
    assert [(type(e), e.mid) for e in events] == [(EchoEvent, ours.message_id)]
