"""Webhook delivery: exact-byte signatures, batching, retries, duplicates, order, echoes."""

from __future__ import annotations

import json
import time
from typing import Any

import requests

from integrations.meta.sandbox import seed as world
from integrations.meta.sandbox.testing import RunningSandbox, running_sandbox
from tests.webhook_receiver import Receiver

from .helpers import ALICE_AT_ACME, TIMEOUT, fb, hub_signature, send_fb, text_to


def _events(receiver: Receiver) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for post in receiver.posts:
        payload = json.loads(post.body)
        for entry in payload["entry"]:
            for key in ("messaging", "standby", "changes"):
                items.extend(
                    {"entry": entry["id"], "channel": key, **i} for i in entry.get(key, [])
                )
    return items


def test_delivery_is_signed_over_the_exact_bytes(
    sandbox: RunningSandbox, receiver: Receiver
) -> None:
    sandbox.configure_webhooks(receiver.url)
    text = "Ol\u00e1 \u2014 see https://shop.example.com/p/1 \U0001f600"
    sandbox.customer("dmitri", "send", account=world.IG_ACME, text=text)
    result = sandbox.flush()
    assert result["delivered"] == 1
    post = receiver.posts[0]
    raw = post.body
    assert post.headers["X-Hub-Signature-256"] == hub_signature(world.APP_SECRET, raw)
    assert b"\\u00e1" in raw
    assert b"\\ud83d\\ude00" in raw
    assert b"https:\\/\\/shop.example.com\\/p\\/1" in raw
    assert raw.isascii()
    reserialised = json.dumps(json.loads(raw)).encode()
    assert hub_signature(world.APP_SECRET, reserialised) != post.headers["X-Hub-Signature-256"]
    payload = json.loads(raw)
    assert payload["object"] == "instagram"
    entry = payload["entry"][0]
    assert entry["id"] == world.IG_ACME
    item = entry["messaging"][0]
    assert item["message"]["text"] == text
    assert item["recipient"]["id"] == world.IG_ACME
    assert item["sender"]["id"] == "6000000000100004"


def test_instagram_login_accounts_are_signed_with_the_instagram_app_secret(
    sandbox: RunningSandbox, receiver: Receiver
) -> None:
    sandbox.configure_webhooks(receiver.url)
    sandbox.customer("dmitri", "send", account=world.IG_CREATOR, text="hey")
    sandbox.flush()
    post = receiver.posts[0]
    assert post.headers["X-Hub-Signature-256"] == hub_signature(world.IG_APP_SECRET, post.body)


def test_several_entries_per_post(sandbox: RunningSandbox, receiver: Receiver) -> None:
    sandbox.configure_webhooks(receiver.url)
    sandbox.customer("alice", "send", account=world.IG_ACME, text="one")
    sandbox.customer("bob", "send", account=world.IG_ACME, text="two")
    sandbox.customer("alice", "send", account=world.IG_BELLA, text="three")
    sandbox.customer("carla", "comment", media_id=world.MEDIA_ACME_POST, text="Price?")
    sandbox.flush()
    assert len(receiver.posts) == 1
    payload = json.loads(receiver.posts[0].body)
    ids = [(e["id"], next(k for k in ("messaging", "changes") if k in e)) for e in payload["entry"]]
    assert (world.IG_ACME, "messaging") in ids
    assert (world.IG_BELLA, "messaging") in ids
    assert (world.IG_ACME, "changes") in ids
    acme = next(e for e in payload["entry"] if e["id"] == world.IG_ACME and "messaging" in e)
    assert len(acme["messaging"]) == 2
    change = next(e for e in payload["entry"] if "changes" in e)["changes"][0]
    assert change["field"] == "comments"
    assert change["value"]["text"] == "Price?"
    assert change["value"]["media"]["id"] == world.MEDIA_ACME_POST


def test_retried_while_receiver_answers_500(sandbox: RunningSandbox, receiver: Receiver) -> None:
    sandbox.configure_webhooks(receiver.url)
    receiver.statuses = [500, 500]
    sandbox.customer("alice", "send", account=world.IG_ACME, text="retry me")
    result = sandbox.flush()
    assert result["delivered"] == 1
    assert result["failed"] == 2
    assert len(receiver.posts) == 3
    assert len({p.body for p in receiver.posts}) == 1
    log = sandbox.control("GET", "webhooks/log")["data"]
    assert [e["status"] for e in log] == [500, 500, 200]


def test_retries_are_bounded(sandbox: RunningSandbox, receiver: Receiver) -> None:
    sandbox.configure_webhooks(receiver.url)
    sandbox.control("POST", "webhooks/options", {"max_attempts": 3})
    receiver.statuses = [500] * 10
    sandbox.customer("alice", "send", account=world.IG_ACME, text="never")
    result = sandbox.flush()
    assert result["dropped"] == 1
    assert len(receiver.posts) == 3


def test_backoff_is_respected_without_force(sandbox: RunningSandbox, receiver: Receiver) -> None:
    sandbox.configure_webhooks(receiver.url)
    sandbox.control("POST", "webhooks/options", {"backoff_base": 30})
    receiver.statuses = [500]
    sandbox.customer("alice", "send", account=world.IG_ACME, text="later")
    first = sandbox.flush(force=False)
    assert first["failed"] == 1
    second = sandbox.flush(force=False)
    assert second["pending"] == 1
    assert len(receiver.posts) == 1


def test_duplicates_on_request(sandbox: RunningSandbox, receiver: Receiver) -> None:
    sandbox.configure_webhooks(receiver.url)
    sandbox.control("POST", "webhooks/options", {"duplicate": 1.0})
    sandbox.customer("alice", "send", account=world.IG_ACME, text="twice")
    sandbox.flush()
    assert len(receiver.posts) == 2
    assert receiver.posts[0].body == receiver.posts[1].body


def test_reordering_on_request(sandbox: RunningSandbox, receiver: Receiver) -> None:
    sandbox.configure_webhooks(receiver.url)
    sandbox.control("POST", "webhooks/options", {"reorder": True})
    for index in range(5):
        sandbox.customer("alice", "send", account=world.IG_ACME, text=f"m{index}")
    sandbox.flush()
    texts = [e["message"]["text"] for e in _events(receiver)]
    assert sorted(texts) == [f"m{i}" for i in range(5)]
    assert texts != sorted(texts)


def test_echo_of_api_send_carries_app_id(sandbox: RunningSandbox, receiver: Receiver) -> None:
    sandbox.configure_webhooks(receiver.url)
    body = text_to(ALICE_AT_ACME, "Thanks!")
    body["message"]["metadata"] = "outbox-42"
    mid = send_fb(sandbox, body).json()["message_id"]
    sandbox.flush()
    echo = _events(receiver)[0]
    assert echo["message"]["mid"] == mid
    assert echo["message"]["is_echo"] is True
    assert echo["message"]["app_id"] == int(world.APP_ID)
    assert echo["message"]["metadata"] == "outbox-42"
    assert echo["sender"]["id"] == world.IG_ACME


def test_standby_when_another_app_owns_the_thread(
    sandbox: RunningSandbox, receiver: Receiver
) -> None:
    sandbox.configure_webhooks(receiver.url)
    sandbox.control("POST", "threads/owner", {"account": world.IG_ACME, "customer": "alice"})
    sandbox.customer("alice", "send", account=world.IG_ACME, text="to the inbox")
    sandbox.flush()
    standby = [e for e in _events(receiver) if e["channel"] == "standby"]
    assert standby[0]["message"]["text"] == "to the inbox"
    refused = send_fb(sandbox, text_to(ALICE_AT_ACME))
    assert refused.json()["error"]["error_subcode"] == 2534037
    owner = requests.get(
        fb(sandbox, f"{world.PAGE_ACME}/thread_owner"),
        params={"recipient": ALICE_AT_ACME, "access_token": world.PAGE_TOKENS[world.PAGE_ACME]},
        timeout=TIMEOUT,
    ).json()
    assert owner["data"][0]["thread_owner"]["app_id"] == "1217981644879628"


def test_customer_event_catalog_shapes(sandbox: RunningSandbox, receiver: Receiver) -> None:
    sandbox.configure_webhooks(receiver.url)
    acme = world.IG_ACME
    mid = sandbox.customer("alice", "send", account=acme, text="orig")["mid"]
    for kind in ("image", "story_mention", "story_reply", "post_share", "reel", "ad_referral"):
        sandbox.customer("alice", "send", account=acme, kind=kind)
    sandbox.customer("alice", "send", account=acme, kind="quick_reply", text="Red", payload="RED")
    sandbox.customer("alice", "edit", account=acme, mid=mid, text="edited")
    sandbox.customer("alice", "unsend", account=acme, mid=mid)
    sent = send_fb(sandbox, text_to(ALICE_AT_ACME, "hi")).json()["message_id"]
    sandbox.customer("alice", "react", account=acme, mid=sent, reaction="love")
    sandbox.customer("alice", "read", account=acme)
    sandbox.customer("alice", "postback", account=acme, title="Track", payload="TRACK")
    sandbox.flush()
    events = [e for e in _events(receiver) if not e.get("message", {}).get("is_echo")]
    attachments = [
        e["message"]["attachments"][0]["type"]
        for e in events
        if "attachments" in e.get("message", {})
    ]
    assert attachments == ["image", "story_mention", "ig_post", "ig_reel"]
    assert any(e.get("message", {}).get("reply_to", {}).get("story") for e in events)
    assert any(e.get("message", {}).get("referral", {}).get("source") == "ADS" for e in events)
    assert any(e.get("message", {}).get("quick_reply") == {"payload": "RED"} for e in events)
    assert any(e.get("message_edit", {}).get("num_edit") == 1 for e in events)
    assert any(e.get("message", {}).get("is_deleted") for e in events)
    reaction = next(e["reaction"] for e in events if "reaction" in e)
    assert reaction == {"mid": sent, "action": "react", "reaction": "love", "emoji": "\u2764\ufe0f"}
    assert any(e.get("read", {}).get("mid") == sent for e in events)
    assert any(e.get("postback", {}).get("payload") == "TRACK" for e in events)


def test_subscription_does_hub_verification(sandbox: RunningSandbox, receiver: Receiver) -> None:
    app_token = f"{world.APP_ID}|{world.APP_SECRET}"
    url = fb(sandbox, f"{world.APP_ID}/subscriptions")
    params = {
        "object": "instagram",
        "callback_url": receiver.url,
        "verify_token": "wrong",
        "fields": "messages,comments",
        "access_token": app_token,
    }
    bad = requests.post(url, data=params, timeout=TIMEOUT)
    assert bad.json()["error"]["code"] == 2200
    params["verify_token"] = receiver.verify_token
    assert requests.post(url, data=params, timeout=TIMEOUT).json() == {"success": True}
    listed = requests.get(url, params={"access_token": app_token}, timeout=TIMEOUT).json()
    assert listed["data"][0]["callback_url"] == receiver.url
    page_token = world.PAGE_TOKENS[world.PAGE_ACME]
    sub_url = fb(sandbox, f"{world.PAGE_ACME}/subscribed_apps")
    missing = requests.post(sub_url, params={"access_token": page_token}, timeout=TIMEOUT)
    assert missing.json()["error"]["code"] == 100
    ok = requests.post(
        sub_url,
        params={"access_token": page_token, "subscribed_fields": "messages,standby"},
        timeout=TIMEOUT,
    )
    assert ok.json() == {"success": True}
    got = requests.get(sub_url, params={"access_token": page_token}, timeout=TIMEOUT).json()
    assert got["data"][0]["id"] == world.APP_ID
    sandbox.customer("alice", "send", account=world.IG_ACME, text="subscribed")
    sandbox.customer("alice", "send", account=world.IG_BELLA, text="not subscribed")
    sandbox.flush()
    assert [e["message"]["text"] for e in _events(receiver)] == ["subscribed"]


def test_background_thread_delivers(receiver: Receiver) -> None:
    with running_sandbox(auto_deliver=True) as sandbox:
        sandbox.configure_webhooks(receiver.url)
        sandbox.customer("alice", "send", account=world.IG_ACME, text="async")
        deadline = time.monotonic() + 5
        while not receiver.posts and time.monotonic() < deadline:
            time.sleep(0.05)
        assert receiver.posts


def test_long_outage_unsubscribes_the_app(sandbox: RunningSandbox, receiver: Receiver) -> None:
    sandbox.configure_webhooks(receiver.url)
    receiver.statuses = [500] * 3
    sandbox.control("POST", "webhooks/options", {"max_attempts": 10, "backoff_base": 30})
    sandbox.customer("alice", "send", account=world.IG_ACME, text="x")
    sandbox.flush(force=False)
    sandbox.advance(hours=2)
    sandbox.flush()
    accounts = sandbox.control("GET", "world")["pages"]
    assert all(not page["subscribed_fields"] for page in accounts)
