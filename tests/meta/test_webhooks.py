"""Webhook parsing: every fixture into its typed event, unknown shapes, and totality.

F4: the ``test_parser_is_total_*``, ``test_body_parser_is_total_over_arbitrary_bytes`` and
``test_fixtures_with_one_value_replaced_still_parse`` properties run Hypothesis at
``META_HYPOTHESIS_EXAMPLES`` examples (10,000 in CI, 500 by default) and check dedupe key
stability; F3's input classes at the parser level are ``test_malformed_shapes_parse_to_unknown``,
``test_invalid_bodies_parse_to_unknown``, ``test_body_with_bom_parses`` and
``test_timestamps_normalised``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from integrations.meta import webhooks as wh
from integrations.meta.webhooks import parse_webhook, parse_webhook_body
from tests.meta.conftest import (
    HYPOTHESIS_EXAMPLES,
    IG_ID,
    IGSID,
    fixture_names,
    load_fixture,
    load_fixture_bytes,
)

MID = (
    "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQxNDAwMDAwMDAwMDAwOjM0MDI4MjM2Njg0MTcxMDMwMTI0NDI1"
    "OTk1MDc"
)

# Fixture file -> the event types it must produce, in order.
EXPECTED: dict[str, list[type[wh.WebhookEvent]]] = {
    "message_text.json": [wh.TextMessageEvent],
    "message_text_meta_escaped.json": [wh.TextMessageEvent],
    "message_image.json": [wh.AttachmentMessageEvent],
    "message_video.json": [wh.AttachmentMessageEvent],
    "message_audio.json": [wh.AttachmentMessageEvent],
    "message_file.json": [wh.AttachmentMessageEvent],
    "message_multiple_images.json": [wh.AttachmentMessageEvent],
    "message_story_mention.json": [wh.StoryMentionEvent],
    "message_share_legacy.json": [wh.AttachmentMessageEvent],
    "message_ig_post.json": [wh.AttachmentMessageEvent],
    "message_share_and_ig_post.json": [wh.AttachmentMessageEvent],
    "message_ig_reel.json": [wh.AttachmentMessageEvent],
    "message_reel_legacy.json": [wh.AttachmentMessageEvent],
    "message_ig_story.json": [wh.AttachmentMessageEvent],
    "message_ephemeral.json": [wh.AttachmentMessageEvent],
    "message_fallback.json": [wh.AttachmentMessageEvent],
    "message_unsupported_type_attachment.json": [wh.AttachmentMessageEvent],
    "message_unsupported.json": [wh.UnsupportedMessageEvent],
    "message_story_reply.json": [wh.StoryReplyEvent],
    "message_reply_to_message.json": [wh.MessageReplyEvent],
    "message_quick_reply.json": [wh.QuickReplyEvent],
    "message_ad_referral.json": [wh.TextMessageEvent],
    "message_echo.json": [wh.EchoEvent],
    "message_echo_without_flag.json": [wh.EchoEvent],
    "message_echo_template.json": [wh.EchoEvent],
    "message_self.json": [wh.EchoEvent],
    "message_deleted.json": [wh.MessageDeletedEvent],
    "message_edit.json": [wh.MessageEditEvent],
    "message_edit_num_edit_string.json": [wh.MessageEditEvent],
    "reaction_react.json": [wh.ReactionEvent],
    "reaction_react_laugh.json": [wh.ReactionEvent],
    "reaction_unreact.json": [wh.ReactionEvent],
    "read.json": [wh.ReadEvent],
    "read_watermark_page.json": [wh.ReadEvent],
    "postback.json": [wh.PostbackEvent],
    "postback_standby.json": [wh.PostbackEvent],
    "referral_igme.json": [wh.ReferralEvent],
    "referral_shortlink.json": [wh.ReferralEvent],
    "referral_product.json": [wh.ReferralEvent],
    "handover_pass.json": [wh.HandoverEvent],
    "handover_take.json": [wh.HandoverEvent],
    "handover_request.json": [wh.HandoverEvent],
    "standby_message.json": [wh.TextMessageEvent],
    "comment.json": [wh.CommentEvent],
    "comment_reply_on_ad.json": [wh.CommentEvent],
    "comment_by_business.json": [wh.CommentEvent],
    "comment_flat_entry.json": [wh.CommentEvent],
    "comment_flat_top_level.json": [wh.CommentEvent],
    "live_comment.json": [wh.LiveCommentEvent],
    "mention_caption.json": [wh.MentionEvent],
    "mention_comment.json": [wh.MentionEvent],
    "dashboard_test_changes.json": [wh.TextMessageEvent],
    "dashboard_test_messaging.json": [wh.TextMessageEvent],
    "legacy_event_type.json": [wh.UnknownEvent],
    "optin.json": [wh.UnknownEvent],
    "story_insights.json": [wh.UnknownEvent],
    "batch_multiple_entries.json": [
        wh.TextMessageEvent,
        wh.ReactionEvent,
        wh.ReadEvent,
        wh.CommentEvent,
    ],
}


def parse_fixture(name: str) -> list[wh.WebhookEvent]:
    return list(parse_webhook_body(load_fixture_bytes(name)))


def only(name: str) -> Any:
    events = parse_fixture(name)
    assert len(events) == 1
    return events[0]


def test_every_fixture_is_listed() -> None:
    assert sorted(EXPECTED) == fixture_names()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_parses_into_expected_types(name: str) -> None:
    events = parse_fixture(name)
    assert [type(e) for e in events] == EXPECTED[name]
    for event in events:
        assert event.dedupe_key
        assert event.raw is not None


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_bytes_and_decoded_json_parse_the_same(name: str) -> None:
    assert parse_webhook(load_fixture(name)) == parse_webhook_body(load_fixture_bytes(name))


def test_text_message_exposes_ids_and_timestamp() -> None:
    event = only("message_text.json")
    assert event.text == "Do you ship to Lisbon?"
    assert event.business_id == IG_ID
    assert event.entry_id == IG_ID
    assert event.customer_id == IGSID
    assert event.mid == MID
    assert event.timestamp_ms == 1718000000000
    assert event.timestamp == datetime(2024, 6, 10, 6, 13, 20, tzinfo=UTC)
    assert event.channel == "messaging"
    assert event.dedupe_key == f"message:{MID}"
    assert not event.is_echo
    assert not event.is_from_business
    assert event.event_type == "message.text"


def test_escaped_text_is_decoded() -> None:
    event = only("message_text_meta_escaped.json")
    assert event.text == "Olá! äöå \U0001f600 see https://shop.example.com/p/1"


@pytest.mark.parametrize("kind", ["image", "video", "audio", "file"])
def test_media_attachment(kind: str) -> None:
    event = only(f"message_{kind}.json")
    (attachment,) = event.attachments
    assert attachment.kind == kind
    assert attachment.url.startswith("https://lookaside.fbsbx.com/")
    assert event.text is None


def test_multiple_images_keep_order() -> None:
    event = only("message_multiple_images.json")
    assert [a.url[-1] for a in event.attachments] == ["1", "2"]


def test_post_shares_old_and_new() -> None:
    legacy = only("message_share_legacy.json")
    assert legacy.attachments[0].kind == "share"
    new = only("message_ig_post.json")
    assert new.attachments[0].kind == "ig_post"
    assert new.attachments[0].media_id == "17900000000000000"
    assert new.attachments[0].title == "caption text"


def test_share_and_ig_post_in_one_message_deduped_for_display() -> None:
    event = only("message_share_and_ig_post.json")
    assert [a.kind for a in event.attachments] == ["share", "ig_post"]
    assert [a.kind for a in event.display_attachments] == ["ig_post"]


def test_reels_old_and_new_normalise_to_ig_reel() -> None:
    new = only("message_ig_reel.json").attachments[0]
    old = only("message_reel_legacy.json").attachments[0]
    assert (new.type, new.kind, new.media_id) == ("ig_reel", "ig_reel", "18000000000000000")
    assert (old.type, old.kind, old.title) == ("reel", "ig_reel", "old reel")


def test_other_attachment_shapes() -> None:
    story = only("message_ig_story.json").attachments[0]
    assert (story.kind, story.media_id) == ("ig_story", "17911111111111111")
    assert story.url is not None
    ephemeral = only("message_ephemeral.json").attachments[0]
    assert (ephemeral.kind, ephemeral.url, ephemeral.payload) == ("ephemeral", None, None)
    fallback = only("message_fallback.json").attachments[0]
    assert (fallback.kind, fallback.title) == ("fallback", "An article")
    unsupported = only("message_unsupported_type_attachment.json").attachments[0]
    assert unsupported.kind == "unsupported"


def test_story_mention_and_story_reply() -> None:
    mention = only("message_story_mention.json")
    assert mention.attachments[0].kind == "story_mention"
    reply = only("message_story_reply.json")
    assert reply.text == "Love this!"
    assert reply.reply_to_story == wh.StoryRef(
        id="17900000000000002",
        url=reply.reply_to_story.url,
        link_sticker_url="https://shop.example.com/summer",
    )


def test_reply_quick_reply_and_ad_referral() -> None:
    assert only("message_reply_to_message.json").reply_to_mid == "aWdfORIGINAL"
    assert only("message_quick_reply.json").quick_reply_payload == "COLOR_RED"
    referral = only("message_ad_referral.json").referral
    assert referral.is_ad
    assert (referral.ad_id, referral.ad_title) == ("238000000", "Summer sale")


def test_echo_swaps_business_and_customer() -> None:
    event = only("message_echo.json")
    assert event.is_echo
    assert event.is_from_business
    assert event.business_id == IG_ID
    assert event.customer_id == IGSID
    assert event.app_id == "123456789"
    assert event.metadata == "outbox:42"
    assert event.dedupe_key == f"message:{MID}"


def test_echo_detected_from_sender_even_without_flag() -> None:
    event = only("message_echo_without_flag.json")
    assert event.is_echo
    assert event.customer_id == IGSID


def test_self_message_flag() -> None:
    assert only("message_self.json").is_self


def test_unsend_edit_and_their_dedupe_keys() -> None:
    deleted = only("message_deleted.json")
    assert deleted.mid == MID
    assert deleted.dedupe_key == f"deleted:{MID}"
    edit = only("message_edit.json")
    assert (edit.text, edit.num_edit, edit.dedupe_key) == ("corrected text", 1, f"edit:{MID}:1")
    assert only("message_edit_num_edit_string.json").num_edit == 2


# Found by F5 (bench/fuzz_parser.py): a ``num_edit`` that ``str.isdigit()`` accepts but ``int()``
# refuses (a superscript, a circled digit, a doubled sign) raised ValueError out of the parser.
# The last value is the fuzzer's input.
@pytest.mark.parametrize(
    ("num_edit", "expected"),
    [
        ("3", 3),
        (" -3 ", -3),
        ("\u0663", 3),  # ARABIC-INDIC DIGIT THREE: a decimal digit int() reads
        ("--1", None),
        ("\u00b2", None),
        ("\u2460", None),
        ("793\u246045531\U0001d7d910 ", None),
    ],
)
def test_edit_num_edit_is_read_or_dropped_never_raised(num_edit: str, expected: int | None) -> None:
    payload = load_fixture("message_edit_num_edit_string.json")
    payload["entry"][0]["messaging"][0]["message_edit"]["num_edit"] = num_edit
    (event,) = parse_webhook(payload).events
    assert isinstance(event, wh.MessageEditEvent)
    assert event.num_edit == expected
    assert event.dedupe_key.startswith(f"edit:{MID}:")
    assert parse_webhook_body(json.dumps(payload).encode()).events[0].num_edit == expected


def test_reactions() -> None:
    react = only("reaction_react.json")
    assert (react.action, react.reaction, react.emoji) == ("react", "love", "\u2764\ufe0f")
    assert not react.is_removal
    laugh = only("reaction_react_laugh.json")
    assert laugh.reaction == "laugh"
    unreact = only("reaction_unreact.json")
    assert unreact.is_removal
    assert unreact.emoji is None
    assert len({react.dedupe_key, laugh.dedupe_key, unreact.dedupe_key}) == 3


def test_reads() -> None:
    assert only("read.json").mid == MID
    page_read = only("read_watermark_page.json")
    assert page_read.object == "page"
    assert page_read.watermark_ms == 1718000000000


def test_postbacks_including_standby_without_payload() -> None:
    postback = only("postback.json")
    assert (postback.title, postback.payload) == ("Track my order", "TRACK_ORDER")
    standby = only("postback_standby.json")
    assert standby.is_standby
    assert standby.channel == "standby"
    assert standby.payload is None


def test_referrals() -> None:
    igme = only("referral_igme.json").referral
    assert igme.is_link
    assert igme.ref == "campaign42"
    assert only("referral_shortlink.json").referral.is_link
    assert only("referral_product.json").referral.product_id == "7000000000000000"


def test_handover() -> None:
    passed = only("handover_pass.json")
    assert passed.action == "pass_thread_control"
    assert passed.new_owner_app_id == "123456"
    assert only("handover_take.json").action == "take_thread_control"
    requested = only("handover_request.json")
    assert requested.requested_owner_app_id == "1217981644879628"


def test_standby_message_is_typed_like_messaging() -> None:
    event = only("standby_message.json")
    assert event.is_standby
    assert event.customer_id == IGSID


def test_comment() -> None:
    event = only("comment.json")
    assert event.comment_id == "17900000000000003"
    assert event.text == "How much is it?"
    assert (event.from_id, event.from_username) == ("17900000000000001", "alice")
    assert event.from_self_ig_scoped_id == IGSID
    assert (event.media_id, event.media_product_type) == ("17900000000000002", "FEED")
    assert event.business_id == IG_ID
    assert event.timestamp_ms == 1718000000000  # entry time in seconds, normalised
    assert event.dedupe_key == "comment:17900000000000003"
    assert not event.is_from_business


def test_comment_reply_on_ad_with_comment_id_key() -> None:
    event = only("comment_reply_on_ad.json")
    assert event.comment_id == "17900000000000006"
    assert event.parent_id == "17900000000000004"
    assert (event.ad_id, event.original_media_id) == ("238000000", "17900000000000002")


def test_comment_by_business_is_flagged() -> None:
    assert only("comment_by_business.json").is_from_business


def test_flat_comment_shapes() -> None:
    nested = only("comment.json")
    flat_entry = only("comment_flat_entry.json")
    top_level = only("comment_flat_top_level.json")
    assert flat_entry.comment_id == top_level.comment_id == nested.comment_id
    assert flat_entry.dedupe_key == nested.dedupe_key == top_level.dedupe_key
    assert flat_entry.business_id == IG_ID
    assert top_level.business_id is None


def test_live_comment_and_mentions() -> None:
    live = only("live_comment.json")
    assert isinstance(live, wh.CommentEvent)
    assert live.field_name == "live_comments"
    caption = only("mention_caption.json")
    assert (caption.media_id, caption.comment_id) == ("17900000000000010", None)
    assert only("mention_comment.json").comment_id == "17900000000000011"


@pytest.mark.parametrize("name", ["dashboard_test_changes.json", "dashboard_test_messaging.json"])
def test_dashboard_test_deliveries(name: str) -> None:
    event = only(name)
    assert event.is_test
    assert event.text == "random_text"
    assert event.timestamp_ms == 1527459824000  # string seconds normalised


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("legacy_event_type.json", "legacy_test_event"),
        ("optin.json", "unsupported_kind:optin"),
        ("story_insights.json", "unsupported_field:story_insights"),
    ],
)
def test_unsupported_kinds_parse_to_unknown(name: str, reason: str) -> None:
    event = only(name)
    assert event.reason == reason


def test_batch_keeps_entries_apart() -> None:
    batch = parse_webhook(load_fixture("batch_multiple_entries.json"))
    assert batch.object == "instagram"
    assert len(batch) == 4
    assert len(batch.for_business(IG_ID)) == 2
    assert len(batch.for_business("17841499999999999")) == 2


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (None, "not_an_object"),
        ([], "not_an_object"),
        ("text", "not_an_object"),
        (42, "not_an_object"),
        ({}, "no_entry_list"),
        ({"object": "instagram", "entry": {}}, "no_entry_list"),
        ({"object": "instagram", "entry": [7]}, "entry_not_an_object"),
        ({"object": "instagram", "entry": [{"id": "1"}]}, "entry_without_events"),
        ({"object": "instagram", "entry": [{"id": "1", "messaging": {}}]}, "messaging_not_a_list"),
        ({"object": "instagram", "entry": [{"id": "1", "messaging": [1]}]}, "item_not_an_object"),
        (
            {"object": "instagram", "entry": [{"id": "1", "messaging": [{"sender": {"id": "2"}}]}]},
            "unrecognised_messaging_item",
        ),
        (
            {"object": "instagram", "entry": [{"id": "1", "changes": [{"field": "x"}]}]},
            "change_without_value:x",
        ),
        (
            {
                "object": "instagram",
                "entry": [{"id": "1", "changes": [{"field": "x", "value": {}}]}],
            },
            "unsupported_field:x",
        ),
    ],
)
def test_malformed_shapes_parse_to_unknown(payload: Any, reason: str) -> None:
    (event,) = parse_webhook(payload)
    assert isinstance(event, wh.UnknownEvent)
    assert event.reason == reason


@pytest.mark.parametrize(
    "raw", [b"", b"{", b"\xff\xfe", b"[" * 100_000 + b"]" * 100_000, b"NaN", "{\ud800}"]
)
def test_invalid_bodies_parse_to_unknown(raw: bytes | str) -> None:
    events = list(parse_webhook_body(raw))
    assert len(events) == 1
    assert isinstance(events[0], wh.UnknownEvent)


def test_unknown_events_of_different_bodies_have_different_keys() -> None:
    a = parse_webhook_body(b"{").events[0]
    b = parse_webhook_body(b"{{").events[0]
    assert a.dedupe_key != b.dedupe_key


def test_body_with_bom_parses() -> None:
    raw = b"\xef\xbb\xbf" + load_fixture_bytes("message_text.json")
    assert isinstance(parse_webhook_body(raw).events[0], wh.TextMessageEvent)


def _text_body(text_bytes: bytes) -> bytes:
    """A one-message delivery whose text is ``text_bytes`` exactly as sent on the wire."""
    body = load_fixture_bytes("message_text.json")
    text = json.loads(body)["entry"][0]["messaging"][0]["message"]["text"]
    return body.replace(json.dumps(text, ensure_ascii=False).encode(), b'"' + text_bytes + b'"')


UTF8_BOM = b"\xef\xbb\xbf"
ACCEPTED = {
    "plain": load_fixture_bytes("message_text.json"),
    "byte-order mark": UTF8_BOM + load_fixture_bytes("message_text.json"),
    "escaped lone surrogate": _text_body(b"\\ud800 half an emoji"),
}
REFUSED = {
    "encoded lone surrogate": _text_body(b"\xed\xa0\x80 half an emoji"),
    "UTF-16": load_fixture_bytes("message_text.json").decode().encode("utf-16"),
    "NaN": _text_body(b'x"}, "seq": NaN, "z": {"a": "'),
    "too deep": b'{"a": ' + b"[" * 65 + b"]" * 65 + b"}",
}


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_the_worker_and_the_parser_accept_the_same_bodies(name: str) -> None:
    from webhooks.processing import decode_body

    raw = ACCEPTED[name]
    assert decode_body(raw)["object"] == "instagram"
    assert isinstance(parse_webhook_body(raw).events[0], wh.TextMessageEvent)


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_the_worker_and_the_parser_refuse_the_same_bodies(name: str) -> None:
    from webhooks.processing import Unprocessable, decode_body

    raw = REFUSED[name]
    with pytest.raises(Unprocessable):
        decode_body(raw)
    (event,) = parse_webhook_body(raw).events
    assert isinstance(event, wh.UnknownEvent)
    assert event.reason == "invalid_json"


@pytest.mark.parametrize(
    ("value", "expected_ms"),
    [
        (1718000000000, 1718000000000),
        (1718000000, 1718000000000),
        ("1718000000", 1718000000000),
        ("1718000000000", 1718000000000),
        (1718000000.5, 1718000000500),
        (0, None),
        (-5, None),
        (True, None),
        ("soon", None),
        (float("nan"), None),
        (10**30, None),
    ],
)
def test_timestamps_normalised(value: Any, expected_ms: int | None) -> None:
    payload = {
        "object": "instagram",
        "entry": [
            {
                "id": IG_ID,
                "messaging": [
                    {
                        "sender": {"id": IGSID},
                        "recipient": {"id": IG_ID},
                        "timestamp": value,
                        "message": {"mid": "m1", "text": "x"},
                    }
                ],
            }
        ],
    }
    assert parse_webhook(payload).events[0].timestamp_ms == expected_ms


# Found by F5 (bench/fuzz_parser.py): an entry time under a millisecond after the epoch
# ("7E-4" seconds) became ``timestamp_ms`` 0, a 1970 timestamp, where zero means "no time".
@pytest.mark.parametrize("entry_time", ["7E-4", 0.0004, 1e-9])
def test_entry_time_under_a_millisecond_counts_as_missing(entry_time: Any) -> None:
    payload = {
        "object": "instagram",
        "entry": [
            {
                "id": IG_ID,
                "time": entry_time,
                "messaging": [
                    {
                        "sender": {"id": IGSID},
                        "recipient": {"id": IG_ID},
                        "message": {"mid": "m1", "text": "x"},
                    }
                ],
            }
        ],
    }
    event = parse_webhook(payload).events[0]
    assert (event.timestamp_ms, event.timestamp) == (None, None)


def test_message_without_mid_still_gets_a_stable_key() -> None:
    payload = {"object": "instagram", "entry": [{"id": "1", "messaging": [{"message": {}}]}]}
    first = parse_webhook(payload).events[0]
    second = parse_webhook(json.loads(json.dumps(payload))).events[0]
    assert first.dedupe_key == second.dedupe_key
    assert first.dedupe_key.startswith("message:")


# --- totality ------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=40,
)

_VOCABULARY = [
    "object", "entry", "id", "time", "messaging", "standby", "changes", "field", "value",
    "sender", "recipient", "timestamp", "message", "mid", "text", "attachments", "attachment",
    "type", "payload", "url", "reply_to", "story", "quick_reply", "referral", "is_echo",
    "is_deleted", "is_unsupported", "message_edit", "num_edit", "reaction", "action", "emoji",
    "read", "watermark", "postback", "title", "pass_thread_control", "take_thread_control",
    "request_thread_control", "comments", "live_comments", "mentions", "from", "media",
    "comment_id", "parent_id", "media_id", "event_type", "optin", "ads_context_data", "product",
]  # fmt: skip
_leaf = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**14), max_value=10**14)
    | st.sampled_from(["", "0", IG_ID, IGSID, "react", "unreact", "image", "ig_post", "reel"])
    | st.sampled_from(["comments", "live_comments", "mentions", "messages", "instagram"])
    | st.text(max_size=5)
)
webhook_like = st.recursive(
    _leaf,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(_VOCABULARY), children, max_size=6)
    ),
    max_leaves=60,
)


def _assert_well_formed(batch: wh.WebhookBatch) -> None:
    assert isinstance(batch, wh.WebhookBatch)
    for event in batch:
        assert isinstance(event, wh.WebhookEvent)
        assert isinstance(event.dedupe_key, str)
        assert event.dedupe_key
        _ = event.timestamp  # must not raise
        if isinstance(event, wh.MessageEvent):
            _ = event.display_attachments


@settings(
    max_examples=HYPOTHESIS_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(json_values)
def test_parser_is_total_over_arbitrary_json(payload: Any) -> None:
    _assert_well_formed(parse_webhook(payload))


@settings(
    max_examples=HYPOTHESIS_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(webhook_like)
def test_parser_is_total_over_webhook_like_json(payload: Any) -> None:
    batch = parse_webhook(payload)
    _assert_well_formed(batch)
    # Dedupe keys are a function of content: parsing a copy gives the same keys.
    again = parse_webhook(json.loads(json.dumps(payload)))
    assert [e.dedupe_key for e in batch] == [e.dedupe_key for e in again]


@settings(max_examples=HYPOTHESIS_EXAMPLES, deadline=None)
@given(st.binary(max_size=200))
def test_body_parser_is_total_over_arbitrary_bytes(raw: bytes) -> None:
    _assert_well_formed(parse_webhook_body(raw))


@settings(max_examples=HYPOTHESIS_EXAMPLES, deadline=None)
@given(st.sampled_from(sorted(EXPECTED)), st.data())
def test_fixtures_with_one_value_replaced_still_parse(name: str, data: st.DataObject) -> None:
    payload = load_fixture(name)
    # Walk to a random node and replace it with arbitrary JSON.
    node: Any = payload
    for _ in range(data.draw(st.integers(min_value=0, max_value=8))):
        if isinstance(node, dict) and node:
            key = data.draw(st.sampled_from(sorted(node)))
            if not isinstance(node[key], dict | list) or data.draw(st.booleans()):
                node[key] = data.draw(json_values)
                break
            node = node[key]
        elif isinstance(node, list) and node:
            index = data.draw(st.integers(min_value=0, max_value=len(node) - 1))
            if not isinstance(node[index], dict | list) or data.draw(st.booleans()):
                node[index] = data.draw(json_values)
                break
            node = node[index]
        else:
            break
    _assert_well_formed(parse_webhook(payload))
