"""REFERENCE §13: where docs and real deliveries (or two docs) disagree, both shapes must
work. One test (or parametrised pair) per §13 row; the row is named in each test's name.
Unit-level twins in tests/meta are pointed out where they exist."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

from integrations.meta.client import (
    INSTAGRAM_INBOX_APP_ID,
    AccountClient,
    Host,
    MetaClient,
    MetaConfig,
)
from integrations.meta.errors import (
    MetaError,
    MetaPermanentError,
    MetaPolicyError,
    MetaRateLimitError,
    Reason,
)
from integrations.meta.sandbox.testing import RunningSandbox
from integrations.meta.signatures import (
    SIGNATURE_HEADER,
    meta_json_bytes,
    sign_hub_body,
    verify_hub_signature,
)
from integrations.meta.webhooks import (
    AttachmentMessageEvent,
    CommentEvent,
    ReactionEvent,
    TextMessageEvent,
    UnknownEvent,
    parse_webhook_body,
)
from tests.contract import support as w
from tests.webhook_receiver import Receiver

REDIRECT = "https://app.example.com/oauth/instagram/callback"


def _instagram_code(sbx: RunningSandbox, meta: MetaClient) -> str:
    sbx.control("POST", "oauth/auto", {"mode": "approve", "account_id": w.IG_CREATOR})
    url = meta.instagram_login_url(redirect_uri=REDIRECT, state="s")
    response = requests.get(url, allow_redirects=False, timeout=10)
    return parse_qs(urlsplit(response.headers["Location"]).query)["code"][0]


# Rows 1 and 2 (IG code exchange body; `permissions` type). Twin: tests/meta/test_client.py::
# test_instagram_code_exchange_flat_and_wrapped.
@pytest.mark.parametrize(
    ("shape", "raw_type"),
    [("flat", list), ("data", str)],
    ids=["flat-body-permissions-array", "data-wrapped-permissions-csv"],
)
def test_s13_ig_code_exchange_body_and_permissions_type(
    sbx: RunningSandbox, meta: MetaClient, shape: str, raw_type: type
) -> None:
    sbx.control("POST", "settings", {"ig_code_exchange_shape": shape})
    code = _instagram_code(sbx, meta)
    raw = requests.post(
        f"{sbx.instagram_url}/oauth/access_token",
        data={
            "client_id": w.IG_APP_ID,
            "client_secret": w.IG_APP_SECRET,
            "grant_type": "authorization_code",
            "redirect_uri": REDIRECT,
            "code": code,
        },
        timeout=10,
    ).json()
    body = raw["data"][0] if shape == "data" else raw
    assert isinstance(body["permissions"], raw_type)

    token = meta.exchange_instagram_code(code=_instagram_code(sbx, meta), redirect_uri=REDIRECT)
    assert token.access_token
    assert token.user_id == w.CREATOR_APP_SCOPED_ID  # number or string on the wire
    assert token.permissions == (
        "instagram_business_basic",
        "instagram_business_manage_messages",
        "instagram_business_manage_comments",
    )
    assert meta.instagram_me(token.access_token).user_id == w.IG_CREATOR


# Row 3 (IG /me body). Twin: tests/meta/test_client.py::test_instagram_me_flat_and_wrapped.
def test_s13_ig_me_flat_from_the_sandbox_and_wrapped_in_data(
    meta: MetaClient, config: MetaConfig
) -> None:
    flat = meta.instagram_me(w.CREATOR_TOKEN)
    assert (flat.id, flat.user_id, flat.username) == (
        w.CREATOR_APP_SCOPED_ID,
        w.IG_CREATOR,
        "chloe.creates",
    )
    sample = {
        "data": [
            {
                "id": w.CREATOR_APP_SCOPED_ID,
                "user_id": w.IG_CREATOR,
                "username": "chloe.creates",
                "account_type": "Media_Creator",
            }
        ]
    }
    docs_client = MetaClient(config)
    with responses.RequestsMock() as mock:
        mock.get(f"{config.instagram_graph_url}/{w.VERSION}/me", json=sample)
        wrapped = docs_client.instagram_me(w.CREATOR_TOKEN)
    assert (wrapped.id, wrapped.user_id, wrapped.username, wrapped.account_type) == (
        w.CREATOR_APP_SCOPED_ID,
        w.IG_CREATOR,
        "chloe.creates",
        "Media_Creator",
    )


def _comment_delivery(
    sbx: RunningSandbox, meta: MetaClient, receiver: Receiver, creator: AccountClient
) -> tuple[bytes, dict[str, object]]:
    w.subscribe_webhooks(meta, receiver, [creator])
    sbx.customer("alice", "comment", media_id=w.MEDIA_CREATOR_POST, text="Gorgeous!")
    (post,) = w.deliver(sbx, receiver)
    assert verify_hub_signature(post.body, post.header(SIGNATURE_HEADER), [w.IG_APP_SECRET])
    payload = json.loads(post.body)
    return post.body, payload


# Rows 4 and 5 (comment webhook with or without `changes`; comment id under `id` or
# `comment_id`). Twins: tests/meta/test_webhooks.py::test_flat_comment_shapes and
# ::test_comment_reply_on_ad_with_comment_id_key.
def test_s13_comment_webhook_changes_or_flat_and_id_or_comment_id(
    sbx: RunningSandbox, meta: MetaClient, receiver: Receiver, creator: AccountClient
) -> None:
    raw, payload = _comment_delivery(sbx, meta, receiver, creator)
    entry = payload["entry"][0]  # type: ignore[index]
    change = entry["changes"][0]
    assert change["field"] == "comments"
    comment_id = change["value"]["id"]

    flat_entry = {"id": entry["id"], "time": entry["time"], **change}
    flat_top = dict(change)
    renamed = json.loads(json.dumps(payload))
    value = renamed["entry"][0]["changes"][0]["value"]
    value["comment_id"] = value.pop("id")
    shapes = {
        "changes[] (real deliveries)": raw,
        "entry.field/value (docs sample)": meta_json_bytes(
            {"object": "instagram", "entry": [flat_entry]}
        ),
        "top-level field/value": meta_json_bytes(flat_top),
        "comment_id key (Facebook-login sample)": meta_json_bytes(renamed),
    }
    for name, body in shapes.items():
        (event,) = parse_webhook_body(body)
        assert isinstance(event, CommentEvent), name
        assert event.comment_id == comment_id, name
        assert event.text == "Gorgeous!", name
        assert event.media_id == w.MEDIA_CREATOR_POST, name
    assert creator.send_private_reply(comment_id, "Thank you!").recipient_id == w.ALICE_AT_CREATOR


# Row 6 (webhook deadline 5 s vs 20 s): we acknowledge at once, so either deadline is met;
# an answer slower than the deadline counts as a failure and is delivered again.
@pytest.mark.parametrize("deadline_s", [5.0, 20.0])
def test_s13_webhook_deadline_either_way_we_ack_at_once(
    sbx: RunningSandbox,
    meta: MetaClient,
    receiver: Receiver,
    acme: AccountClient,
    deadline_s: float,
) -> None:
    w.subscribe_webhooks(meta, receiver, [acme])
    sbx.control("POST", "webhooks/options", {"timeout": deadline_s})
    sbx.customer("alice", "send", account="acme.store", text="quick")
    result = sbx.flush()
    assert (result["delivered"], result["failed"]) == (1, 0)
    assert len(receiver.take()) == 1


def test_s13_webhook_deadline_slow_answer_is_retried(
    sbx: RunningSandbox, meta: MetaClient, receiver: Receiver, acme: AccountClient
) -> None:
    w.subscribe_webhooks(meta, receiver, [acme])
    sbx.control("POST", "webhooks/options", {"timeout": 0.2})  # a scaled-down deadline
    receiver.delay = 0.5
    sbx.customer("alice", "send", account="acme.store", text="slow")
    first = sbx.service.dispatcher.flush(force=False)
    assert first["failed"] == 1
    receiver.delay = 0.0
    retried = sbx.flush()
    assert retried["delivered"] == 1
    posts = receiver.take()
    assert len(posts) == 2
    assert posts[0].body == posts[1].body  # the same delivery again: dedupe on mid
    (event,) = w.signed_events(posts[-1:], w.APP_SECRET)
    assert event.dedupe_key.startswith("message:")


# Row 7 (disable after 1 h of failures, older text 8 h): monitor and resubscribe.
@pytest.mark.parametrize("disable_after_h", [1, 8])
def test_s13_disabled_after_failures_then_resubscribe(
    sbx: RunningSandbox,
    meta: MetaClient,
    receiver: Receiver,
    acme: AccountClient,
    creator: AccountClient,
    disable_after_h: int,
) -> None:
    w.subscribe_webhooks(meta, receiver, [acme, creator])
    sbx.control(
        "POST",
        "webhooks/options",
        {"max_attempts": 1, "disable_after_s": disable_after_h * 3600},
    )
    receiver.statuses = [500] * 10
    sbx.customer("alice", "send", account="acme.store", text="one")
    sbx.flush()
    sbx.advance(hours=disable_after_h, minutes=-5)
    sbx.customer("alice", "send", account="acme.store", text="two")
    sbx.flush()
    assert acme.subscribed_apps(), "still subscribed before the threshold"
    sbx.advance(minutes=10)
    sbx.customer("alice", "send", account="acme.store", text="three")
    sbx.flush()
    assert acme.subscribed_apps() == []
    assert creator.subscribed_apps() == []
    receiver.statuses = []
    receiver.take()

    assert acme.subscribe_app()
    assert creator.subscribe_app()
    sbx.customer("alice", "send", account="acme.store", text="after the outage")
    (event,) = w.signed_events(w.deliver(sbx, receiver), w.APP_SECRET)
    assert isinstance(event, TextMessageEvent)
    assert event.text == "after the outage"


# Row 8 (ordering: in order vs out of order): sort by the inner timestamp.
@pytest.mark.parametrize("reorder", [False, True], ids=["in-order", "out-of-order"])
def test_s13_ordering_sort_by_timestamp(
    sbx: RunningSandbox, meta: MetaClient, receiver: Receiver, acme: AccountClient, reorder: bool
) -> None:
    w.subscribe_webhooks(meta, receiver, [acme])
    sbx.control("POST", "webhooks/options", {"reorder": reorder, "batch_max": 2, "seed": 3})
    texts = [f"part {n}" for n in range(6)]
    for text in texts:
        sbx.customer("alice", "send", account="acme.store", text=text)
        sbx.advance(seconds=1)
    events = w.signed_events(w.deliver(sbx, receiver), w.APP_SECRET)
    received = [e.text or "" for e in events if isinstance(e, TextMessageEvent)]
    assert sorted(received) == texts
    if reorder:
        assert received != texts
    ordered = sorted(
        (e for e in events if isinstance(e, TextMessageEvent)), key=lambda e: e.timestamp_ms or 0
    )
    assert [e.text for e in ordered] == texts


# Row 9 (text send rate 100/s vs 300/s): the limit is configurable; hitting it is 613/2534040.
@pytest.mark.parametrize("per_window", [100, 300])
def test_s13_send_rate_limit_is_configurable(
    sbx: RunningSandbox, acme: AccountClient, per_window: int
) -> None:
    sbx.control(
        "POST",
        "rate_limits",
        {"send_text": {"limit": per_window, "window_s": 60}, "reset_counters": True},
    )
    for _ in range(per_window):
        acme.typing_on(w.ALICE_AT_ACME)
    with pytest.raises(MetaRateLimitError) as caught:
        acme.send_text(w.ALICE_AT_ACME, "one more")
    w.assert_error(caught.value, MetaRateLimitError, Reason.MESSAGING_RATE_LIMITED, 613, 2534040)


# Row 10 (reaction values on send: Facebook path `love` only, Instagram Login any emoji).
def test_s13_reaction_values_love_on_facebook_any_emoji_on_instagram(
    sbx: RunningSandbox, acme: AccountClient, creator: AccountClient
) -> None:
    alice_mid = sbx.customer("alice", "send", account="acme.store", text="hi")["mid"]
    assert acme.react(w.ALICE_AT_ACME, alice_mid, "love").recipient_id == w.ALICE_AT_ACME
    with pytest.raises(MetaPermanentError) as caught:
        acme.react(w.ALICE_AT_ACME, alice_mid, "\U0001f602")
    w.assert_error(caught.value, MetaPermanentError, Reason.INVALID_PARAMETER, 100)
    dmitri_mid = sbx.customer("dmitri", "send", account="chloe.creates", text="hi")["mid"]
    assert creator.react(w.DMITRI_AT_CREATOR, dmitri_mid, "\U0001f602").recipient_id
    assert sbx.received("dmitri", account=w.IG_CREATOR)[-1]["reaction"] == "\U0001f602"


# Row 11 (reaction emoji in webhooks: `\u2764\ufe0f` escapes or the raw character; the docs'
# `\u{2764}` form is not JSON). Twin: tests/meta/test_webhooks.py::test_reactions.
def test_s13_reaction_emoji_escaped_or_raw(
    sbx: RunningSandbox, meta: MetaClient, receiver: Receiver, acme: AccountClient
) -> None:
    w.subscribe_webhooks(meta, receiver, [acme])
    acme.send_text(w.ALICE_AT_ACME, "our message")
    w.deliver(sbx, receiver)
    sbx.customer("alice", "react", account="acme.store", reaction="love")
    (post,) = w.deliver(sbx, receiver)
    assert b"\\u2764\\ufe0f" in post.body
    raw_char = json.dumps(json.loads(post.body), ensure_ascii=False).encode("utf-8")
    assert "\u2764\ufe0f".encode() in raw_char
    for body in (post.body, raw_char):
        (event,) = parse_webhook_body(body)
        assert isinstance(event, ReactionEvent)
        assert (event.reaction, event.emoji) == ("love", "\u2764\ufe0f")
    docs_form = post.body.replace(b"\\u2764\\ufe0f", b"\\u{2764}\\u{FE0F}")
    (broken,) = parse_webhook_body(docs_form)
    assert isinstance(broken, UnknownEvent)
    assert broken.reason == "invalid_json"


# Row 12 (post shares: `share` old, `ig_post` new, both at once during the switch).
# Twin: tests/meta/test_webhooks.py::test_post_shares_old_and_new.
@pytest.mark.parametrize("style", ["share", "ig_post", "both"])
def test_s13_post_share_old_new_and_both(
    sbx: RunningSandbox, meta: MetaClient, receiver: Receiver, acme: AccountClient, style: str
) -> None:
    w.subscribe_webhooks(meta, receiver, [acme])
    sbx.customer("alice", "send", account="acme.store", kind="post_share", style=style)
    (event,) = w.signed_events(w.deliver(sbx, receiver), w.APP_SECRET)
    assert isinstance(event, AttachmentMessageEvent)
    (shown,) = event.display_attachments
    assert shown.kind == ("share" if style == "share" else "ig_post")
    assert shown.url


# Row 13 (reel shares: `ig_reel` with `reel_video_id`, older `reel`).
# Twin: tests/meta/test_webhooks.py::test_reels_old_and_new_normalise_to_ig_reel.
def test_s13_reel_share_new_and_legacy(
    sbx: RunningSandbox, meta: MetaClient, receiver: Receiver, acme: AccountClient
) -> None:
    w.subscribe_webhooks(meta, receiver, [acme])
    sbx.customer("alice", "send", account="acme.store", kind="reel", reel_id="18000000000000009")
    (post,) = w.deliver(sbx, receiver)
    legacy = json.loads(post.body)
    attachment = legacy["entry"][0]["messaging"][0]["message"]["attachments"][0]
    legacy["entry"][0]["messaging"][0]["message"]["attachments"] = [
        {"type": "reel", "payload": {"url": attachment["payload"]["url"]}}
    ]
    new_event, legacy_event = (
        parse_webhook_body(post.body).events[0],
        parse_webhook_body(meta_json_bytes(legacy)).events[0],
    )
    assert isinstance(new_event, AttachmentMessageEvent)
    assert isinstance(legacy_event, AttachmentMessageEvent)
    assert new_event.attachments[0].kind == legacy_event.attachments[0].kind == "ig_reel"
    assert new_event.attachments[0].media_id == "18000000000000009"
    assert legacy_event.attachments[0].url == attachment["payload"]["url"]


# Row 14 (which secret signs Instagram Login deliveries: try the Meta and the Instagram app
# secret). Twin: tests/meta/test_signatures.py::test_any_configured_secret_is_accepted.
def test_s13_instagram_login_webhook_secret_meta_or_instagram(
    sbx: RunningSandbox, meta: MetaClient, receiver: Receiver, creator: AccountClient
) -> None:
    w.subscribe_webhooks(meta, receiver, [creator])
    sbx.customer("dmitri", "send", account="chloe.creates", text="hello")
    (post,) = w.deliver(sbx, receiver)
    both = [w.APP_SECRET, w.IG_APP_SECRET]
    assert verify_hub_signature(post.body, post.header(SIGNATURE_HEADER), both)
    assert not verify_hub_signature(post.body, post.header(SIGNATURE_HEADER), [w.APP_SECRET])
    signed_with_meta_secret = sign_hub_body(post.body, w.APP_SECRET)
    assert verify_hub_signature(post.body, signed_with_meta_secret, both)
    assert not verify_hub_signature(post.body, signed_with_meta_secret, [w.IG_APP_SECRET])


# Row 15 (Handover Protocol vs Conversation Routing): routing endpoints work; the HOP-only
# `secondary_receivers` edge is not there.
def test_s13_handover_is_routing_only(meta: MetaClient, acme: AccountClient) -> None:
    assert acme.pass_thread_control(w.ALICE_AT_ACME, INSTAGRAM_INBOX_APP_ID)
    assert acme.thread_owner(w.ALICE_AT_ACME).app_id == INSTAGRAM_INBOX_APP_ID
    with pytest.raises(MetaPermanentError) as caught:
        meta.request(
            "GET",
            Host.FACEBOOK,
            f"{w.PAGE_ACME}/secondary_receivers",
            token=w.ACME_TOKEN,
            params={"fields": "id,name"},
        )
    assert caught.value.code == 100


# Row 16 (subscribing a Page-linked account: `/{ig-id}/subscribed_apps` is error 3 on the
# Facebook host; the Page works).
def test_s13_subscribe_the_page_not_the_instagram_id(meta: MetaClient) -> None:
    with pytest.raises(MetaPermanentError) as caught:
        meta.facebook_page(w.IG_ACME, w.ACME_TOKEN).subscribe_app()
    w.assert_error(caught.value, MetaPermanentError, Reason.CAPABILITY_MISSING, 3)
    page = meta.facebook_page(w.PAGE_ACME, w.ACME_TOKEN)
    assert page.subscribe_app()
    assert page.subscribed_apps()[0].id == w.APP_ID


# Row 17 (outside-window codes 10/2534022, 10/2018278; 551 for blocks): all three mean "do not
# send now", on either host.
@pytest.mark.parametrize(
    ("host", "code", "subcode", "reason"),
    [
        ("facebook", 10, 2534022, Reason.WINDOW_CLOSED),
        ("facebook", 10, 2018278, Reason.WINDOW_CLOSED),
        ("instagram", 10, 2534022, Reason.WINDOW_CLOSED),
        ("instagram", 10, 2018278, Reason.WINDOW_CLOSED),
        ("facebook", 551, None, Reason.PERSON_UNAVAILABLE),
        ("instagram", 551, 1545041, Reason.PERSON_UNAVAILABLE),
    ],
)
def test_s13_outside_window_codes_all_map_to_window_or_unreachable(
    sbx: RunningSandbox,
    acme: AccountClient,
    creator: AccountClient,
    host: str,
    code: int,
    subcode: int | None,
    reason: str,
) -> None:
    sbx.fault(kind="error", code=code, subcode=subcode, host=host, match="/messages")
    account, igsid = (
        (acme, w.ALICE_AT_ACME) if host == "facebook" else (creator, w.DMITRI_AT_CREATOR)
    )
    with pytest.raises(MetaError) as caught:
        account.send_text(igsid, "hello")
    w.assert_error(caught.value, MetaPolicyError, reason, code, subcode)


def test_s13_outside_window_codes_as_the_sandbox_answers_them(
    sbx: RunningSandbox, acme: AccountClient, creator: AccountClient
) -> None:
    with pytest.raises(MetaPolicyError) as facebook:
        acme.send_text(w.CARLA_AT_ACME, "late")
    assert (facebook.value.subcode, facebook.value.reason) == (2018278, Reason.WINDOW_CLOSED)
    sbx.advance(hours=25)
    with pytest.raises(MetaPolicyError) as instagram:
        creator.send_text(w.DMITRI_AT_CREATOR, "late")
    assert (instagram.value.subcode, instagram.value.reason) == (2534022, Reason.WINDOW_CLOSED)
    sbx.customer("alice", "block", account="acme.store")
    with pytest.raises(MetaPolicyError) as blocked:
        acme.send_text(w.ALICE_AT_ACME, "hi")
    assert (blocked.value.code, blocked.value.reason) == (551, Reason.PERSON_UNAVAILABLE)


# Row 18 (data deletion reply: JSON {url, confirmation_code} vs an unquoted JS-object form).
@pytest.mark.django_db
def test_s13_data_deletion_reply_is_json(client: Any) -> None:
    """Our callback answers real JSON with both keys (Meta's page shows an unquoted JS form)."""
    import json
    import time

    from django.conf import settings

    from integrations.meta.signatures import make_signed_request

    signed = make_signed_request(
        {"user_id": "10223344556677880", "issued_at": int(time.time())}, settings.META_APP_SECRET
    )
    response = client.post("/webhooks/meta/data-deletion", {"signed_request": signed})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    body = json.loads(response.content)
    assert set(body) >= {"url", "confirmation_code"}
    assert body["url"].endswith(f"/data-deletion/{body['confirmation_code']}/")
