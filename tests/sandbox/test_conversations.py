"""Conversations API, message details, profiles, routing, messenger_profile."""

from __future__ import annotations

from typing import Any

import requests

from integrations.meta.sandbox import seed as world
from integrations.meta.sandbox.testing import RunningSandbox

from .helpers import (
    ACME_TOKEN,
    ALICE_AT_ACME,
    CREATOR_TOKEN,
    DMITRI_AT_ACME,
    TIMEOUT,
    error_of,
    fb,
    ig,
)


def _get(url: str, **params: str) -> requests.Response:
    return requests.get(url, params=params, timeout=TIMEOUT)


def test_cursor_pagination_is_stable(sandbox: RunningSandbox) -> None:
    sandbox.control("POST", "rate_limits", {"conversations": {"limit": 100}})
    url = fb(sandbox, f"{world.PAGE_ACME}/conversations")
    first = _get(url, platform="instagram", limit="2", access_token=ACME_TOKEN).json()
    assert len(first["data"]) == 2
    assert set(first["data"][0]) == {"id", "updated_time"}
    assert first["data"][0]["updated_time"].endswith("+0000")
    cursors = first["paging"]["cursors"]
    assert cursors["before"]
    assert cursors["after"]
    second = requests.get(first["paging"]["next"], timeout=TIMEOUT).json()
    assert len(second["data"]) == 1
    assert "next" not in second["paging"]
    ids = [c["id"] for c in first["data"] + second["data"]]
    assert len(set(ids)) == 3
    again = _get(url, platform="instagram", limit="2", access_token=ACME_TOKEN).json()
    assert again["paging"]["cursors"] == cursors
    without_platform = _get(url, access_token=ACME_TOKEN).json()
    assert without_platform["data"] == []


def test_conversation_for_one_user_and_its_messages(sandbox: RunningSandbox) -> None:
    url = fb(sandbox, f"{world.PAGE_ACME}/conversations")
    found = _get(
        url,
        platform="instagram",
        user_id=ALICE_AT_ACME,
        fields="id,participants,messages{id,created_time,from,to,message}",
        access_token=ACME_TOKEN,
    ).json()
    assert len(found["data"]) == 1
    conv = found["data"][0]
    assert conv["participants"]["data"][1] == {"username": "alice", "id": ALICE_AT_ACME}
    message = conv["messages"]["data"][0]
    assert message["message"] == "Hi! Do you ship to Lisbon?"
    assert message["from"] == {"username": "alice", "id": ALICE_AT_ACME}
    assert message["to"]["data"][0]["id"] == world.IG_ACME
    detail = _get(
        fb(sandbox, message["id"]),
        fields="id,created_time,from,to,message",
        access_token=ACME_TOKEN,
    ).json()
    assert detail["message"] == message["message"]
    default = _get(fb(sandbox, message["id"]), access_token=ACME_TOKEN).json()
    assert set(default) == {"id", "created_time"}
    bad = _get(fb(sandbox, message["id"]), fields="nope", access_token=ACME_TOKEN)
    assert error_of(bad)["code"] == 100


def test_only_20_most_recent_messages_have_details(sandbox: RunningSandbox) -> None:
    first = sandbox.customer("alice", "send", account=world.IG_ACME, text="m0")["mid"]
    for index in range(1, 21):
        sandbox.customer("alice", "send", account=world.IG_ACME, text=f"m{index}")
    old = _get(fb(sandbox, first), access_token=ACME_TOKEN)
    assert error_of(old)["code"] == 100


def test_user_profile_needs_consent(sandbox: RunningSandbox) -> None:
    fields = "name,username,profile_pic,is_user_follow_business,is_verified_user"
    alice = _get(fb(sandbox, ALICE_AT_ACME), fields=fields, access_token=ACME_TOKEN).json()
    assert alice["username"] == "alice"
    assert alice["is_user_follow_business"] is True
    dmitri = _get(fb(sandbox, DMITRI_AT_ACME), fields=fields, access_token=ACME_TOKEN)
    assert error_of(dmitri)["code"] == 230


def test_instagram_login_conversations(sandbox: RunningSandbox) -> None:
    listing = _get(
        ig(sandbox, "me/conversations"), platform="instagram", access_token=CREATOR_TOKEN
    )
    assert listing.status_code == 200
    assert len(listing.json()["data"]) == 1


def test_conversation_routing(sandbox: RunningSandbox) -> None:
    base = fb(sandbox, world.PAGE_ACME)
    params = {"access_token": ACME_TOKEN}
    body = {"recipient": {"id": ALICE_AT_ACME}, "target_app_id": "1217981644879628"}
    passed = requests.post(f"{base}/pass_thread_control", params=params, json=body, timeout=10)
    assert passed.json() == {"success": True}
    take = requests.post(f"{base}/take_thread_control", params=params, json=body, timeout=10)
    assert error_of(take)["code"] == 10
    request = requests.post(f"{base}/request_thread_control", params=params, json=body, timeout=10)
    assert request.json() == {"success": True}
    sandbox.control("POST", f"accounts/{world.IG_ACME}", {"take_thread_allowed": True})
    take = requests.post(f"{base}/take_thread_control", params=params, json=body, timeout=10)
    assert take.json() == {"success": True}
    owner = _get(f"{base}/thread_owner", recipient=ALICE_AT_ACME, access_token=ACME_TOKEN).json()
    assert owner["data"][0]["thread_owner"]["app_id"] == world.APP_ID
    released = requests.post(f"{base}/release_thread_control", params=params, json=body, timeout=10)
    assert released.json() == {"success": True}
    idle = _get(f"{base}/thread_owner", recipient=ALICE_AT_ACME, access_token=ACME_TOKEN).json()
    assert idle == {"data": []}


def test_messenger_profile_ice_breakers(sandbox: RunningSandbox) -> None:
    url = fb(sandbox, f"{world.PAGE_ACME}/messenger_profile")
    params = {"access_token": ACME_TOKEN, "platform": "instagram"}
    questions = [{"question": f"Q{i}", "payload": f"P{i}"} for i in range(5)]
    body: dict[str, Any] = {
        "platform": "instagram",
        "ice_breakers": [{"call_to_actions": questions}],
    }
    too_many = requests.post(url, params=params, json=body, timeout=TIMEOUT)
    assert error_of(too_many)["code"] == 100
    body["ice_breakers"][0]["call_to_actions"] = questions[:4]
    assert requests.post(url, params=params, json=body, timeout=TIMEOUT).json()["success"]
    got = _get(url, fields="ice_breakers", **params).json()
    assert got["data"][0]["ice_breakers"][0]["locale"] == "default"
    deleted = requests.delete(
        url, params=params, json={"fields": ["ice_breakers"]}, timeout=TIMEOUT
    )
    assert deleted.json() == {"success": True}
    assert _get(url, fields="ice_breakers", **params).json() == {"data": []}
