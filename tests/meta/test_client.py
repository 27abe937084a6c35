"""MetaClient at the HTTP boundary (``responses``): auth params, bodies, retries, errors."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import logging
import sys
import types
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

from integrations.meta.client import (
    AccountClient,
    Host,
    MetaClient,
    MetaConfig,
    client_from_settings,
)
from integrations.meta.errors import (
    MetaAuthError,
    MetaError,
    MetaPermanentError,
    MetaPolicyError,
    MetaRateLimitError,
    MetaTransientError,
)
from integrations.meta.models import (
    Button,
    IceBreaker,
    IceBreakerSet,
    PersistentMenu,
    QuickReply,
    TemplateElement,
)
from tests.meta.conftest import (
    APP_ID,
    APP_SECRET,
    IG_APP_ID,
    IG_APP_SECRET,
    IG_ID,
    IG_TOKEN,
    IGSID,
    PAGE_ID,
    PAGE_TOKEN,
)
from tests.meta.test_errors import ERROR_TABLE
from tests.webhook_receiver import Receiver, serving_receiver

FB = "https://graph.facebook.com/v25.0"
IG = "https://graph.instagram.com/v25.0"
MID = "aWdfZAG1faXRlbToxOklHTWVzc2FnZA"


def proof(token: str, secret: str) -> str:
    return hmac.new(secret.encode(), token.encode(), hashlib.sha256).hexdigest()


def query(call: Any) -> dict[str, list[str]]:
    return parse_qs(urlsplit(call.request.url).query)


def body(call: Any) -> Any:
    return json.loads(call.request.body)


@pytest.fixture
def page(client: MetaClient) -> AccountClient:
    return client.facebook_page(PAGE_ID, PAGE_TOKEN)


@pytest.fixture
def ig(client: MetaClient) -> AccountClient:
    return client.instagram_account(IG_TOKEN, IG_ID)


SENT = {"recipient_id": IGSID, "message_id": MID}


# --- auth params and version ---------------------------------------------------------------------


def test_page_call_has_token_proof_and_pinned_version(
    rsps: responses.RequestsMock, page: AccountClient
) -> None:
    rsps.get(f"{FB}/{PAGE_ID}/subscribed_apps", json={"data": []})
    page.subscribed_apps()
    (call,) = rsps.calls
    assert urlsplit(call.request.url).path == f"/v25.0/{PAGE_ID}/subscribed_apps"
    params = query(call)
    assert params["access_token"] == [PAGE_TOKEN]
    assert params["appsecret_proof"] == [proof(PAGE_TOKEN, APP_SECRET)]


def test_instagram_call_uses_instagram_host_and_secret(
    rsps: responses.RequestsMock, ig: AccountClient
) -> None:
    rsps.get(f"{IG}/{IG_ID}/subscribed_apps", json={"data": []})
    ig.subscribed_apps()
    params = query(rsps.calls[0])
    assert params["appsecret_proof"] == [proof(IG_TOKEN, IG_APP_SECRET)]


def test_send_puts_auth_in_query_and_payload_in_json(
    rsps: responses.RequestsMock, page: AccountClient
) -> None:
    rsps.post(f"{FB}/{PAGE_ID}/messages", json=SENT)
    page.send_text(IGSID, "hi")
    call = rsps.calls[0]
    assert query(call)["appsecret_proof"] == [proof(PAGE_TOKEN, APP_SECRET)]
    assert "access_token" not in body(call)
    assert call.request.headers["Content-Type"] == "application/json"


def test_version_and_base_urls_are_configurable(rsps: responses.RequestsMock) -> None:
    config = MetaConfig(
        app_id=APP_ID,
        app_secret=APP_SECRET,
        graph_version="v21.0",
        graph_url="http://127.0.0.1:8765/graph",
        instagram_graph_url="http://127.0.0.1:8765/ig/",
    )
    rsps.get("http://127.0.0.1:8765/graph/v21.0/me", json={"id": "1", "name": "Ann"})
    rsps.get("http://127.0.0.1:8765/ig/v21.0/me", json={"id": "2", "user_id": IG_ID})
    with MetaClient(config) as meta:
        assert meta.facebook_me("tok").name == "Ann"
        assert meta.instagram_me("tok").business_account_id == IG_ID


def test_bad_version_is_refused() -> None:
    with pytest.raises(ValueError, match="graph_version"):
        MetaConfig(graph_version="25")


def test_ids_cannot_change_the_path(rsps: responses.RequestsMock, page: AccountClient) -> None:
    rsps.get(f"{FB}/..%2Fme", json={"id": "x"})
    page.get_user_profile("../me")
    assert urlsplit(rsps.calls[0].request.url).path == "/v25.0/..%2Fme"


# --- Send API bodies -----------------------------------------------------------------------------


def test_send_text(rsps: responses.RequestsMock, page: AccountClient) -> None:
    rsps.post(f"{FB}/{PAGE_ID}/messages", json=SENT)
    result = page.send_text(IGSID, "Hi! How can we help?", reply_to_mid="aWdfOLD", metadata="ob:1")
    assert (result.recipient_id, result.message_id) == (IGSID, MID)
    assert body(rsps.calls[0]) == {
        "recipient": {"id": IGSID},
        "messaging_type": "RESPONSE",
        "message": {"text": "Hi! How can we help?", "metadata": "ob:1"},
        "reply_to": {"mid": "aWdfOLD"},
    }


def test_send_text_with_human_agent_tag(rsps: responses.RequestsMock, ig: AccountClient) -> None:
    rsps.post(f"{IG}/{IG_ID}/messages", json=SENT)
    ig.send_text(IGSID, "Following up on your return.", human_agent=True)
    sent = body(rsps.calls[0])
    assert (sent["messaging_type"], sent["tag"]) == ("MESSAGE_TAG", "HUMAN_AGENT")


def test_send_quick_replies(rsps: responses.RequestsMock, page: AccountClient) -> None:
    rsps.post(f"{FB}/{PAGE_ID}/messages", json=SENT)
    page.send_text(
        IGSID,
        "Pick a size",
        quick_replies=[QuickReply("S", "SIZE_S"), QuickReply(content_type="user_email")],
    )
    assert body(rsps.calls[0])["message"]["quick_replies"] == [
        {"content_type": "text", "title": "S", "payload": "SIZE_S"},
        {"content_type": "user_email"},
    ]


@pytest.mark.parametrize(
    ("kwargs", "payload"),
    [
        ({"url": "https://cdn.example.com/a.png"}, {"url": "https://cdn.example.com/a.png"}),
        ({"attachment_id": "1857777774821032"}, {"attachment_id": "1857777774821032"}),
    ],
)
def test_send_attachment(
    rsps: responses.RequestsMock,
    page: AccountClient,
    kwargs: dict[str, Any],
    payload: dict[str, str],
) -> None:
    rsps.post(f"{FB}/{PAGE_ID}/messages", json=SENT)
    page.send_attachment(IGSID, "image", **kwargs)
    assert body(rsps.calls[0])["message"] == {"attachment": {"type": "image", "payload": payload}}


def test_send_attachment_needs_exactly_one_source(page: AccountClient) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        page.send_attachment(IGSID, "image")
    with pytest.raises(ValueError, match="exactly one"):
        page.send_attachment(IGSID, "image", url="u", attachment_id="a")


def test_send_images_like_heart_and_media_share(
    rsps: responses.RequestsMock, page: AccountClient
) -> None:
    rsps.post(f"{FB}/{PAGE_ID}/messages", json=SENT)
    page.send_images(IGSID, ["https://c/1.png", "https://c/2.png"])
    page.send_like_heart(IGSID)
    page.send_media_share(IGSID, "17900000000000000")
    messages = [body(c)["message"] for c in rsps.calls]
    assert [a["payload"]["url"] for a in messages[0]["attachments"]] == [
        "https://c/1.png",
        "https://c/2.png",
    ]
    assert messages[1] == {"attachment": {"type": "like_heart"}}
    assert messages[2] == {
        "attachment": {"type": "MEDIA_SHARE", "payload": {"id": "17900000000000000"}}
    }


def test_send_generic_and_button_templates(
    rsps: responses.RequestsMock, page: AccountClient
) -> None:
    rsps.post(f"{FB}/{PAGE_ID}/messages", json=SENT)
    page.send_generic_template(
        IGSID,
        [
            TemplateElement(
                title="Blue tee",
                subtitle="$20",
                image_url="https://cdn.example.com/tee.png",
                default_action_url="https://shop.example.com/tee",
                buttons=(
                    Button("web_url", "View", url="https://shop.example.com/tee"),
                    Button("postback", "Buy", payload="BUY_TEE"),
                ),
            )
        ],
    )
    page.send_button_template(IGSID, "Need help?", [Button("postback", "Human", payload="H")])
    generic = body(rsps.calls[0])["message"]["attachment"]["payload"]
    assert generic["template_type"] == "generic"
    assert generic["elements"][0] == {
        "title": "Blue tee",
        "subtitle": "$20",
        "image_url": "https://cdn.example.com/tee.png",
        "default_action": {"type": "web_url", "url": "https://shop.example.com/tee"},
        "buttons": [
            {"type": "web_url", "title": "View", "url": "https://shop.example.com/tee"},
            {"type": "postback", "title": "Buy", "payload": "BUY_TEE"},
        ],
    }
    button = body(rsps.calls[1])["message"]["attachment"]["payload"]
    assert (button["template_type"], button["text"]) == ("button", "Need help?")


def test_private_reply_addresses_the_comment(
    rsps: responses.RequestsMock, page: AccountClient
) -> None:
    rsps.post(f"{FB}/{PAGE_ID}/messages", json=SENT)
    result = page.send_private_reply("17900000000000003", "Thanks! Details in DM.")
    assert result.recipient_id == IGSID
    assert body(rsps.calls[0]) == {
        "recipient": {"comment_id": "17900000000000003"},
        "message": {"text": "Thanks! Details in DM."},
    }


def test_reactions_and_sender_actions(rsps: responses.RequestsMock, ig: AccountClient) -> None:
    rsps.post(f"{IG}/{IG_ID}/messages", json={"recipient_id": IGSID})
    assert ig.react(IGSID, MID).message_id is None
    ig.unreact(IGSID, MID)
    ig.typing_on(IGSID)
    ig.typing_off(IGSID)
    ig.mark_seen(IGSID)
    sent = [body(c) for c in rsps.calls]
    assert sent[0] == {
        "recipient": {"id": IGSID},
        "sender_action": "react",
        "payload": {"message_id": MID, "reaction": "love"},
    }
    assert sent[1]["payload"] == {"message_id": MID}
    assert [s["sender_action"] for s in sent[2:]] == ["typing_on", "typing_off", "mark_seen"]
    assert all(set(s) == {"recipient", "sender_action"} for s in sent[2:])


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda a: a.send_text(IGSID, "x" * 1001), "1000 bytes"),
        (lambda a: a.send_text(IGSID, "é" * 501), "1000 bytes"),
        (lambda a: a.send_text(IGSID, ""), "empty"),
        (lambda a: a.send_text(IGSID, "x", quick_replies=[QuickReply("a", "b")] * 14), "13"),
        (lambda a: a.send_text(IGSID, "x", quick_replies=[QuickReply("a" * 21, "b")]), "1-20"),
        (lambda a: a.send_text("", "x"), "recipient_id"),
        (lambda a: a.send_text(IGSID, "x", metadata="m" * 1001), "metadata"),
        (lambda a: a.send_images(IGSID, ["u"] * 11), "1-10 images"),
        (lambda a: a.send_generic_template(IGSID, [TemplateElement("t")] * 11), "1-10"),
        (lambda a: a.send_generic_template(IGSID, [TemplateElement("t" * 81)]), "1-80"),
        (lambda a: a.send_button_template(IGSID, "t", []), "1-3 buttons"),
        (
            lambda a: a.set_ice_breakers([IceBreakerSet(tuple([IceBreaker("q", "p")] * 5))]),
            "1-4 ice breakers",
        ),
        (lambda a: a.send_sender_action(IGSID, "dance"), "sender action"),
    ],
)
def test_limits_checked_before_any_http(
    rsps: responses.RequestsMock,
    page: AccountClient,
    call: Callable[[AccountClient], Any],
    match: str,
) -> None:
    with pytest.raises(ValueError, match=match):
        call(page)
    assert len(rsps.calls) == 0


# --- errors, retries, timeouts -------------------------------------------------------------------


@pytest.mark.parametrize(("code", "subcode", "cls", "reason"), ERROR_TABLE)
def test_send_error_mapping_for_every_code(
    rsps: responses.RequestsMock,
    page: AccountClient,
    sleeps: list[float],
    graph_error: Callable[..., dict[str, Any]],
    code: int | None,
    subcode: int | None,
    cls: type[MetaError],
    reason: str,
) -> None:
    error_body = (
        graph_error(code, subcode) if code is not None else {"error": {"error_subcode": subcode}}
    )
    status = 500 if code in (1, 2) else 400
    rsps.post(f"{FB}/{PAGE_ID}/messages", json=error_body, status=status)
    with pytest.raises(cls) as info:
        page.send_text(IGSID, "hello")
    assert info.value.reason == reason
    assert info.value.http_status == status
    # A send is never retried, whatever the error.
    assert len(rsps.calls) == 1
    assert sleeps == []


def test_post_send_not_retried_on_5xx(
    rsps: responses.RequestsMock, page: AccountClient, sleeps: list[float]
) -> None:
    rsps.post(f"{FB}/{PAGE_ID}/messages", body="<html>oops</html>", status=502)
    with pytest.raises(MetaTransientError) as info:
        page.send_text(IGSID, "hello")
    assert info.value.reason == "server_error"
    assert len(rsps.calls) == 1
    assert sleeps == []


def test_get_retried_on_5xx_then_succeeds(
    rsps: responses.RequestsMock, page: AccountClient, sleeps: list[float]
) -> None:
    url = f"{FB}/{PAGE_ID}/subscribed_apps"
    rsps.get(url, status=503, body="unavailable")
    rsps.get(url, status=500, json={"error": {"code": 2, "message": "temporary"}})
    rsps.get(url, json={"data": [{"id": APP_ID, "subscribed_fields": ["messages"]}]})
    (app,) = page.subscribed_apps()
    assert app.subscribed_fields == ("messages",)
    assert len(rsps.calls) == 3
    assert sleeps == [0.5, 1.0]


def test_get_gives_up_after_configured_retries(
    rsps: responses.RequestsMock, page: AccountClient, sleeps: list[float]
) -> None:
    rsps.get(f"{FB}/{PAGE_ID}/subscribed_apps", status=500, body="")
    with pytest.raises(MetaTransientError):
        page.subscribed_apps()
    assert len(rsps.calls) == 3
    assert len(sleeps) == 2


def test_get_not_retried_on_permanent_or_auth_errors(
    rsps: responses.RequestsMock,
    page: AccountClient,
    graph_error: Callable[..., dict[str, Any]],
) -> None:
    rsps.get(f"{FB}/{PAGE_ID}/subscribed_apps", json=graph_error(190, 460), status=400)
    with pytest.raises(MetaAuthError) as info:
        page.subscribed_apps()
    assert info.value.reason == "password_changed"
    assert len(rsps.calls) == 1


def test_get_not_retried_on_rate_limit(
    rsps: responses.RequestsMock,
    page: AccountClient,
    graph_error: Callable[..., dict[str, Any]],
) -> None:
    rsps.get(f"{FB}/{PAGE_ID}/subscribed_apps", json=graph_error(4), status=400)
    with pytest.raises(MetaRateLimitError):
        page.subscribed_apps()
    assert len(rsps.calls) == 1


@pytest.mark.parametrize(
    ("exc", "reason", "may_have_succeeded"),
    [
        (requests.exceptions.ReadTimeout("read timed out"), "timeout", True),
        (requests.exceptions.ConnectTimeout("connect timed out"), "timeout", False),
        (requests.exceptions.ConnectionError("reset by peer"), "connection_error", True),
    ],
)
def test_send_timeouts_map_to_transient(
    rsps: responses.RequestsMock,
    page: AccountClient,
    exc: Exception,
    reason: str,
    may_have_succeeded: bool,
) -> None:
    rsps.post(f"{FB}/{PAGE_ID}/messages", body=exc)
    with pytest.raises(MetaTransientError) as info:
        page.send_text(IGSID, "hello")
    assert info.value.reason == reason
    assert info.value.may_have_succeeded is may_have_succeeded
    assert len(rsps.calls) == 1


def test_get_timeout_is_retried_then_raised(
    rsps: responses.RequestsMock, page: AccountClient, sleeps: list[float]
) -> None:
    rsps.get(f"{FB}/{MID}", body=requests.exceptions.ReadTimeout("slow"))
    with pytest.raises(MetaTransientError) as info:
        page.get_message(MID)
    assert info.value.reason == "timeout"
    assert not info.value.may_have_succeeded
    assert len(rsps.calls) == 3


def test_session_is_called_with_connect_and_read_timeouts(
    config: MetaConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}

    def fake_request(self: requests.Session, method: str, url: str, **kwargs: Any) -> Any:
        seen.update(kwargs)
        response = requests.Response()
        response.status_code = 200
        response._content = b'{"id": "1"}'
        return response

    monkeypatch.setattr(requests.Session, "request", fake_request)
    MetaClient(config).facebook_me("tok")
    assert seen["timeout"] == (config.connect_timeout, config.read_timeout)
    assert seen["allow_redirects"] is False


def test_tokens_never_reach_errors_or_logs(
    rsps: responses.RequestsMock, page: AccountClient, caplog: pytest.LogCaptureFixture
) -> None:
    leaky = requests.exceptions.ConnectionError(
        f"HTTPSConnectionPool: Max retries exceeded with url: /v25.0/x?access_token={PAGE_TOKEN}"
    )
    rsps.post(f"{FB}/{PAGE_ID}/messages", body=leaky)
    caplog.set_level(logging.DEBUG, logger="integrations.meta")
    with pytest.raises(MetaTransientError) as info:
        page.send_text(IGSID, "hello")
    assert PAGE_TOKEN not in str(info.value)
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__
    assert PAGE_TOKEN not in caplog.text
    assert PAGE_TOKEN not in repr(page)


def test_success_status_with_error_body_is_an_error(
    rsps: responses.RequestsMock, page: AccountClient, graph_error: Callable[..., dict[str, Any]]
) -> None:
    rsps.post(f"{FB}/{PAGE_ID}/messages", json=graph_error(10, 2534022), status=200)
    with pytest.raises(MetaPolicyError):
        page.send_text(IGSID, "hello")


def test_non_json_success_on_send_is_ambiguous(
    rsps: responses.RequestsMock, page: AccountClient
) -> None:
    rsps.post(f"{FB}/{PAGE_ID}/messages", body="<html>proxy</html>", status=200)
    with pytest.raises(MetaTransientError) as info:
        page.send_text(IGSID, "hello")
    assert info.value.may_have_succeeded


def test_redirects_are_not_followed(rsps: responses.RequestsMock, page: AccountClient) -> None:
    rsps.get(
        f"{FB}/{PAGE_ID}/subscribed_apps",
        status=302,
        headers={"Location": "https://evil.example/"},
    )
    with pytest.raises(MetaPermanentError):
        page.subscribed_apps()
    assert len(rsps.calls) == 1


# --- usage headers -------------------------------------------------------------------------------


def test_usage_headers_are_exposed(rsps: responses.RequestsMock, page: AccountClient) -> None:
    rsps.post(
        f"{FB}/{PAGE_ID}/messages",
        json=SENT,
        headers={
            "X-App-Usage": '{"call_count":28,"total_time":25,"total_cputime":25}',
            "X-Business-Use-Case-Usage": json.dumps(
                {
                    IG_ID: [
                        {
                            "type": "instagram",
                            "call_count": 85,
                            "total_cputime": 3,
                            "total_time": 5,
                            "estimated_time_to_regain_access": 0,
                        }
                    ]
                }
            ),
        },
    )
    page.send_text(IGSID, "hi")
    usage = page.last_usage
    assert usage is not None
    assert usage.app is not None
    assert usage.app.call_count == 28
    (buc,) = usage.for_business(IG_ID)
    assert (buc.type, buc.call_count) == ("instagram", 85)
    assert usage.max_percent == 85
    assert usage.regain_access_seconds is None
    assert page.client.last_usage is usage


def test_usage_cleared_when_headers_absent(
    rsps: responses.RequestsMock, page: AccountClient
) -> None:
    rsps.post(f"{FB}/{PAGE_ID}/messages", json=SENT, headers={"X-App-Usage": '{"call_count":1}'})
    rsps.post(f"{FB}/{PAGE_ID}/messages", json=SENT)
    page.send_text(IGSID, "hi")
    assert page.last_usage is not None
    page.send_text(IGSID, "hi")
    assert page.last_usage is None


def test_garbage_usage_headers_are_ignored(
    rsps: responses.RequestsMock, page: AccountClient
) -> None:
    rsps.post(
        f"{FB}/{PAGE_ID}/messages",
        json=SENT,
        headers={"X-App-Usage": "not json", "X-Business-Use-Case-Usage": '{"1": [5, {"x": 1}]}'},
    )
    page.send_text(IGSID, "hi")
    usage = page.last_usage
    assert usage is not None
    assert usage.app is None
    assert usage.business[0].call_count == 0


# --- OAuth: Facebook Login -----------------------------------------------------------------------


def test_facebook_login_url(client: MetaClient) -> None:
    url = client.facebook_login_url(
        redirect_uri="https://app.example.com/cb",
        state="csrf123",
        config_id="999",
        extras={"setup": {"channel": "IG_API_ONBOARDING"}},
    )
    parts = urlsplit(url)
    assert (parts.netloc, parts.path) == ("www.facebook.com", "/v25.0/dialog/oauth")
    params = parse_qs(parts.query)
    assert params["client_id"] == [APP_ID]
    assert params["state"] == ["csrf123"]
    assert params["config_id"] == ["999"]
    assert params["response_type"] == ["code"]
    assert "scope" not in params
    assert json.loads(params["extras"][0]) == {"setup": {"channel": "IG_API_ONBOARDING"}}


def test_login_urls_need_state(client: MetaClient) -> None:
    with pytest.raises(ValueError, match="state"):
        client.facebook_login_url(redirect_uri="https://x", state="")
    with pytest.raises(ValueError, match="state"):
        client.instagram_login_url(redirect_uri="https://x", state="")


def test_facebook_code_exchange_is_not_retried(
    rsps: responses.RequestsMock, client: MetaClient
) -> None:
    rsps.get(f"{FB}/oauth/access_token", status=500, body="")
    with pytest.raises(MetaTransientError):
        client.exchange_facebook_code(code="CODE", redirect_uri="https://app.example.com/cb")
    assert len(rsps.calls) == 1
    params = query(rsps.calls[0])
    assert params["code"] == ["CODE"]
    assert params["client_secret"] == [APP_SECRET]


def test_facebook_token_exchanges(rsps: responses.RequestsMock, client: MetaClient) -> None:
    rsps.get(
        f"{FB}/oauth/access_token",
        json={"access_token": "EAAGshort", "token_type": "bearer", "expires_in": 3600},
    )
    rsps.get(
        f"{FB}/oauth/access_token",
        json={"access_token": "EAAGlong", "token_type": "bearer", "expires_in": 5183944},
    )
    short = client.exchange_facebook_code(code="C", redirect_uri="https://a/cb")
    long = client.exchange_facebook_long_lived_token(short.access_token)
    assert (long.access_token, long.expires_in) == ("EAAGlong", 5183944)
    assert query(rsps.calls[1])["grant_type"] == ["fb_exchange_token"]
    assert query(rsps.calls[1])["fb_exchange_token"] == ["EAAGshort"]
    assert "EAAGlong" not in repr(long)


def test_debug_token(rsps: responses.RequestsMock, client: MetaClient) -> None:
    rsps.get(
        f"{FB}/debug_token",
        json={
            "data": {
                "app_id": APP_ID,
                "type": "USER",
                "application": "My SaaS",
                "data_access_expires_at": 1735689600,
                "expires_at": 0,
                "is_valid": True,
                "issued_at": 1725321600,
                "scopes": ["pages_show_list", "instagram_manage_messages"],
                "granular_scopes": [
                    {"scope": "pages_show_list", "target_ids": [PAGE_ID]},
                    {"scope": "instagram_manage_messages"},
                ],
                "user_id": "10223",
            }
        },
    )
    info = client.debug_token("EAAGuser")
    params = query(rsps.calls[0])
    assert params["access_token"] == [f"{APP_ID}|{APP_SECRET}"]
    assert params["input_token"] == ["EAAGuser"]
    assert info.is_valid
    assert info.expires_at is None
    assert info.data_access_expires_at is not None
    assert info.targets_for("pages_show_list") == (PAGE_ID,)
    assert info.targets_for("instagram_manage_messages") is None


def test_debug_token_invalid(rsps: responses.RequestsMock, client: MetaClient) -> None:
    rsps.get(
        f"{FB}/debug_token",
        json={"data": {"is_valid": False, "error": {"code": 190, "message": "expired"}}},
    )
    info = client.debug_token("dead")
    assert not info.is_valid
    assert info.error_code == 190


def test_list_pages_follows_paging(rsps: responses.RequestsMock, client: MetaClient) -> None:
    rsps.get(
        f"{FB}/me/accounts",
        json={
            "data": [
                {
                    "id": PAGE_ID,
                    "name": "Acme Store",
                    "access_token": PAGE_TOKEN,
                    "tasks": ["MESSAGING", "MANAGE"],
                    "instagram_business_account": {"id": IG_ID, "username": "acme"},
                }
            ],
            "paging": {
                "cursors": {"after": "QVFIcursor"},
                "next": f"{FB}/me/accounts?access_token=OLD&limit=25&after=QVFIcursor",
            },
        },
    )
    rsps.get(f"{FB}/me/accounts", json={"data": [{"id": "222", "name": "No IG"}]})
    pages = client.list_pages("EAAGuser")
    assert [p.id for p in pages] == [PAGE_ID, "222"]
    assert pages[0].instagram_account is not None
    assert pages[0].instagram_account.username == "acme"
    assert pages[0].can_message
    assert pages[1].instagram_account is None
    second = query(rsps.calls[1])
    assert second["access_token"] == ["EAAGuser"]
    assert second["after"] == ["QVFIcursor"]
    assert second["appsecret_proof"] == [proof("EAAGuser", APP_SECRET)]
    assert PAGE_TOKEN not in repr(pages[0])


def test_next_link_on_another_host_is_not_followed(
    rsps: responses.RequestsMock, client: MetaClient
) -> None:
    rsps.get(
        f"{FB}/me/accounts",
        json={
            "data": [{"id": "1"}],
            "paging": {"cursors": {"after": "C2"}, "next": "https://evil.example/steal"},
        },
    )
    rsps.get(f"{FB}/me/accounts", json={"data": [{"id": "2"}]})
    assert [p.id for p in client.list_pages("tok")] == ["1", "2"]
    assert all(urlsplit(c.request.url).netloc == "graph.facebook.com" for c in rsps.calls)
    assert query(rsps.calls[1])["after"] == ["C2"]


def test_get_page_and_instagram_account(rsps: responses.RequestsMock, client: MetaClient) -> None:
    rsps.get(
        f"{FB}/{PAGE_ID}",
        json={"id": PAGE_ID, "name": "Acme", "instagram_business_account": {"id": IG_ID}},
    )
    rsps.get(f"{FB}/{IG_ID}", json={"id": IG_ID, "username": "acme", "followers_count": 1200})
    assert client.get_page(PAGE_ID, PAGE_TOKEN).instagram_account.id == IG_ID  # type: ignore[union-attr]
    account = client.get_instagram_account(IG_ID, PAGE_TOKEN)
    assert (account.business_account_id, account.followers_count) == (IG_ID, 1200)


# --- OAuth: Instagram Login ----------------------------------------------------------------------


def test_instagram_login_url(client: MetaClient) -> None:
    url = client.instagram_login_url(
        redirect_uri="https://app.example.com/ig", state="s1", force_reauth=True
    )
    parts = urlsplit(url)
    assert (parts.netloc, parts.path) == ("www.instagram.com", "/oauth/authorize")
    params = parse_qs(parts.query)
    assert params["client_id"] == [IG_APP_ID]
    assert params["scope"] == [
        "instagram_business_basic,instagram_business_manage_messages,"
        "instagram_business_manage_comments"
    ]
    assert params["force_reauth"] == ["true"]


@pytest.mark.parametrize(
    "answer",
    [
        {"access_token": "IGQWRshort", "user_id": 10200000000000000, "permissions": ["a", "b"]},
        {
            "data": [
                {"access_token": "IGQWRshort", "user_id": "10200000000000000", "permissions": "a,b"}
            ]
        },
    ],
)
def test_instagram_code_exchange_flat_and_wrapped(
    rsps: responses.RequestsMock, client: MetaClient, answer: dict[str, Any]
) -> None:
    rsps.post("https://api.instagram.com/oauth/access_token", json=answer)
    token = client.exchange_instagram_code(code="AQBx#_", redirect_uri="https://a/ig")
    assert token.access_token == "IGQWRshort"
    assert token.user_id == "10200000000000000"
    assert token.permissions == ("a", "b")
    form = parse_qs(str(rsps.calls[0].request.body))
    assert form["code"] == ["AQBx"]
    assert form["grant_type"] == ["authorization_code"]
    assert form["client_secret"] == [IG_APP_SECRET]


def test_instagram_code_exchange_flat_error(
    rsps: responses.RequestsMock, client: MetaClient
) -> None:
    rsps.post(
        "https://api.instagram.com/oauth/access_token",
        status=400,
        json={"error_type": "OAuthException", "code": 400, "error_message": "code used"},
    )
    with pytest.raises(MetaPermanentError) as info:
        client.exchange_instagram_code(code="AQBx", redirect_uri="https://a/ig")
    assert info.value.reason == "oauth_error"


def test_instagram_long_lived_and_refresh_are_unversioned(
    rsps: responses.RequestsMock, client: MetaClient
) -> None:
    answer = {"access_token": "IGQWRlong", "token_type": "bearer", "expires_in": 5183944}
    rsps.get("https://graph.instagram.com/access_token", json=answer)
    rsps.get("https://graph.instagram.com/refresh_access_token", json=answer)
    assert client.exchange_instagram_long_lived_token("IGQWRshort").expires_in == 5183944
    assert client.refresh_instagram_token("IGQWRlong").access_token == "IGQWRlong"
    first, second = (query(c) for c in rsps.calls)
    assert first["grant_type"] == ["ig_exchange_token"]
    assert first["client_secret"] == [IG_APP_SECRET]
    assert first["access_token"] == ["IGQWRshort"]
    assert second["grant_type"] == ["ig_refresh_token"]
    assert second["appsecret_proof"] == [proof("IGQWRlong", IG_APP_SECRET)]


def test_refresh_of_dead_token_is_auth_error(
    rsps: responses.RequestsMock, client: MetaClient, graph_error: Callable[..., dict[str, Any]]
) -> None:
    rsps.get("https://graph.instagram.com/refresh_access_token", json=graph_error(190), status=400)
    with pytest.raises(MetaAuthError):
        client.refresh_instagram_token("IGQWRlong")


def test_token_answer_without_token_is_an_error(
    rsps: responses.RequestsMock, client: MetaClient
) -> None:
    rsps.get("https://graph.instagram.com/access_token", json={"token_type": "bearer"})
    with pytest.raises(MetaPermanentError):
        client.exchange_instagram_long_lived_token("x")


@pytest.mark.parametrize(
    "answer",
    [
        {
            "id": "7190000000000000",
            "user_id": IG_ID,
            "username": "acme",
            "account_type": "Business",
        },
        {"data": [{"id": "7190000000000000", "user_id": IG_ID, "username": "acme"}]},
    ],
)
def test_instagram_me_flat_and_wrapped(
    rsps: responses.RequestsMock, client: MetaClient, answer: dict[str, Any]
) -> None:
    rsps.get(f"{IG}/me", json=answer)
    me = client.instagram_me(IG_TOKEN)
    assert me.business_account_id == IG_ID
    assert me.id == "7190000000000000"
    assert "user_id" in query(rsps.calls[0])["fields"][0]


# --- subscriptions -------------------------------------------------------------------------------


def test_subscribe_list_unsubscribe(rsps: responses.RequestsMock, page: AccountClient) -> None:
    url = f"{FB}/{PAGE_ID}/subscribed_apps"
    rsps.post(url, json={"success": True})
    rsps.get(
        url,
        json={"data": [{"id": APP_ID, "name": "My SaaS", "subscribed_fields": ["messages"]}]},
    )
    rsps.delete(url, json={"success": True})
    assert page.subscribe_app(["messages", "messaging_postbacks"])
    assert page.subscribed_apps()[0].name == "My SaaS"
    assert page.unsubscribe_app()
    assert query(rsps.calls[0])["subscribed_fields"] == ["messages,messaging_postbacks"]


def test_instagram_subscribe_defaults(rsps: responses.RequestsMock, client: MetaClient) -> None:
    rsps.post(f"{IG}/me/subscribed_apps", json={"success": True})
    assert client.instagram_account(IG_TOKEN).subscribe_app()
    fields = query(rsps.calls[0])["subscribed_fields"][0].split(",")
    assert {"messages", "comments", "message_reactions", "messaging_seen"} <= set(fields)


def test_app_subscriptions(rsps: responses.RequestsMock, client: MetaClient) -> None:
    url = f"{FB}/{APP_ID}/subscriptions"
    rsps.post(url, json={"success": True})
    rsps.get(
        url,
        json={
            "data": [
                {
                    "object": "instagram",
                    "callback_url": "https://x/wh",
                    "active": True,
                    "fields": [{"name": "messages", "version": "v25.0"}],
                }
            ]
        },
    )
    assert client.set_app_subscription(
        object="instagram", callback_url="https://x/wh", verify_token="S", fields=["messages"]
    )
    (sub,) = client.list_app_subscriptions()
    assert (sub.object, sub.active, sub.fields) == ("instagram", True, ("messages",))
    assert query(rsps.calls[0])["access_token"] == [f"{APP_ID}|{APP_SECRET}"]


# --- attachments upload --------------------------------------------------------------------------


def test_upload_attachment_by_url(rsps: responses.RequestsMock, page: AccountClient) -> None:
    rsps.post(f"{FB}/{PAGE_ID}/message_attachments", json={"attachment_id": "1857777774821032"})
    assert page.upload_attachment("image", "https://cdn.example.com/a.png").attachment_id == (
        "1857777774821032"
    )
    assert body(rsps.calls[0]) == {
        "platform": "instagram",
        "message": {
            "attachment": {
                "type": "image",
                "payload": {"url": "https://cdn.example.com/a.png", "is_reusable": True},
            }
        },
    }


def test_upload_attachment_file_is_multipart(
    rsps: responses.RequestsMock, page: AccountClient
) -> None:
    rsps.post(f"{FB}/{PAGE_ID}/message_attachments", json={"attachment_id": "42"})
    result = page.upload_attachment_file(
        "image", filename="a.png", content=b"\x89PNG", content_type="image/png"
    )
    assert result.attachment_id == "42"
    request = rsps.calls[0].request
    assert request.headers["Content-Type"].startswith("multipart/form-data")
    assert isinstance(request.body, bytes)
    assert b'name="filedata"; filename="a.png"' in request.body


def test_upload_without_id_is_an_error(rsps: responses.RequestsMock, page: AccountClient) -> None:
    rsps.post(f"{FB}/{PAGE_ID}/message_attachments", json={})
    with pytest.raises(MetaPermanentError):
        page.upload_attachment("image", "https://cdn.example.com/a.png")
    assert len(rsps.calls) == 1


# --- Conversations API ---------------------------------------------------------------------------


def test_list_and_iterate_conversations(rsps: responses.RequestsMock, page: AccountClient) -> None:
    url = f"{FB}/{PAGE_ID}/conversations"
    rsps.get(
        url,
        json={
            "data": [
                {
                    "id": "aWdfZAG06MTpJR01lc3NhZA2VUaHJlYWQ6MQ",
                    "updated_time": "2024-05-01T12:00:00+0000",
                    "participants": {
                        "data": [
                            {"username": "acme", "id": IG_ID},
                            {"username": "alice", "id": IGSID},
                        ]
                    },
                }
            ],
            "paging": {"cursors": {"after": "A1"}, "next": f"{url}?after=A1&platform=instagram"},
        },
    )
    rsps.get(url, json={"data": [{"id": "conv2"}], "paging": {"cursors": {"before": "B"}}})
    conversations = list(page.iter_conversations())
    assert [c.id for c in conversations] == ["aWdfZAG06MTpJR01lc3NhZA2VUaHJlYWQ6MQ", "conv2"]
    first = conversations[0]
    assert first.updated_time is not None
    assert first.updated_time.year == 2024
    assert [p.username for p in first.participants] == ["acme", "alice"]
    assert query(rsps.calls[0])["platform"] == ["instagram"]
    assert query(rsps.calls[1])["after"] == ["A1"]


def test_list_conversations_single_page_and_find(
    rsps: responses.RequestsMock, ig: AccountClient
) -> None:
    url = f"{IG}/{IG_ID}/conversations"
    rsps.get(url, json={"data": [{"id": "c1"}], "paging": {"cursors": {"after": "A"}}})
    rsps.get(url, json={"data": []})
    page_ = ig.list_conversations(limit=10)
    assert page_.after == "A"
    assert not page_.has_next
    assert query(rsps.calls[0])["limit"] == ["10"]
    assert ig.find_conversation(IGSID) is None
    assert query(rsps.calls[1])["user_id"] == [IGSID]


def test_iterate_stops_on_repeated_next(rsps: responses.RequestsMock, page: AccountClient) -> None:
    url = f"{FB}/{PAGE_ID}/conversations"
    rsps.get(
        url,
        json={"data": [{"id": "c"}], "paging": {"next": f"{url}?after=SAME"}},
    )
    assert len(list(page.iter_conversations())) == 2
    assert len(rsps.calls) == 2


def test_conversation_messages_nested_then_top_level_pages(
    rsps: responses.RequestsMock, page: AccountClient
) -> None:
    rsps.get(
        f"{FB}/conv1",
        json={
            "id": "conv1",
            "messages": {
                "data": [{"id": "m2", "created_time": "2024-05-01T12:00:01+0000"}],
                "paging": {"next": f"{FB}/conv1/messages?after=X"},
            },
        },
    )
    rsps.get(f"{FB}/conv1/messages", json={"data": [{"id": "m1", "message": "hello"}]})
    messages = list(page.iter_conversation_messages("conv1"))
    assert [m.id for m in messages] == ["m2", "m1"]
    assert messages[1].text == "hello"
    assert query(rsps.calls[0])["fields"] == ["messages{id,created_time,from,to,message}"]


def test_get_message_details(rsps: responses.RequestsMock, page: AccountClient) -> None:
    rsps.get(
        f"{FB}/{MID}",
        json={
            "id": MID,
            "created_time": "2024-05-01T12:00:00+0000",
            "from": {"username": "alice", "id": IGSID},
            "to": {"data": [{"username": "acme", "id": IG_ID}]},
            "message": "Hi there",
            "attachments": {
                "data": [{"mime_type": "image/jpeg", "image_data": {"url": "https://c/i.jpg"}}]
            },
            "story": {"mention": {"link": "https://c/s.jpg", "id": "179"}},
            "reply_to": {"mid": "aWdfOLD", "is_self_reply": False},
        },
    )
    message = page.get_message(MID)
    assert message.sender is not None
    assert message.sender.id == IGSID
    assert message.recipients[0].id == IG_ID
    assert message.attachments[0].url == "https://c/i.jpg"
    assert message.story is not None
    assert message.story.kind == "mention"
    assert message.reply_to_mid == "aWdfOLD"


def test_user_profile(rsps: responses.RequestsMock, ig: AccountClient) -> None:
    rsps.get(
        f"{IG}/{IGSID}",
        json={
            "name": "Alice",
            "username": "alice",
            "profile_pic": "https://c/p.jpg",
            "follower_count": 120,
            "is_user_follow_business": True,
            "is_business_follow_user": False,
            "is_verified_user": False,
        },
    )
    profile = ig.get_user_profile(IGSID)
    assert profile.id == IGSID
    assert (profile.username, profile.follower_count) == ("alice", 120)
    assert profile.is_user_follow_business is True
    assert profile.is_business_follow_user is False


# --- conversation routing ------------------------------------------------------------------------


def test_routing_calls(rsps: responses.RequestsMock, page: AccountClient) -> None:
    for edge in ("pass", "take", "release", "request", "extend"):
        rsps.post(f"{FB}/{PAGE_ID}/{edge}_thread_control", json={"success": True})
    assert page.pass_thread_control(IGSID, "1217981644879628", metadata="escalate")
    assert page.take_thread_control(IGSID, metadata="agent override")
    assert page.release_thread_control(IGSID)
    assert page.request_thread_control(IGSID)
    assert page.extend_thread_control(IGSID, 86400)
    sent = [body(c) for c in rsps.calls]
    assert sent[0] == {
        "recipient": {"id": IGSID},
        "target_app_id": "1217981644879628",
        "metadata": "escalate",
    }
    assert sent[2] == {"recipient": {"id": IGSID}}
    assert sent[4]["duration"] == 86400


def test_thread_owner(rsps: responses.RequestsMock, page: AccountClient) -> None:
    rsps.get(f"{FB}/{PAGE_ID}/thread_owner", json={"data": [{"thread_owner": {"app_id": "123"}}]})
    assert page.thread_owner(IGSID).app_id == "123"
    assert query(rsps.calls[0])["recipient"] == [IGSID]


def test_messaging_feature_status(rsps: responses.RequestsMock, page: AccountClient) -> None:
    rsps.get(
        f"{FB}/me",
        json={"messaging_feature_status": {"hop_v2": True, "ig_multi_app": True}, "id": PAGE_ID},
    )
    assert page.messaging_feature_status() == {"hop_v2": True, "ig_multi_app": True}


# --- messenger_profile ---------------------------------------------------------------------------


def test_ice_breakers_set_get_delete(rsps: responses.RequestsMock, page: AccountClient) -> None:
    url = f"{FB}/{PAGE_ID}/messenger_profile"
    rsps.post(url, json={"success": True})
    rsps.get(
        url,
        json={
            "data": [
                {
                    "ice_breakers": [
                        {
                            "call_to_actions": [
                                {"question": "Where is my order?", "payload": "ORDER_STATUS"}
                            ],
                            "locale": "default",
                        }
                    ]
                }
            ]
        },
    )
    rsps.delete(url, json={"success": True})
    sets = [IceBreakerSet((IceBreaker("Where is my order?", "ORDER_STATUS"),))]
    assert page.set_ice_breakers(sets)
    assert page.get_ice_breakers() == sets
    assert page.delete_ice_breakers()
    assert body(rsps.calls[0]) == {
        "platform": "instagram",
        "ice_breakers": [
            {
                "locale": "default",
                "call_to_actions": [{"question": "Where is my order?", "payload": "ORDER_STATUS"}],
            }
        ],
    }
    assert query(rsps.calls[1])["fields"] == ["ice_breakers"]
    assert body(rsps.calls[2]) == {"platform": "instagram", "fields": ["ice_breakers"]}


def test_persistent_menu_set_get_delete(rsps: responses.RequestsMock, ig: AccountClient) -> None:
    url = f"{IG}/{IG_ID}/messenger_profile"
    menu = PersistentMenu(
        (
            Button("postback", "Track order", payload="TRACK"),
            Button("web_url", "Shop", url="https://shop.example.com"),
        )
    )
    rsps.post(url, json={"success": True})
    rsps.get(url, json={"data": [{"persistent_menu": [menu.to_api()]}]})
    rsps.delete(url, json={"success": True})
    assert ig.set_persistent_menu([menu])
    assert ig.get_persistent_menu() == [menu]
    assert ig.delete_persistent_menu()
    assert body(rsps.calls[2])["fields"] == ["persistent_menu"]


# --- factory -------------------------------------------------------------------------------------


def test_client_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_settings = types.SimpleNamespace(
        META_APP_ID="1",
        META_APP_SECRET="s1",
        META_INSTAGRAM_APP_ID="2",
        META_INSTAGRAM_APP_SECRET="s2",
        META_GRAPH_VERSION="v24.0",
        META_GRAPH_URL="http://127.0.0.1:9000",
        META_TIMEOUT_SECONDS=4,
    )
    fake_conf = types.ModuleType("django.conf")
    fake_conf.settings = fake_settings  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "django.conf", fake_conf)
    meta = client_from_settings()
    config = meta.config
    assert (config.app_id, config.instagram_app_id, config.graph_version) == ("1", "2", "v24.0")
    assert config.graph_url == "http://127.0.0.1:9000"
    assert config.instagram_graph_url == "https://graph.instagram.com"
    assert (config.connect_timeout, config.read_timeout) == (3.05, 4.0)
    assert meta.url_for(Host.FACEBOOK, "me") == "http://127.0.0.1:9000/v24.0/me"
    assert "s1" not in repr(config)


def test_client_from_settings_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_conf = types.ModuleType("django.conf")
    fake_conf.settings = types.SimpleNamespace()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "django.conf", fake_conf)
    config = client_from_settings(get_retries=0).config
    assert config.graph_version == "v25.0"
    assert config.graph_url == "https://graph.facebook.com"
    assert config.get_retries == 0


# --- the environment's proxy settings -------------------------------------------------------------


@pytest.fixture
def meta_and_proxy() -> Iterator[tuple[Receiver, Receiver]]:
    """Two local servers answering every POST as Meta answers a send: one stands for Meta,
    the other for a proxy in front of it."""
    with serving_receiver("") as meta, serving_receiver("") as proxy:
        meta.answer = proxy.answer = json.dumps(SENT).encode()
        yield meta, proxy


def test_sends_follow_the_environment_proxy_and_no_proxy(
    monkeypatch: pytest.MonkeyPatch, config: MetaConfig, meta_and_proxy: tuple[Receiver, Receiver]
) -> None:
    """The proxy and ``NO_PROXY`` of the environment hold for every send, though the client
    reads them once per host; looking them up on every call was a tenth of a worker's CPU."""
    meta, proxy = meta_and_proxy
    for name in ("http_proxy", "https_proxy", "no_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    base = "{0.scheme}://{0.netloc}".format(urlsplit(meta.url))
    local = dataclasses.replace(config, graph_url=base)
    lookups = 0
    real_lookup = requests.sessions.get_environ_proxies

    def counting(url: str, no_proxy: Any = None) -> Any:
        nonlocal lookups
        lookups += 1
        return real_lookup(url, no_proxy=no_proxy)

    monkeypatch.setattr(requests.sessions, "get_environ_proxies", counting)
    with MetaClient(local) as through_proxy:
        page = through_proxy.facebook_page(PAGE_ID, PAGE_TOKEN)
        for i in range(5):
            assert page.send_text(IGSID, f"via proxy {i}").message_id == MID
    through = [post.path for post in proxy.ok_posts()]
    assert len(through) == 5
    assert all(path.startswith(f"{base}/v25.0/{PAGE_ID}/messages?") for path in through)
    assert meta.ok_posts() == []
    assert lookups == 1

    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with MetaClient(local) as direct:
        assert direct.facebook_page(PAGE_ID, PAGE_TOKEN).send_text(IGSID, "direct").message_id
    assert len(proxy.ok_posts()) == 5
    direct_paths = [post.path for post in meta.ok_posts()]
    assert len(direct_paths) == 1
    assert direct_paths[0].startswith(f"/v25.0/{PAGE_ID}/messages?")
