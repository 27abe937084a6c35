"""Shared helpers for the sandbox tests."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import requests

from integrations.meta.sandbox import seed as world
from integrations.meta.sandbox.testing import RunningSandbox

TIMEOUT = 10
ALICE_AT_ACME = "6000000000100001"
BOB_AT_ACME = "6000000000100002"
CARLA_AT_ACME = "6000000000100003"
DMITRI_AT_ACME = "6000000000100004"
DMITRI_AT_CREATOR = "6000000000300004"
ALICE_AT_NOT_ELIGIBLE = "6000000000400001"
BOB_AT_NO_ACCESS = "6000000000500002"
ACME_TOKEN = world.PAGE_TOKENS[world.PAGE_ACME]
CREATOR_TOKEN = world.IG_TOKENS[world.IG_CREATOR]


def fb(sbx: RunningSandbox, path: str) -> str:
    return f"{sbx.facebook_url}/v25.0/{path.lstrip('/')}"


def ig(sbx: RunningSandbox, path: str) -> str:
    return f"{sbx.instagram_url}/v25.0/{path.lstrip('/')}"


def send_fb(sbx: RunningSandbox, body: dict[str, Any], token: str = ACME_TOKEN) -> Any:
    return requests.post(
        fb(sbx, f"{world.PAGE_ACME}/messages"),
        params={"access_token": token},
        json=body,
        timeout=TIMEOUT,
    )


def send_ig(sbx: RunningSandbox, body: dict[str, Any], token: str = CREATOR_TOKEN) -> Any:
    return requests.post(
        ig(sbx, "me/messages"),
        headers={"Authorization": f"Bearer {token}"},
        json=body,
        timeout=TIMEOUT,
    )


def text_to(igsid: str, text: str = "Hello!") -> dict[str, Any]:
    return {"recipient": {"id": igsid}, "messaging_type": "RESPONSE", "message": {"text": text}}


def error_of(response: Any) -> dict[str, Any]:
    body = response.json()
    assert "error" in body, body
    err = body["error"]
    assert isinstance(err["fbtrace_id"], str)
    assert err["fbtrace_id"]
    assert "type" in err
    assert "message" in err
    return err


def hub_signature(secret: str, raw: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
