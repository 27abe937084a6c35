"""OAuth for both login stacks, end to end through the client (REFERENCE §1, §2, §0.1)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from integrations.meta.client import DEFAULT_FACEBOOK_SCOPES, DEFAULT_INSTAGRAM_SCOPES, MetaClient
from integrations.meta.errors import (
    MetaAuthError,
    MetaPermanentError,
    MetaPermissionError,
    MetaTransientError,
    Reason,
)
from integrations.meta.sandbox.testing import RunningSandbox
from tests.contract import support as w

FB_REDIRECT = "https://app.example.com/oauth/facebook/callback"
IG_REDIRECT = "https://app.example.com/oauth/instagram/callback"
LONG_LIVED_S = 5_183_944
TIMEOUT = 10


def follow_dialog(url: str, **data: object) -> tuple[dict[str, str], str]:
    """Open (GET) or submit (POST ``data``) a dialog; answer the redirect's query and fragment."""
    if data:
        response = requests.post(url, data=data["form"], allow_redirects=False, timeout=TIMEOUT)
    else:
        response = requests.get(url, allow_redirects=False, timeout=TIMEOUT)
    assert response.status_code == 302, response.text[:300]
    location = urlsplit(response.headers["Location"])
    query = {k: v[0] for k, v in parse_qs(location.query).items()}
    return query, location.fragment


def post_form(sbx: RunningSandbox, url: str, **choices: list[str] | str) -> dict[str, str]:
    page = requests.get(url, allow_redirects=False, timeout=TIMEOUT)
    assert page.status_code == 200
    assert "text/html" in page.headers["Content-Type"]
    form = w.DialogForm(page.text)
    target = f"{sbx.url}{form.action}"
    query, _ = follow_dialog(target, form=form.submit(**choices))
    return query


def around(value: datetime | None, expected: datetime, slack_s: int = 120) -> bool:
    return value is not None and abs((value - expected).total_seconds()) < slack_s


def sandbox_now(sbx: RunningSandbox) -> datetime:
    return datetime.fromtimestamp(sbx.control("GET", "clock")["now_ms"] / 1000, tz=UTC)


# -- Facebook Login for Business -------------------------------------------------------------------


def test_facebook_login_automatic_dialog_to_page_tokens(
    sbx: RunningSandbox, meta: MetaClient
) -> None:
    sbx.control("POST", "oauth/auto", {"mode": "approve"})
    url = meta.facebook_login_url(
        redirect_uri=FB_REDIRECT, state="csrf-1", scopes=DEFAULT_FACEBOOK_SCOPES
    )
    assert url.startswith(f"{sbx.facebook_url}/{w.VERSION}/dialog/oauth?")
    query, fragment = follow_dialog(url)
    assert query["state"] == "csrf-1"
    assert fragment == "_=_"

    short = meta.exchange_facebook_code(code=query["code"], redirect_uri=FB_REDIRECT)
    assert short.access_token
    assert short.token_type == "bearer"
    assert short.expires_in == 3600

    long = meta.exchange_facebook_long_lived_token(short.access_token)
    assert long.access_token != short.access_token
    assert long.expires_in == LONG_LIVED_S

    now = sandbox_now(sbx)
    info = meta.debug_token(long.access_token)
    assert info.is_valid
    assert info.type == "USER"
    assert info.app_id == w.APP_ID
    assert info.user_id == w.FB_USER_ID
    assert set(info.scopes) == set(DEFAULT_FACEBOOK_SCOPES)
    assert around(info.expires_at, now + timedelta(seconds=LONG_LIVED_S))
    assert around(info.data_access_expires_at, now + timedelta(days=90))
    assert around(info.issued_at, now)
    # No page chosen in automatic mode: every Page and linked account is granted.
    assert set(info.targets_for("pages_show_list") or ()) == {w.PAGE_ACME, w.PAGE_BELLA}
    assert set(info.targets_for("instagram_basic") or ()) == {w.IG_ACME, w.IG_BELLA}

    me = meta.facebook_me(long.access_token)
    assert (me.id, me.name) == (w.FB_USER_ID, "Dana Owner")

    pages = {page.id: page for page in meta.list_pages(long.access_token)}
    assert set(pages) == {w.PAGE_ACME, w.PAGE_BELLA}
    acme = pages[w.PAGE_ACME]
    assert acme.name == "Acme Store"
    assert acme.can_message
    assert acme.access_token
    assert acme.instagram_account is not None
    assert acme.instagram_account.id == w.IG_ACME
    assert acme.instagram_account.username == "acme.store"
    assert pages[w.PAGE_BELLA].instagram_account is not None
    assert pages[w.PAGE_BELLA].instagram_account.id == w.IG_BELLA

    page_info = meta.debug_token(acme.access_token)
    assert page_info.is_valid
    assert page_info.type == "PAGE"
    assert page_info.profile_id == w.PAGE_ACME
    assert page_info.expires_at is None  # Page tokens from a long-lived user token never expire

    account = meta.facebook_page(acme.id, acme.access_token)
    sent = account.send_text(w.ALICE_AT_ACME, "Welcome aboard")
    assert sent.recipient_id == w.ALICE_AT_ACME
    assert sent.message_id


def test_facebook_login_by_posting_the_dialog_form_with_one_page(
    sbx: RunningSandbox, meta: MetaClient
) -> None:
    url = meta.facebook_login_url(redirect_uri=FB_REDIRECT, state="csrf-2", config_id="cfg-1")
    query = post_form(sbx, url, action="allow", page=[w.PAGE_BELLA])
    assert query["state"] == "csrf-2"
    token = meta.exchange_facebook_code(code=query["code"], redirect_uri=FB_REDIRECT)
    long = meta.exchange_facebook_long_lived_token(token.access_token)
    info = meta.debug_token(long.access_token)
    assert info.targets_for("pages_show_list") == (w.PAGE_BELLA,)
    assert info.targets_for("instagram_manage_messages") == (w.IG_BELLA,)
    pages = meta.list_pages(long.access_token)
    assert [p.id for p in pages] == [w.PAGE_BELLA]
    page = meta.get_page(w.PAGE_BELLA, pages[0].access_token or "")
    assert page.instagram_account is not None
    assert page.instagram_account.username == "bella.boutique"
    profile = meta.get_instagram_account(w.IG_BELLA, pages[0].access_token or "")
    assert (profile.id, profile.username) == (w.IG_BELLA, "bella.boutique")


def test_facebook_dialog_cancel_redirects_with_error(sbx: RunningSandbox, meta: MetaClient) -> None:
    url = meta.facebook_login_url(redirect_uri=FB_REDIRECT, state="csrf-3")
    query = post_form(sbx, url, action="deny")
    assert query["error"] == "access_denied"
    assert query["error_reason"] == "user_denied"
    assert query["state"] == "csrf-3"
    assert "code" not in query


def test_facebook_page_without_instagram_scope_hides_the_linked_account(
    sbx: RunningSandbox, meta: MetaClient
) -> None:
    url = meta.facebook_login_url(
        redirect_uri=FB_REDIRECT, state="s", scopes=["pages_show_list", "pages_manage_metadata"]
    )
    query = post_form(sbx, url, action="allow")
    token = meta.exchange_facebook_code(code=query["code"], redirect_uri=FB_REDIRECT)
    pages = meta.list_pages(token.access_token)
    assert pages
    assert all(page.instagram_account is None for page in pages)


def test_facebook_code_is_single_use_and_short_lived(sbx: RunningSandbox, meta: MetaClient) -> None:
    sbx.control("POST", "oauth/auto", {"mode": "approve"})
    code = follow_dialog(meta.facebook_login_url(redirect_uri=FB_REDIRECT, state="s"))[0]["code"]
    with pytest.raises(MetaPermanentError) as wrong_uri:
        meta.exchange_facebook_code(code=code, redirect_uri=FB_REDIRECT + "/other")
    w.assert_error(wrong_uri.value, MetaPermanentError, Reason.INVALID_PARAMETER, 100, 36008)
    meta.exchange_facebook_code(code=code, redirect_uri=FB_REDIRECT)
    with pytest.raises(MetaPermanentError) as reused:
        meta.exchange_facebook_code(code=code, redirect_uri=FB_REDIRECT)
    w.assert_error(reused.value, MetaPermanentError, Reason.INVALID_PARAMETER, 100, 36009)

    late = follow_dialog(meta.facebook_login_url(redirect_uri=FB_REDIRECT, state="s"))[0]["code"]
    sbx.advance(minutes=11)
    with pytest.raises(MetaPermanentError) as expired:
        meta.exchange_facebook_code(code=late, redirect_uri=FB_REDIRECT)
    w.assert_error(expired.value, MetaPermanentError, Reason.INVALID_PARAMETER, 100, 36007)


def test_facebook_code_exchange_with_wrong_secret_fails(
    sbx: RunningSandbox, make_client: Callable[..., MetaClient], sleeps: list[float]
) -> None:
    sbx.control("POST", "oauth/auto", {"mode": "approve"})
    wrong = make_client(app_secret="not-the-secret")
    code = follow_dialog(wrong.facebook_login_url(redirect_uri=FB_REDIRECT, state="s"))[0]["code"]
    with pytest.raises(MetaTransientError) as caught:
        wrong.exchange_facebook_code(code=code, redirect_uri=FB_REDIRECT)
    assert caught.value.code == 1
    assert sleeps == []  # a code exchange is never retried


def test_debug_token_reports_invalid_tokens_inside_data(
    sbx: RunningSandbox, meta: MetaClient
) -> None:
    sbx.control("POST", "tokens/revoke", {"token": w.USER_TOKEN, "subcode": 460})
    info = meta.debug_token(w.ACME_TOKEN)  # revoked with its user token (cascade)
    assert info.is_valid is False
    assert info.error_code == 190
    assert info.error_subcode == 460
    unknown = meta.debug_token("EAAGnot-a-token")
    assert unknown.is_valid is False
    assert unknown.error_code == 190


# -- Instagram Login -------------------------------------------------------------------------------


def test_instagram_login_automatic_dialog_to_refresh(sbx: RunningSandbox, meta: MetaClient) -> None:
    sbx.control("POST", "oauth/auto", {"mode": "approve", "account_id": w.IG_CREATOR})
    url = meta.instagram_login_url(redirect_uri=IG_REDIRECT, state="csrf-ig", force_reauth=True)
    assert url.startswith(f"{sbx.instagram_url}/oauth/authorize?")
    query, fragment = follow_dialog(url)
    assert query["state"] == "csrf-ig"
    assert fragment == "_"

    # Codes are copied with the trailing "#_" at times; the client strips it.
    short = meta.exchange_instagram_code(code=query["code"] + "#_", redirect_uri=IG_REDIRECT)
    assert short.access_token
    assert short.user_id == w.CREATOR_APP_SCOPED_ID
    assert set(short.permissions) == set(DEFAULT_INSTAGRAM_SCOPES)

    long = meta.exchange_instagram_long_lived_token(short.access_token)
    assert long.token_type == "bearer"
    assert long.expires_in == LONG_LIVED_S

    me = meta.instagram_me(long.access_token)
    assert me.id == w.CREATOR_APP_SCOPED_ID
    assert me.user_id == w.IG_CREATOR
    assert me.business_account_id == w.IG_CREATOR
    assert me.username == "chloe.creates"
    assert me.account_type == "Media_Creator"
    assert me.followers_count is not None

    # Refresh needs a long-lived token at least 24 h old.
    with pytest.raises(MetaPermanentError) as too_recent:
        meta.refresh_instagram_token(long.access_token)
    assert too_recent.value.code == 100
    sbx.advance(hours=25)
    refreshed = meta.refresh_instagram_token(long.access_token)
    assert refreshed.access_token not in (long.access_token, short.access_token)
    assert refreshed.expires_in == LONG_LIVED_S
    assert meta.instagram_me(refreshed.access_token).user_id == w.IG_CREATOR

    # Instagram Login tokens live on graph.instagram.com only: debug_token on the Facebook
    # host does not know them, so the granted scopes come from the exchange answer.
    info = meta.debug_token(refreshed.access_token)
    assert info.is_valid is False
    assert info.error_code == 190


def test_instagram_login_by_posting_the_form_with_fewer_scopes(
    sbx: RunningSandbox, meta: MetaClient
) -> None:
    url = meta.instagram_login_url(redirect_uri=IG_REDIRECT, state="s2")
    scopes = ["instagram_business_basic", "instagram_business_manage_messages"]
    query = post_form(sbx, url, action="allow", scope=scopes, account_id=w.IG_CREATOR)
    assert query["state"] == "s2"
    short = meta.exchange_instagram_code(code=query["code"], redirect_uri=IG_REDIRECT)
    assert list(short.permissions) == scopes
    account = meta.instagram_account(short.access_token)
    assert account.send_text(w.DMITRI_AT_CREATOR, "Thanks!").message_id
    # No instagram_business_manage_comments: private replies are refused (200).
    with pytest.raises(MetaPermissionError) as caught:
        account.send_private_reply(w.COMMENT_ALICE_CREATOR, "Thanks!")
    w.assert_error(caught.value, MetaPermissionError, Reason.PERMISSION_DENIED, 200)


def test_instagram_dialog_cancel(sbx: RunningSandbox, meta: MetaClient) -> None:
    sbx.control("POST", "oauth/auto", {"mode": "deny"})
    query, _ = follow_dialog(meta.instagram_login_url(redirect_uri=IG_REDIRECT, state="s3"))
    assert query == {
        "error": "access_denied",
        "error_reason": "user_denied",
        "error_description": "The user denied your request",
        "state": "s3",
    }


def test_instagram_code_errors_use_the_flat_shape(sbx: RunningSandbox, meta: MetaClient) -> None:
    sbx.control("POST", "oauth/auto", {"mode": "approve"})
    code = follow_dialog(meta.instagram_login_url(redirect_uri=IG_REDIRECT, state="s"))[0]["code"]
    meta.exchange_instagram_code(code=code, redirect_uri=IG_REDIRECT)
    with pytest.raises(MetaPermanentError) as reused:
        meta.exchange_instagram_code(code=code, redirect_uri=IG_REDIRECT)
    err = reused.value
    assert err.reason == Reason.OAUTH_ERROR
    assert (err.code, err.http_status, err.error_type) == (400, 400, "OAuthException")
    assert "already used" in err.message

    late = follow_dialog(meta.instagram_login_url(redirect_uri=IG_REDIRECT, state="s"))[0]["code"]
    sbx.advance(minutes=61)  # Instagram codes live one hour
    with pytest.raises(MetaPermanentError) as expired:
        meta.exchange_instagram_code(code=late, redirect_uri=IG_REDIRECT)
    assert expired.value.reason == Reason.OAUTH_ERROR


def test_refresh_of_short_lived_or_expired_tokens_fails(
    sbx: RunningSandbox, meta: MetaClient
) -> None:
    sbx.control("POST", "oauth/auto", {"mode": "approve"})
    code = follow_dialog(meta.instagram_login_url(redirect_uri=IG_REDIRECT, state="s"))[0]["code"]
    short = meta.exchange_instagram_code(code=code, redirect_uri=IG_REDIRECT)
    sbx.advance(hours=25)
    with pytest.raises(MetaAuthError) as expired_short:
        meta.refresh_instagram_token(short.access_token)  # short-lived: one hour, now dead
    w.assert_error(expired_short.value, MetaAuthError, Reason.TOKEN_EXPIRED, 190, 463)
    sbx.control("POST", "tokens/expire", {"token": w.CREATOR_TOKEN})
    with pytest.raises(MetaAuthError) as expired_long:
        meta.refresh_instagram_token(w.CREATOR_TOKEN)
    w.assert_error(expired_long.value, MetaAuthError, Reason.TOKEN_EXPIRED, 190, 463)


# -- /me on both hosts and the host split (§0.1) ---------------------------------------------------


def test_me_on_both_hosts(meta: MetaClient) -> None:
    user = meta.facebook_me(w.USER_TOKEN)
    assert (user.id, user.name) == (w.FB_USER_ID, "Dana Owner")
    page = meta.facebook_me(w.ACME_TOKEN)
    assert (page.id, page.name) == (w.PAGE_ACME, "Acme Store")
    ig = meta.instagram_me(w.CREATOR_TOKEN)
    assert (ig.id, ig.user_id, ig.username) == (
        w.CREATOR_APP_SCOPED_ID,
        w.IG_CREATOR,
        "chloe.creates",
    )


@pytest.mark.parametrize(
    ("call", "token"),
    [
        ("instagram_me", w.USER_TOKEN),
        ("instagram_me", w.ACME_TOKEN),
        ("facebook_me", w.CREATOR_TOKEN),
        ("list_pages", w.CREATOR_TOKEN),
    ],
)
def test_token_of_the_other_host_is_190(meta: MetaClient, call: str, token: str) -> None:
    with pytest.raises(MetaAuthError) as caught:
        getattr(meta, call)(token)
    w.assert_error(caught.value, MetaAuthError, Reason.TOKEN_INVALID, 190)


def test_refresh_needs_instagram_business_basic(sbx: RunningSandbox, meta: MetaClient) -> None:
    url = meta.instagram_login_url(redirect_uri=IG_REDIRECT, state="s")
    query = post_form(
        sbx,
        url,
        action="allow",
        scope=["instagram_business_manage_messages"],
        account_id=w.IG_CREATOR,
    )
    short = meta.exchange_instagram_code(code=query["code"], redirect_uri=IG_REDIRECT)
    long = meta.exchange_instagram_long_lived_token(short.access_token)
    sbx.advance(hours=25)
    with pytest.raises(MetaPermissionError) as caught:
        meta.refresh_instagram_token(long.access_token)
    w.assert_error(caught.value, MetaPermissionError, Reason.PERMISSION_DENIED, 10)
