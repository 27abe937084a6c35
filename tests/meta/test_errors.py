"""map_error: every code of the reference's error table, and odd bodies."""

from __future__ import annotations

import json
from typing import Any

import pytest

from integrations.meta.errors import (
    MetaAuthError,
    MetaError,
    MetaPermanentError,
    MetaPermissionError,
    MetaPolicyError,
    MetaRateLimitError,
    MetaTransientError,
    Reason,
    map_error,
)

# (code, subcode, class, reason): one row per line of the reference's error table.
ERROR_TABLE: list[tuple[int | None, int | None, type[MetaError], str]] = [
    (1, None, MetaTransientError, Reason.UNKNOWN_ERROR),
    (1, 99, MetaTransientError, Reason.UNKNOWN_ERROR),
    (2, None, MetaTransientError, Reason.TEMPORARY),
    (2, 2018344, MetaTransientError, Reason.TEMPORARY_SEND_FAILURE),
    (3, None, MetaPermanentError, Reason.CAPABILITY_MISSING),
    (4, None, MetaRateLimitError, Reason.APP_RATE_LIMITED),
    (10, None, MetaPermissionError, Reason.PERMISSION_DENIED),
    (10, 2534022, MetaPolicyError, Reason.WINDOW_CLOSED),
    (10, 2018278, MetaPolicyError, Reason.WINDOW_CLOSED),
    (10, 2018065, MetaPolicyError, Reason.NEWS_RESTRICTED),
    (10, 2018108, MetaPolicyError, Reason.PERSON_UNAVAILABLE),
    (10, 1893063, MetaPolicyError, Reason.SENDER_RESTRICTED),
    (10, 2534077, MetaPermissionError, Reason.ACCOUNT_LINK_UNVERIFIED),
    (17, None, MetaRateLimitError, Reason.USER_RATE_LIMITED),
    (32, None, MetaRateLimitError, Reason.PAGE_RATE_LIMITED),
    (100, None, MetaPermanentError, Reason.INVALID_PARAMETER),
    (100, 33, MetaPermanentError, Reason.OBJECT_NOT_FOUND),
    (100, 2018001, MetaPermanentError, Reason.RECIPIENT_NOT_FOUND),
    (100, 2018008, MetaPermanentError, Reason.ATTACHMENT_FETCH_FAILED),
    (100, 2018047, MetaPermanentError, Reason.ATTACHMENT_UPLOAD_FAILED),
    (100, 2018074, MetaPermanentError, Reason.INVALID_ATTACHMENT_ID),
    (100, 2018109, MetaPermanentError, Reason.ATTACHMENT_TOO_LARGE),
    (100, 2018294, MetaTransientError, Reason.ATTACHMENT_TIMEOUT),
    (100, 2018276, MetaPermissionError, Reason.HUMAN_AGENT_NOT_APPROVED),
    (100, 2534013, MetaPermissionError, Reason.INSTAGRAM_NOT_LINKED),
    (100, 2534014, MetaPermanentError, Reason.RECIPIENT_NOT_FOUND),
    (100, 2534015, MetaPermanentError, Reason.INVALID_MESSAGE),
    (100, 2534025, MetaPolicyError, Reason.ALREADY_REPLIED),
    (100, 2534029, MetaPolicyError, Reason.BUSINESS_BLOCKED),
    (100, 2534037, MetaPolicyError, Reason.NOT_THREAD_OWNER),
    (100, 2534068, MetaPermanentError, Reason.MULTIPLE_IMAGES_UNAVAILABLE),
    (None, 2534068, MetaPermanentError, Reason.MULTIPLE_IMAGES_UNAVAILABLE),
    (102, None, MetaAuthError, Reason.SESSION_INVALID),
    (190, None, MetaAuthError, Reason.TOKEN_INVALID),
    (190, 458, MetaAuthError, Reason.APP_NOT_INSTALLED),
    (190, 459, MetaAuthError, Reason.USER_CHECKPOINTED),
    (190, 460, MetaAuthError, Reason.PASSWORD_CHANGED),
    (190, 463, MetaAuthError, Reason.TOKEN_EXPIRED),
    (190, 464, MetaAuthError, Reason.USER_UNCONFIRMED),
    (190, 467, MetaAuthError, Reason.TOKEN_INVALID),
    (190, 999999, MetaAuthError, Reason.TOKEN_INVALID),
    (200, None, MetaPermissionError, Reason.PERMISSION_DENIED),
    (200, 1545041, MetaPolicyError, Reason.PERSON_UNAVAILABLE),
    (200, 2018028, MetaPolicyError, Reason.PERSON_UNAVAILABLE),
    (200, 2534041, MetaPolicyError, Reason.MESSAGE_ACCESS_OFF),
    (230, None, MetaPermissionError, Reason.PERMISSION_DENIED),
    (299, None, MetaPermissionError, Reason.PERMISSION_DENIED),
    (341, None, MetaRateLimitError, Reason.APP_LIMIT_REACHED),
    (368, None, MetaPolicyError, Reason.BLOCKED_FOR_POLICY),
    (506, None, MetaPermanentError, Reason.DUPLICATE),
    (551, None, MetaPolicyError, Reason.PERSON_UNAVAILABLE),
    (551, 1545041, MetaPolicyError, Reason.PERSON_UNAVAILABLE),
    (613, None, MetaRateLimitError, Reason.RATE_LIMITED),
    (613, 2018338, MetaPolicyError, Reason.TAG_NOT_ALLOWED),
    (613, 2534040, MetaRateLimitError, Reason.MESSAGING_RATE_LIMITED),
    (10903, None, MetaPolicyError, Reason.ALREADY_REPLIED),
    (36103, None, MetaPolicyError, Reason.NOT_ELIGIBLE),
    (100, 2018300, MetaPolicyError, Reason.THREAD_OWNED_BY_OTHER_APP),
    (None, 2018300, MetaPolicyError, Reason.THREAD_OWNED_BY_OTHER_APP),
    (10, 2018171, MetaPermissionError, Reason.NOT_ROUTING_RECEIVER),
    (10, 2018234, MetaPermissionError, Reason.NOT_ROUTING_RECEIVER),
    (100, 9000001, MetaPolicyError, Reason.MESSAGE_DELETED),
    (80001, None, MetaRateLimitError, Reason.BUSINESS_RATE_LIMITED),
    (80002, None, MetaRateLimitError, Reason.BUSINESS_RATE_LIMITED),
    (80006, None, MetaRateLimitError, Reason.BUSINESS_RATE_LIMITED),
]


def _body(code: int | None, subcode: int | None, **extra: Any) -> bytes:
    error: dict[str, Any] = {"message": "(#x) message", "type": "OAuthException"}
    if code is not None:
        error["code"] = code
    if subcode is not None:
        error["error_subcode"] = subcode
    error["fbtrace_id"] = "AbCdEfGh123"
    error.update(extra)
    return json.dumps({"error": error}).encode()


@pytest.mark.parametrize(("code", "subcode", "cls", "reason"), ERROR_TABLE)
def test_error_table(
    code: int | None, subcode: int | None, cls: type[MetaError], reason: str
) -> None:
    error = map_error(400, _body(code, subcode), {})
    assert type(error) is cls
    assert error.reason == reason
    assert (error.code, error.subcode, error.http_status) == (code, subcode, 400)
    assert error.fbtrace_id == "AbCdEfGh123"
    assert error.user_message
    assert error.user_message.endswith(".")


def test_instagram_host_window_error_with_403_and_igapiexception() -> None:
    body = _body(10, 2534022, type="IGApiException", error_user_msg="Not sent.")
    error = map_error(403, body, {})
    assert isinstance(error, MetaPolicyError)
    assert error.reason == "window_closed"
    assert error.error_type == "IGApiException"
    assert "24 hours" in error.user_message


def test_meta_user_message_used_when_we_have_none() -> None:
    error = map_error(400, _body(100, None, error_user_msg="Try a shorter text."), {})
    assert error.user_message == "Try a shorter text."


def test_unknown_code_with_is_transient_flag_is_transient() -> None:
    error = map_error(400, _body(123456, None, is_transient=True), {})
    assert isinstance(error, MetaTransientError)


def test_unknown_code_is_permanent() -> None:
    assert isinstance(map_error(400, _body(123456, None), {}), MetaPermanentError)


def test_codes_as_strings_are_understood() -> None:
    body = json.dumps({"error": {"code": "190", "error_subcode": "463"}}).encode()
    error = map_error(400, body, {})
    assert isinstance(error, MetaAuthError)
    assert error.reason == "token_expired"


@pytest.mark.parametrize(
    ("status", "body", "cls", "reason"),
    [
        (502, b"<html>Bad Gateway</html>", MetaTransientError, "server_error"),
        (500, b"", MetaTransientError, "server_error"),
        (503, None, MetaTransientError, "server_error"),
        (429, b"slow down", MetaRateLimitError, "rate_limited"),
        (401, b"nope", MetaAuthError, "token_invalid"),
        (400, b"<html>", MetaPermanentError, "invalid_response"),
        (404, b"[1,2]", MetaPermanentError, "invalid_response"),
        (400, b'{"error": 5}', MetaPermanentError, "invalid_response"),
        (None, None, MetaPermanentError, "invalid_response"),
    ],
)
def test_non_graph_bodies(
    status: int | None, body: bytes | None, cls: type[MetaError], reason: str
) -> None:
    error = map_error(status, body, None)
    assert type(error) is cls
    assert error.reason == reason
    assert error.message


def test_graph_500_code_1_is_transient_not_server_error() -> None:
    error = map_error(500, _body(1, None), {})
    assert error.reason == "unknown_error"


def test_flat_instagram_oauth_error() -> None:
    body = {
        "error_type": "OAuthException",
        "code": 400,
        "error_message": "Matching code was not found or was already used",
    }
    error = map_error(400, json.dumps(body), {})
    assert isinstance(error, MetaPermanentError)
    assert error.reason == "oauth_error"
    assert error.message == "Matching code was not found or was already used"


def test_oauth_style_string_error() -> None:
    body = {"error": "invalid_request", "error_description": "redirect_uri mismatch"}
    error = map_error(400, body, {})
    assert isinstance(error, MetaPermanentError)
    assert error.message == "redirect_uri mismatch"


def test_rate_limit_retry_after_from_business_use_case_header() -> None:
    headers = {
        "X-Business-Use-Case-Usage": json.dumps(
            {
                "17841400000000000": [
                    {
                        "type": "instagram",
                        "call_count": 100,
                        "total_cputime": 10,
                        "total_time": 20,
                        "estimated_time_to_regain_access": 7,
                    }
                ]
            }
        )
    }
    error = map_error(400, _body(80002, None), headers)
    assert isinstance(error, MetaRateLimitError)
    assert error.retry_after == 420
    assert error.usage is not None
    assert error.usage.max_percent == 100


def test_rate_limit_retry_after_header_wins() -> None:
    error = map_error(429, _body(4, None), {"retry-after": "30"})
    assert isinstance(error, MetaRateLimitError)
    assert error.retry_after == 30


def test_rate_limit_without_hint_has_no_retry_after() -> None:
    error = map_error(400, _body(613, None), {})
    assert isinstance(error, MetaRateLimitError)
    assert error.retry_after is None


def test_retryable_flags() -> None:
    assert MetaTransientError.retryable
    assert MetaRateLimitError.retryable
    assert not MetaPolicyError.retryable
    assert not MetaAuthError.retryable


def test_str_has_codes_and_no_body_dump() -> None:
    error = map_error(400, _body(10, 2534022), {})
    text = str(error)
    assert "window_closed" in text
    assert "code=10" in text
    assert "subcode=2534022" in text
