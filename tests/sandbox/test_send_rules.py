"""Send API rules answer with Meta's error envelopes."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import requests

from integrations.meta.sandbox import seed as world
from integrations.meta.sandbox.testing import RunningSandbox

from .helpers import (
    ACME_TOKEN,
    ALICE_AT_ACME,
    ALICE_AT_NOT_ELIGIBLE,
    BOB_AT_ACME,
    BOB_AT_NO_ACCESS,
    CARLA_AT_ACME,
    CREATOR_TOKEN,
    DMITRI_AT_CREATOR,
    TIMEOUT,
    error_of,
    fb,
    ig,
    send_fb,
    send_ig,
    text_to,
)


def test_text_send_inside_window_returns_ids(sandbox: RunningSandbox) -> None:
    response = send_fb(sandbox, text_to(ALICE_AT_ACME, "Yes, we ship to Lisbon!"))
    assert response.status_code == 200
    body = response.json()
    assert body["recipient_id"] == ALICE_AT_ACME
    assert body["message_id"].startswith("aWdf")
    got = sandbox.received("alice", world.IG_ACME)
    assert [item["text"] for item in got] == ["Yes, we ship to Lisbon!"]


def test_send_is_refused_when_window_closed_on_facebook_host(sandbox: RunningSandbox) -> None:
    response = send_fb(sandbox, text_to(BOB_AT_ACME))
    assert response.status_code == 400
    err = error_of(response)
    assert (err["code"], err["error_subcode"]) == (10, 2018278)
    assert err["type"] == "OAuthException"
    assert err["error_user_msg"]


def test_window_closes_after_24_hours_on_instagram_host(sandbox: RunningSandbox) -> None:
    assert send_ig(sandbox, text_to(DMITRI_AT_CREATOR)).status_code == 200
    sandbox.advance(hours=23)
    response = send_ig(sandbox, text_to(DMITRI_AT_CREATOR))
    assert response.status_code == 403
    err = error_of(response)
    assert (err["code"], err["error_subcode"], err["type"]) == (10, 2534022, "IGApiException")


def test_human_agent_tag_allowed_within_seven_days(sandbox: RunningSandbox) -> None:
    body = {**text_to(BOB_AT_ACME, "Following up"), "messaging_type": "MESSAGE_TAG"}
    body["tag"] = "HUMAN_AGENT"
    assert send_fb(sandbox, body).status_code == 200
    body["recipient"] = {"id": CARLA_AT_ACME}
    err = error_of(send_fb(sandbox, body))
    assert (err["code"], err["error_subcode"]) == (10, 2018278)


def test_human_agent_tag_needs_the_app_feature(sandbox: RunningSandbox) -> None:
    sandbox.control("POST", f"apps/{world.APP_ID}", {"human_agent": False})
    body = {**text_to(BOB_AT_ACME), "messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT"}
    err = error_of(send_fb(sandbox, body))
    assert (err["code"], err["error_subcode"]) == (100, 2018276)


def test_blocked_customer_answers_551(sandbox: RunningSandbox) -> None:
    sandbox.customer("alice", "block", account=world.IG_ACME)
    err = error_of(send_fb(sandbox, text_to(ALICE_AT_ACME)))
    assert err["code"] == 551
    assert err["error_subcode"] == 1545041
    assert err["error_user_title"] == "Message Not Sent"


def test_private_reply_only_once_per_comment(sandbox: RunningSandbox) -> None:
    body = {"recipient": {"comment_id": "17950000000000001"}, "message": {"text": "Sent you a DM"}}
    first = send_fb(sandbox, body)
    assert first.status_code == 200
    assert first.json()["recipient_id"] == "6000000000100004"
    err = error_of(send_fb(sandbox, body))
    assert (err["code"], err["error_subcode"]) == (100, 2534025)
    follow_up = send_fb(sandbox, text_to("6000000000100004", "and another"))
    assert error_of(follow_up)["code"] == 10


def test_private_reply_refused_after_seven_days(sandbox: RunningSandbox) -> None:
    body = {"recipient": {"comment_id": "17950000000000002"}, "message": {"text": "Late"}}
    err = error_of(send_fb(sandbox, body))
    assert (err["code"], err["error_subcode"]) == (100, 2534025)


def test_private_reply_on_instagram_login(sandbox: RunningSandbox) -> None:
    body = {"recipient": {"comment_id": "17950000000000003"}, "message": {"text": "Thanks!"}}
    response = send_ig(sandbox, body)
    assert response.status_code == 200
    assert response.json()["recipient_id"] == "6000000000300001"


def test_text_over_1000_bytes_is_refused(sandbox: RunningSandbox) -> None:
    ok = send_fb(sandbox, text_to(ALICE_AT_ACME, "a" * 1000))
    assert ok.status_code == 200
    err = error_of(send_fb(sandbox, text_to(ALICE_AT_ACME, "\u00e9" * 501)))
    assert err["code"] == 100


def test_quick_replies_limited_to_13(sandbox: RunningSandbox) -> None:
    replies = [{"content_type": "text", "title": f"Q{i}", "payload": f"P{i}"} for i in range(14)]
    body = text_to(ALICE_AT_ACME, "Pick one")
    body["message"]["quick_replies"] = replies
    assert error_of(send_fb(sandbox, body))["code"] == 100
    body["message"]["quick_replies"] = replies[:13]
    assert send_fb(sandbox, body).status_code == 200


def test_generic_template_limits(sandbox: RunningSandbox) -> None:
    element = {
        "title": "Blue tee",
        "subtitle": "$20",
        "buttons": [{"type": "postback", "title": "Buy", "payload": "BUY"}],
    }
    payload = {"template_type": "generic", "elements": [element] * 11}
    body = {
        "recipient": {"id": ALICE_AT_ACME},
        "message": {"attachment": {"type": "template", "payload": payload}},
    }
    assert error_of(send_fb(sandbox, body))["code"] == 100
    payload["elements"] = [element] * 10
    assert send_fb(sandbox, body).status_code == 200


def test_other_message_kinds(sandbox: RunningSandbox) -> None:
    bodies = [
        {"attachment": {"type": "image", "payload": {"url": "https://cdn.example.com/a.png"}}},
        {"attachment": {"type": "like_heart"}},
        {"attachment": {"type": "MEDIA_SHARE", "payload": {"id": world.MEDIA_ACME_POST}}},
        {
            "attachments": [
                {"type": "image", "payload": {"url": "https://cdn.example.com/1.png"}},
                {"type": "image", "payload": {"url": "https://cdn.example.com/2.png"}},
            ]
        },
    ]
    for message in bodies:
        response = send_fb(sandbox, {"recipient": {"id": ALICE_AT_ACME}, "message": message})
        assert response.status_code == 200, response.text
    for action in ("typing_on", "mark_seen"):
        body = {"recipient": {"id": ALICE_AT_ACME}, "sender_action": action}
        response = send_fb(sandbox, body)
        assert response.json() == {"recipient_id": ALICE_AT_ACME}
    inbound = sandbox.control("GET", f"conversations?account={world.IG_ACME}")["data"]
    alice = next(c for c in inbound if c["customer"] == "alice")
    first_mid = alice["messages"][0]["mid"]
    react = {
        "recipient": {"id": ALICE_AT_ACME},
        "sender_action": "react",
        "payload": {"message_id": first_mid, "reaction": "love"},
    }
    assert send_fb(sandbox, react).status_code == 200
    kinds = [item.get("kind") or item.get("type") for item in sandbox.received("alice")]
    assert kinds == [
        "image",
        "like_heart",
        "media_share",
        "images",
        "typing_on",
        "mark_seen",
        "react",
    ]


def test_attachment_upload_and_reuse(sandbox: RunningSandbox) -> None:
    upload = requests.post(
        fb(sandbox, f"{world.PAGE_ACME}/message_attachments"),
        params={"access_token": ACME_TOKEN},
        json={
            "platform": "instagram",
            "message": {
                "attachment": {
                    "type": "image",
                    "payload": {"url": "https://cdn.example.com/a.png", "is_reusable": True},
                }
            },
        },
        timeout=TIMEOUT,
    )
    attachment_id = upload.json()["attachment_id"]
    message: dict[str, Any] = {
        "attachment": {"type": "image", "payload": {"attachment_id": attachment_id}}
    }
    ok = send_fb(sandbox, {"recipient": {"id": ALICE_AT_ACME}, "message": message})
    assert ok.status_code == 200
    message["attachment"]["payload"]["attachment_id"] = "1"
    bad = send_fb(sandbox, {"recipient": {"id": ALICE_AT_ACME}, "message": message})
    assert (error_of(bad)["code"], error_of(bad)["error_subcode"]) == (100, 2018074)


def test_not_eligible_account_answers_36103(sandbox: RunningSandbox) -> None:
    token = world.IG_TOKENS[world.IG_NOT_ELIGIBLE]
    err = error_of(send_ig(sandbox, text_to(ALICE_AT_NOT_ELIGIBLE), token=token))
    assert err["code"] == 36103
    listing = requests.get(
        ig(sandbox, "me/conversations"), params={"access_token": token}, timeout=TIMEOUT
    )
    assert error_of(listing)["code"] == 36103


def test_message_access_off_answers_2534041(sandbox: RunningSandbox) -> None:
    token = world.IG_TOKENS[world.IG_NO_ACCESS]
    err = error_of(send_ig(sandbox, text_to(BOB_AT_NO_ACCESS), token=token))
    assert (err["code"], err["error_subcode"]) == (200, 2534041)


def test_unknown_recipient_and_ig_id_on_facebook_host(sandbox: RunningSandbox) -> None:
    err = error_of(send_fb(sandbox, text_to("17841499900000001")))
    assert (err["code"], err["error_subcode"]) == (100, 2534014)
    response = requests.post(
        fb(sandbox, f"{world.IG_ACME}/messages"),
        params={"access_token": ACME_TOKEN},
        json=text_to(ALICE_AT_ACME),
        timeout=TIMEOUT,
    )
    assert error_of(response)["code"] == 3


def test_revoked_token_answers_190(sandbox: RunningSandbox) -> None:
    sandbox.control("POST", "tokens/revoke", {"token": ACME_TOKEN, "subcode": 460})
    err = error_of(send_fb(sandbox, text_to(ALICE_AT_ACME)))
    assert (err["code"], err["error_subcode"], err["type"]) == (190, 460, "OAuthException")


def test_revoking_user_token_cascades_to_page_tokens(sandbox: RunningSandbox) -> None:
    sandbox.control("POST", "tokens/revoke", {"token": world.FB_USER_TOKEN, "subcode": 458})
    err = error_of(send_fb(sandbox, text_to(ALICE_AT_ACME)))
    assert (err["code"], err["error_subcode"]) == (190, 458)


def test_expired_token_answers_190_463(sandbox: RunningSandbox) -> None:
    sandbox.advance(days=59)
    err = error_of(send_ig(sandbox, text_to(DMITRI_AT_CREATOR)))
    assert (err["code"], err["error_subcode"]) == (190, 463)
    sandbox.control("POST", "seed", {})
    sandbox.control("POST", "tokens/expire", {"token": CREATOR_TOKEN})
    assert error_of(send_ig(sandbox, text_to(DMITRI_AT_CREATOR)))["error_subcode"] == 463


def test_token_used_on_wrong_host_is_rejected(sandbox: RunningSandbox) -> None:
    err = error_of(send_ig(sandbox, text_to(ALICE_AT_ACME), token=ACME_TOKEN))
    assert err["code"] == 190
    err = error_of(send_fb(sandbox, text_to(ALICE_AT_ACME), token=CREATOR_TOKEN))
    assert err["code"] == 190


def test_appsecret_proof_checked_when_present_and_required_if_set(
    sandbox: RunningSandbox,
) -> None:
    proof = hmac.new(world.APP_SECRET.encode(), ACME_TOKEN.encode(), hashlib.sha256).hexdigest()
    url = fb(sandbox, "me")
    good = requests.get(
        url, params={"access_token": ACME_TOKEN, "appsecret_proof": proof}, timeout=TIMEOUT
    )
    assert good.status_code == 200
    bad = requests.get(
        url, params={"access_token": ACME_TOKEN, "appsecret_proof": "00"}, timeout=TIMEOUT
    )
    assert error_of(bad)["code"] == 100
    sandbox.control("POST", f"apps/{world.APP_ID}", {"require_appsecret_proof": True})
    missing = requests.get(url, params={"access_token": ACME_TOKEN}, timeout=TIMEOUT)
    assert error_of(missing)["code"] == 100
    ig_proof = hmac.new(
        world.IG_APP_SECRET.encode(), CREATOR_TOKEN.encode(), hashlib.sha256
    ).hexdigest()
    on_ig = requests.get(
        ig(sandbox, "me"),
        params={"access_token": CREATOR_TOKEN, "appsecret_proof": ig_proof},
        timeout=TIMEOUT,
    )
    assert on_ig.status_code == 200


def test_rate_limit_613_with_usage_headers(sandbox: RunningSandbox) -> None:
    sandbox.control("POST", "rate_limits", {"send_text": {"limit": 2, "window_s": 60}})
    for _ in range(2):
        assert send_fb(sandbox, text_to(ALICE_AT_ACME)).status_code == 200
    response = send_fb(sandbox, text_to(ALICE_AT_ACME))
    err = error_of(response)
    assert (err["code"], err["error_subcode"]) == (613, 2534040)
    assert err["is_transient"] is True
    usage = json.loads(response.headers["X-Business-Use-Case-Usage"])
    entry = usage[world.IG_ACME][0]
    assert entry["call_count"] == 100
    assert entry["estimated_time_to_regain_access"] >= 1
    assert "call_count" in json.loads(response.headers["X-App-Usage"])
    sandbox.advance(seconds=61)
    assert send_fb(sandbox, text_to(ALICE_AT_ACME)).status_code == 200


def test_injected_faults_for_next_calls(sandbox: RunningSandbox) -> None:
    sandbox.fault(kind="5xx", count=2, status=503)
    sandbox.fault(kind="rate_limit", count=1, code=4)
    for _ in range(2):
        response = send_fb(sandbox, text_to(ALICE_AT_ACME))
        assert response.status_code == 503
        assert error_of(response)["is_transient"] is True
    limited = send_fb(sandbox, text_to(ALICE_AT_ACME))
    assert error_of(limited)["code"] == 4
    assert "X-App-Usage" in limited.headers
    assert send_fb(sandbox, text_to(ALICE_AT_ACME)).status_code == 200


def test_a_spread_fault_fails_every_nth_call_n_times(sandbox: RunningSandbox) -> None:
    sandbox.fault(kind="5xx", count=2, status=503, every=3, match="/messages")
    codes = [send_fb(sandbox, text_to(ALICE_AT_ACME)).status_code for _ in range(8)]
    assert codes == [200, 200, 503, 200, 200, 503, 200, 200]


def test_timeout_fault_delays_the_answer(sandbox: RunningSandbox) -> None:
    sandbox.fault(kind="timeout", count=1, delay=2)
    try:
        requests.get(fb(sandbox, "me"), params={"access_token": ACME_TOKEN}, timeout=0.5)
    except requests.exceptions.ReadTimeout:
        pass
    else:
        raise AssertionError("expected a client timeout")
