"""Rate limits with usage headers, injected faults, retries, and every mapped error class
coming through the wire (REFERENCE §8, §11; client README "Rules the transport applies")."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from integrations.meta import errors as error_table
from integrations.meta.client import AccountClient, MetaClient
from integrations.meta.errors import (
    MetaError,
    MetaRateLimitError,
    MetaTransientError,
    Reason,
)
from integrations.meta.sandbox.testing import RunningSandbox
from tests.contract import support as w


def limit(sbx: RunningSandbox, category: str, count: int, window_s: float = 3600) -> None:
    sbx.control(
        "POST",
        "rate_limits",
        {category: {"limit": count, "window_s": window_s}, "reset_counters": True},
    )


# -- usage headers on success (§8.2) ---------------------------------------------------------------


def test_usage_headers_of_a_page_call(meta: MetaClient, acme: AccountClient) -> None:
    acme.send_text(w.ALICE_AT_ACME, "Hi")
    usage = meta.last_usage
    assert usage is not None
    assert acme.last_usage == usage
    assert usage.app is not None
    (business,) = usage.for_business(w.IG_ACME)
    assert business.type == "instagram"
    assert business.estimated_time_to_regain_access == 0
    assert usage.regain_access_seconds is None


def test_usage_headers_of_an_instagram_login_call(meta: MetaClient, creator: AccountClient) -> None:
    creator.list_conversations()
    usage = meta.last_usage
    assert usage is not None
    assert [b.business_id for b in usage.business] == [w.IG_CREATOR]


def test_user_token_calls_carry_only_app_usage(meta: MetaClient) -> None:
    meta.list_pages(w.USER_TOKEN)
    usage = meta.last_usage
    assert usage is not None
    assert usage.app is not None
    assert usage.business == ()


def test_usage_percent_grows_with_calls(
    sbx: RunningSandbox, meta: MetaClient, acme: AccountClient
) -> None:
    limit(sbx, "send_text", 10)
    for _ in range(8):
        acme.send_text(w.ALICE_AT_ACME, "Hi")
    usage = meta.last_usage
    assert usage is not None
    assert usage.max_percent >= 80  # the client's back-off threshold


# -- rate limits (§8.1) ----------------------------------------------------------------------------


def test_send_rate_limit_is_613_2534040_with_regain_time(
    sbx: RunningSandbox, meta: MetaClient, acme: AccountClient, sleeps: list[float]
) -> None:
    limit(sbx, "send_text", 3, window_s=90)
    for _ in range(3):
        acme.send_text(w.ALICE_AT_ACME, "Hi")
    with pytest.raises(MetaRateLimitError) as caught:
        acme.send_text(w.ALICE_AT_ACME, "One too many")
    err = caught.value
    w.assert_error(err, MetaRateLimitError, Reason.MESSAGING_RATE_LIMITED, 613, 2534040)
    assert err.usage is not None
    (business,) = err.usage.for_business(w.IG_ACME)
    assert business.estimated_time_to_regain_access == 2  # minutes, rounded up
    assert err.retry_after == 120
    assert meta.last_usage == err.usage
    assert meta.last_usage is not None
    assert meta.last_usage.max_percent == 100
    assert sleeps == []


def test_audio_and_video_have_their_own_lower_limit(
    sbx: RunningSandbox, acme: AccountClient
) -> None:
    limit(sbx, "send_media", 2)
    acme.send_attachment(w.ALICE_AT_ACME, "video", url="https://cdn.example.com/a.mp4")
    acme.send_attachment(w.ALICE_AT_ACME, "audio", url="https://cdn.example.com/a.m4a")
    with pytest.raises(MetaRateLimitError) as caught:
        acme.send_attachment(w.ALICE_AT_ACME, "video", url="https://cdn.example.com/b.mp4")
    assert caught.value.reason == Reason.MESSAGING_RATE_LIMITED
    assert acme.send_text(w.ALICE_AT_ACME, "text still goes out").message_id


def test_conversations_api_limit_is_613(
    sbx: RunningSandbox, creator: AccountClient, sleeps: list[float]
) -> None:
    limit(sbx, "conversations", 2, window_s=60)
    creator.list_conversations()
    creator.list_conversations()
    with pytest.raises(MetaRateLimitError) as caught:
        creator.list_conversations()
    w.assert_error(caught.value, MetaRateLimitError, Reason.RATE_LIMITED, 613)
    assert caught.value.retry_after == 60
    assert sleeps == []  # rate limits are not retried by the transport
    sbx.advance(seconds=61)
    assert creator.list_conversations().items


def test_private_reply_limit(sbx: RunningSandbox, acme: AccountClient) -> None:
    limit(sbx, "private_reply", 1)
    acme.send_private_reply(w.COMMENT_DMITRI_ACME, "Thanks")
    other = sbx.customer("alice", "comment", media_id=w.MEDIA_ACME_POST, text="Me too")
    with pytest.raises(MetaRateLimitError) as caught:
        acme.send_private_reply(other["comment_id"], "Thanks")
    w.assert_error(caught.value, MetaRateLimitError, Reason.MESSAGING_RATE_LIMITED, 613, 2534040)


def test_business_use_case_limit_is_80002(
    sbx: RunningSandbox, meta: MetaClient, creator: AccountClient
) -> None:
    limit(sbx, "buc", 3, window_s=600)
    for _ in range(3):
        creator.subscribed_apps()
    with pytest.raises(MetaRateLimitError) as caught:
        creator.subscribed_apps()
    err = caught.value
    w.assert_error(err, MetaRateLimitError, Reason.BUSINESS_RATE_LIMITED, 80002)
    assert err.retry_after == 600
    assert err.usage is not None
    assert err.usage.for_business(w.IG_CREATOR)[0].call_count == 100


def test_app_limit_is_code_4(sbx: RunningSandbox, meta: MetaClient) -> None:
    limit(sbx, "app", 2)
    meta.facebook_me(w.USER_TOKEN)
    meta.facebook_me(w.USER_TOKEN)
    with pytest.raises(MetaRateLimitError) as caught:
        meta.facebook_me(w.USER_TOKEN)
    w.assert_error(caught.value, MetaRateLimitError, Reason.APP_RATE_LIMITED, 4)
    assert caught.value.usage is not None
    assert caught.value.usage.app is not None
    assert caught.value.usage.app.call_count == 100


@pytest.mark.parametrize(
    ("code", "subcode", "reason"),
    [
        (613, None, Reason.RATE_LIMITED),
        (613, 2534040, Reason.MESSAGING_RATE_LIMITED),
        (4, None, Reason.APP_RATE_LIMITED),
        (17, None, Reason.USER_RATE_LIMITED),
        (32, None, Reason.PAGE_RATE_LIMITED),
        (80001, None, Reason.BUSINESS_RATE_LIMITED),
        (80002, None, Reason.BUSINESS_RATE_LIMITED),
        (80006, None, Reason.BUSINESS_RATE_LIMITED),
    ],
)
def test_injected_rate_limits_parse_usage_and_retry_after(
    sbx: RunningSandbox,
    meta: MetaClient,
    acme: AccountClient,
    code: int,
    subcode: int | None,
    reason: str,
) -> None:
    sbx.fault(kind="rate_limit", code=code, subcode=subcode, match="/messages")
    with pytest.raises(MetaRateLimitError) as caught:
        acme.send_text(w.ALICE_AT_ACME, "Hi")
    err = caught.value
    w.assert_error(err, MetaRateLimitError, reason, code, subcode)
    assert err.retry_after == 60
    assert err.usage is not None
    assert err.usage.app is not None
    assert err.usage.app.call_count == 100
    assert meta.last_usage == err.usage
    assert acme.send_text(w.ALICE_AT_ACME, "Hi").message_id  # the fault was used up


# -- 5xx and timeouts: GET retried, POST not (client README) ---------------------------------------


def test_get_is_retried_through_5xx(
    sbx: RunningSandbox, acme: AccountClient, sleeps: list[float]
) -> None:
    sbx.fault(kind="5xx", count=2, status=503, match="GET /facebook")
    assert acme.list_conversations().items
    assert sleeps == [0.5, 1.0]
    assert sbx.control("GET", "faults")["data"] == []


def test_get_gives_up_after_the_configured_retries(
    sbx: RunningSandbox, acme: AccountClient, sleeps: list[float]
) -> None:
    sbx.fault(kind="5xx", count=5, match="GET /facebook")
    with pytest.raises(MetaTransientError) as caught:
        acme.list_conversations()
    err = caught.value
    w.assert_error(err, MetaTransientError, Reason.TEMPORARY, 2)
    assert err.http_status == 500
    assert err.is_transient
    assert err.may_have_succeeded is False
    assert sleeps == [0.5, 1.0]
    assert sbx.control("GET", "faults")["data"][0]["remaining"] == 2


def test_post_is_not_retried_on_5xx(
    sbx: RunningSandbox, acme: AccountClient, sleeps: list[float]
) -> None:
    sbx.fault(kind="5xx", count=1, match="POST /facebook")
    before = len(sbx.received("alice", account=w.IG_ACME))
    with pytest.raises(MetaTransientError) as caught:
        acme.send_text(w.ALICE_AT_ACME, "Hi")
    assert caught.value.may_have_succeeded is False
    assert sleeps == []
    assert len(sbx.received("alice", account=w.IG_ACME)) == before
    assert acme.send_text(w.ALICE_AT_ACME, "Hi").message_id


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_any_5xx_without_a_graph_code_is_transient(
    sbx: RunningSandbox, acme: AccountClient, status: int
) -> None:
    sbx.fault(kind="5xx", count=1, status=status, code=999, match="POST /facebook")
    with pytest.raises(MetaTransientError) as caught:
        acme.send_text(w.ALICE_AT_ACME, "Hi")
    assert caught.value.http_status == status
    assert caught.value.reason in (Reason.TEMPORARY, Reason.SERVER_ERROR)


def test_send_timeout_may_have_succeeded(
    sbx: RunningSandbox, make_client: Callable[..., MetaClient], sleeps: list[float]
) -> None:
    meta = make_client(read_timeout=0.3)
    sbx.fault(kind="timeout", count=1, delay=1.0, match="/messages")
    with pytest.raises(MetaTransientError) as caught:
        meta.facebook_page(w.PAGE_ACME, w.ACME_TOKEN).send_text(w.ALICE_AT_ACME, "Hi")
    err = caught.value
    assert err.reason == Reason.TIMEOUT
    assert err.may_have_succeeded is True
    assert w.ACME_TOKEN not in str(err)
    assert sleeps == []


def test_read_timeout_is_retried_for_get(
    sbx: RunningSandbox, make_client: Callable[..., MetaClient], sleeps: list[float]
) -> None:
    meta = make_client(read_timeout=0.3)
    sbx.fault(kind="timeout", count=1, delay=1.0, match="GET /instagram")
    assert meta.instagram_account(w.CREATOR_TOKEN).list_conversations().items
    assert sleeps == [0.5]
    sbx.fault(kind="timeout", count=3, delay=1.0, match="GET /instagram")
    with pytest.raises(MetaTransientError) as caught:
        meta.instagram_me(w.CREATOR_TOKEN)
    assert caught.value.reason == Reason.TIMEOUT
    assert caught.value.may_have_succeeded is False


def test_slow_answer_within_the_timeout_is_a_504_transient(
    sbx: RunningSandbox, make_client: Callable[..., MetaClient]
) -> None:
    meta = make_client(read_timeout=2.0)
    sbx.fault(kind="timeout", count=1, delay=0.1, match="/messages")
    with pytest.raises(MetaTransientError) as caught:
        meta.facebook_page(w.PAGE_ACME, w.ACME_TOKEN).send_text(w.ALICE_AT_ACME, "Hi")
    assert caught.value.http_status == 504
    assert caught.value.may_have_succeeded is False


# -- every mapped (code, subcode) through the wire, on both hosts (§11) ----------------------------

_TABLE = [
    pytest.param(code, subcode, cls, reason, id=f"{code}-{subcode}")
    for (code, subcode), (cls, reason) in error_table._BY_CODE_AND_SUBCODE.items()
]
# Subcodes listed without a code in §11 arrive with the code the sandbox uses for them.
_SUBCODE_ONLY_CODES = {2018300: 10, 2018171: 100, 2018234: 100, 2534068: 100, 9000001: 100}
_TABLE += [
    pytest.param(_SUBCODE_ONLY_CODES[subcode], subcode, cls, reason, id=f"any-{subcode}")
    for subcode, (cls, reason) in error_table._BY_SUBCODE.items()
]


@pytest.mark.parametrize(("code", "subcode", "cls", "reason"), _TABLE)
@pytest.mark.parametrize("host", ["facebook", "instagram"])
def test_every_mapped_error_class(
    sbx: RunningSandbox,
    acme: AccountClient,
    creator: AccountClient,
    host: str,
    code: int,
    subcode: int | None,
    cls: type[MetaError],
    reason: str,
) -> None:
    sbx.fault(kind="error", code=code, subcode=subcode, host=host, match="POST")
    account, igsid = (
        (acme, w.ALICE_AT_ACME) if host == "facebook" else (creator, w.DMITRI_AT_CREATOR)
    )
    with pytest.raises(MetaError) as caught:
        account.send_text(igsid, "Hi")
    err = caught.value
    w.assert_error(err, cls, reason, code, subcode)
    expected_status = 500 if code in (1, 2) else 403 if (host, code) == ("instagram", 10) else 400
    assert err.http_status == expected_status
    assert err.error_type == (
        "OAuthException" if host == "facebook" or code == 190 else "IGApiException"
    )
    assert err.retryable is cls.retryable
