"""OAuth dialogs as HTML forms, code exchanges and token lifetimes."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import requests

from integrations.meta.sandbox import seed as world
from integrations.meta.sandbox.testing import RunningSandbox

from .helpers import TIMEOUT, error_of, fb, ig

REDIRECT = "http://127.0.0.1:9/accounts/meta/callback"


def _hidden_fields(html: str) -> dict[str, str]:
    pairs = re.findall(r"<input type='hidden' name='([^']+)' value='([^']*)'>", html)
    return {name: value.replace("&amp;", "&") for name, value in pairs}


def _query(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def test_facebook_dialog_click_through(sandbox: RunningSandbox) -> None:
    dialog = f"{sandbox.facebook_url}/v25.0/dialog/oauth"
    params = {
        "client_id": world.APP_ID,
        "redirect_uri": REDIRECT,
        "state": "st-123",
        "scope": "pages_show_list,pages_manage_metadata,instagram_basic,instagram_manage_messages",
        "response_type": "code",
    }
    page = requests.get(dialog, params=params, timeout=TIMEOUT)
    assert page.status_code == 200
    assert "text/html" in page.headers["Content-Type"]
    assert "Acme Store" in page.text
    assert "Bella Boutique" in page.text
    action = re.search(r'<form method="post" action="([^"]+)"', page.text)
    assert action is not None
    form = _hidden_fields(page.text)
    form_data = [*form.items(), ("user_id", world.FB_USER_ID), ("page", world.PAGE_ACME)]
    form_data += [("scope", s) for s in params["scope"].split(",")]
    form_data.append(("action", "allow"))
    answer = requests.post(
        sandbox.url + action.group(1), data=form_data, allow_redirects=False, timeout=TIMEOUT
    )
    assert answer.status_code == 302
    location = answer.headers["Location"]
    assert location.startswith(REDIRECT)
    query = _query(location)
    assert query["state"] == "st-123"

    exchange = requests.get(
        fb(sandbox, "oauth/access_token"),
        params={
            "client_id": world.APP_ID,
            "client_secret": world.APP_SECRET,
            "redirect_uri": REDIRECT,
            "code": query["code"],
        },
        timeout=TIMEOUT,
    ).json()
    assert exchange["token_type"] == "bearer"
    assert exchange["expires_in"] > 0
    again = requests.get(
        fb(sandbox, "oauth/access_token"),
        params={
            "client_id": world.APP_ID,
            "client_secret": world.APP_SECRET,
            "redirect_uri": REDIRECT,
            "code": query["code"],
        },
        timeout=TIMEOUT,
    )
    assert error_of(again)["error_subcode"] == 36009

    long = requests.get(
        fb(sandbox, "oauth/access_token"),
        params={
            "grant_type": "fb_exchange_token",
            "client_id": world.APP_ID,
            "client_secret": world.APP_SECRET,
            "fb_exchange_token": exchange["access_token"],
        },
        timeout=TIMEOUT,
    ).json()
    assert long["expires_in"] == 5183944
    debug = requests.get(
        fb(sandbox, "debug_token"),
        params={
            "input_token": long["access_token"],
            "access_token": f"{world.APP_ID}|{world.APP_SECRET}",
        },
        timeout=TIMEOUT,
    ).json()["data"]
    assert debug["is_valid"] is True
    assert debug["type"] == "USER"
    assert debug["user_id"] == world.FB_USER_ID
    granular = {g["scope"]: g.get("target_ids") for g in debug["granular_scopes"]}
    assert granular["pages_show_list"] == [world.PAGE_ACME]
    accounts = requests.get(
        fb(sandbox, "me/accounts"),
        params={
            "access_token": long["access_token"],
            "fields": "id,name,access_token,instagram_business_account{id,username}",
        },
        timeout=TIMEOUT,
    ).json()
    assert [p["id"] for p in accounts["data"]] == [world.PAGE_ACME]
    acme = accounts["data"][0]
    assert acme["instagram_business_account"] == {"id": world.IG_ACME, "username": "acme.store"}
    assert "cursors" in accounts["paging"]
    me = requests.get(
        fb(sandbox, "me"), params={"access_token": acme["access_token"]}, timeout=TIMEOUT
    ).json()
    assert me["id"] == world.PAGE_ACME


def test_facebook_dialog_refusal(sandbox: RunningSandbox) -> None:
    dialog = f"{sandbox.facebook_url}/v25.0/dialog/oauth"
    params = {"client_id": world.APP_ID, "redirect_uri": REDIRECT, "state": "s1"}
    page = requests.get(dialog, params=params, timeout=TIMEOUT)
    form = [*_hidden_fields(page.text).items(), ("action", "deny")]
    answer = requests.post(dialog, data=form, allow_redirects=False, timeout=TIMEOUT)
    query = _query(answer.headers["Location"])
    assert query["error"] == "access_denied"
    assert query["error_reason"] == "user_denied"
    assert query["state"] == "s1"


def test_instagram_dialog_click_through_and_tokens(sandbox: RunningSandbox) -> None:
    authorize = f"{sandbox.instagram_url}/oauth/authorize"
    params = {
        "client_id": world.IG_APP_ID,
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": ",".join(world.IG_SCOPES),
        "state": "ig-state",
    }
    page = requests.get(authorize, params=params, timeout=TIMEOUT)
    assert "@chloe.creates" in page.text
    form = [*_hidden_fields(page.text).items(), ("account_id", world.IG_CREATOR)]
    form += [("scope", s) for s in world.IG_SCOPES] + [("action", "allow")]
    answer = requests.post(authorize, data=form, allow_redirects=False, timeout=TIMEOUT)
    location = answer.headers["Location"]
    assert location.endswith("#_")
    query = _query(location.removesuffix("#_"))
    assert query["state"] == "ig-state"
    short = requests.post(
        f"{sandbox.instagram_url}/oauth/access_token",
        data={
            "client_id": world.IG_APP_ID,
            "client_secret": world.IG_APP_SECRET,
            "grant_type": "authorization_code",
            "redirect_uri": REDIRECT,
            "code": query["code"],
        },
        timeout=TIMEOUT,
    ).json()
    assert short["user_id"] == 7190000000000003
    assert short["permissions"] == world.IG_SCOPES
    reused = requests.post(
        f"{sandbox.instagram_url}/oauth/access_token",
        data={
            "client_id": world.IG_APP_ID,
            "client_secret": world.IG_APP_SECRET,
            "grant_type": "authorization_code",
            "redirect_uri": REDIRECT,
            "code": query["code"],
        },
        timeout=TIMEOUT,
    )
    assert reused.status_code == 400
    assert reused.json()["error_type"] == "OAuthException"
    assert "error_message" in reused.json()
    long = requests.get(
        f"{sandbox.instagram_url}/access_token",
        params={
            "grant_type": "ig_exchange_token",
            "client_secret": world.IG_APP_SECRET,
            "access_token": short["access_token"],
        },
        timeout=TIMEOUT,
    ).json()
    assert long["expires_in"] == 5183944
    refresh_params = {"grant_type": "ig_refresh_token", "access_token": long["access_token"]}
    refresh_url = f"{sandbox.instagram_url}/refresh_access_token"
    too_young = requests.get(refresh_url, params=refresh_params, timeout=TIMEOUT)
    assert too_young.status_code == 400
    sandbox.advance(hours=25)
    refreshed = requests.get(refresh_url, params=refresh_params, timeout=TIMEOUT).json()
    assert refreshed["access_token"] != long["access_token"]
    me = requests.get(
        ig(sandbox, "me"),
        params={"fields": "id,user_id,username,account_type", "access_token": long["access_token"]},
        timeout=TIMEOUT,
    ).json()
    assert me == {
        "id": "7190000000000003",
        "user_id": world.IG_CREATOR,
        "username": "chloe.creates",
        "account_type": "Media_Creator",
    }


def test_instagram_dialog_refusal_and_auto_modes(sandbox: RunningSandbox) -> None:
    authorize = f"{sandbox.instagram_url}/oauth/authorize"
    params = {
        "client_id": world.IG_APP_ID,
        "redirect_uri": REDIRECT,
        "scope": "instagram_business_basic",
        "state": "x",
    }
    page = requests.get(authorize, params=params, timeout=TIMEOUT)
    form = [*_hidden_fields(page.text).items(), ("action", "deny")]
    denied = requests.post(authorize, data=form, allow_redirects=False, timeout=TIMEOUT)
    assert _query(denied.headers["Location"])["error"] == "access_denied"
    auto = requests.get(
        authorize,
        params={**params, "sandbox_auto": "approve"},
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert "code" in _query(auto.headers["Location"].removesuffix("#_"))
    sandbox.control("POST", "oauth/auto", {"mode": "deny"})
    dialog = f"{sandbox.facebook_url}/v25.0/dialog/oauth"
    fb_auto = requests.get(
        dialog,
        params={"client_id": world.APP_ID, "redirect_uri": REDIRECT, "state": "y"},
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert _query(fb_auto.headers["Location"])["error"] == "access_denied"


def test_dialog_rejects_unknown_client(sandbox: RunningSandbox) -> None:
    page = requests.get(
        f"{sandbox.facebook_url}/v25.0/dialog/oauth",
        params={"client_id": "1", "redirect_uri": REDIRECT},
        timeout=TIMEOUT,
    )
    assert page.status_code == 400
