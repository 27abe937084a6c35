"""Typed errors for Graph API calls, and ``map_error``, the one place that classifies them.

Classes and what the product does with them:

- ``MetaAuthError``: the token is dead (190, 102). Mark the account for reconnect; never retry.
- ``MetaRateLimitError``: throttled (4, 17, 32, 341, 613, 80001/80002/80006). Retry later,
  after ``retry_after`` seconds when Meta said how long.
- ``MetaTransientError``: Meta had a hiccup (1, 2, 5xx, timeouts, connection errors). Retry
  with backoff (sends only when ``may_have_succeeded`` is false, or after checking the echo).
- ``MetaPolicyError``: Meta refuses this message for a policy or recipient reason (window
  closed, comment already answered, person unavailable...). Fail it with ``user_message``.
- ``MetaPermissionError``: the app or the account lacks a permission, review or setting.
- ``MetaPermanentError``: the request itself is wrong (100 and everything unclassified).

Every error carries a stable machine-readable ``reason`` string (see ``Reason``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, ClassVar

from integrations.meta._coerce import as_bool, as_dict, as_int, as_str, header_lookup
from integrations.meta.usage import Usage, parse_usage_headers


class Reason(StrEnum):
    """Stable reason strings carried by every ``MetaError`` (safe to store and to expose)."""

    # MetaAuthError
    TOKEN_INVALID = "token_invalid"  # noqa: S105 - a reason name, not a secret
    TOKEN_EXPIRED = "token_expired"  # noqa: S105 - a reason name, not a secret
    APP_NOT_INSTALLED = "app_not_installed"
    USER_CHECKPOINTED = "user_checkpointed"
    PASSWORD_CHANGED = "password_changed"  # noqa: S105 - a reason name, not a secret
    USER_UNCONFIRMED = "user_unconfirmed"
    SESSION_INVALID = "session_invalid"
    # MetaRateLimitError
    APP_RATE_LIMITED = "app_rate_limited"
    USER_RATE_LIMITED = "user_rate_limited"
    PAGE_RATE_LIMITED = "page_rate_limited"
    APP_LIMIT_REACHED = "app_limit_reached"
    RATE_LIMITED = "rate_limited"
    MESSAGING_RATE_LIMITED = "messaging_rate_limited"
    BUSINESS_RATE_LIMITED = "business_use_case_rate_limited"
    # MetaTransientError
    UNKNOWN_ERROR = "unknown_error"
    TEMPORARY = "temporary"
    TEMPORARY_SEND_FAILURE = "temporary_send_failure"
    ATTACHMENT_TIMEOUT = "attachment_timeout"
    SERVER_ERROR = "server_error"
    TIMEOUT = "timeout"
    CONNECTION_ERROR = "connection_error"
    # MetaPolicyError
    WINDOW_CLOSED = "window_closed"
    ALREADY_REPLIED = "already_replied"
    PERSON_UNAVAILABLE = "person_unavailable"
    MESSAGE_ACCESS_OFF = "message_access_off"
    NOT_ELIGIBLE = "not_eligible"
    NOT_THREAD_OWNER = "not_thread_owner"
    THREAD_OWNED_BY_OTHER_APP = "thread_owned_by_other_app"
    NEWS_RESTRICTED = "news_restricted"
    SENDER_RESTRICTED = "sender_restricted"
    BLOCKED_FOR_POLICY = "blocked_for_policy"
    BUSINESS_BLOCKED = "business_blocked"
    TAG_NOT_ALLOWED = "tag_not_allowed"
    MESSAGE_DELETED = "message_deleted"
    # MetaPermissionError
    PERMISSION_DENIED = "permission_denied"
    HUMAN_AGENT_NOT_APPROVED = "human_agent_not_approved"
    INSTAGRAM_NOT_LINKED = "instagram_not_linked"
    ACCOUNT_LINK_UNVERIFIED = "account_link_unverified"
    NOT_ROUTING_RECEIVER = "not_routing_receiver"
    # MetaPermanentError
    CAPABILITY_MISSING = "capability_missing"
    INVALID_PARAMETER = "invalid_parameter"
    OBJECT_NOT_FOUND = "object_not_found"
    RECIPIENT_NOT_FOUND = "recipient_not_found"
    ATTACHMENT_FETCH_FAILED = "attachment_fetch_failed"
    ATTACHMENT_UPLOAD_FAILED = "attachment_upload_failed"
    INVALID_ATTACHMENT_ID = "invalid_attachment_id"
    ATTACHMENT_TOO_LARGE = "attachment_too_large"
    INVALID_MESSAGE = "invalid_message"
    MULTIPLE_IMAGES_UNAVAILABLE = "multiple_images_unavailable"
    DUPLICATE = "duplicate"
    OAUTH_ERROR = "oauth_error"
    INVALID_RESPONSE = "invalid_response"
    UNKNOWN = "unknown"


# Policy reasons are also reachable under this name, as the product speaks of them that way.
PolicyReason = Reason

_USER_MESSAGES: dict[str, str] = {
    Reason.TOKEN_INVALID: "The connection to Instagram is no longer valid. Please reconnect the "
    "account.",
    Reason.TOKEN_EXPIRED: "The connection to Instagram has expired. Please reconnect the account.",
    Reason.APP_NOT_INSTALLED: "Our app was removed from this account. Please reconnect it.",
    Reason.USER_CHECKPOINTED: "Meta needs the account owner to log in to Facebook and complete a "
    "security check, then reconnect.",
    Reason.PASSWORD_CHANGED: "The account password was changed. Please reconnect the account.",
    Reason.USER_UNCONFIRMED: "The Facebook user behind this connection is not confirmed yet.",
    Reason.SESSION_INVALID: "The Facebook session ended. Please reconnect the account.",
    Reason.WINDOW_CLOSED: "This message can't be sent because the customer hasn't written in the "
    "last 24 hours.",
    Reason.ALREADY_REPLIED: "This comment can't get a private reply: it was already answered, "
    "deleted, or is too old.",
    Reason.PERSON_UNAVAILABLE: "This person isn't available right now and can't receive messages.",
    Reason.MESSAGE_ACCESS_OFF: "The Instagram account has 'Allow access to messages' turned off. "
    "Turn it on in Instagram settings under Messages > Connected tools.",
    Reason.NOT_ELIGIBLE: "This Instagram account can't use messaging through apps yet.",
    Reason.NOT_THREAD_OWNER: "Another app is handling this conversation right now.",
    Reason.THREAD_OWNED_BY_OTHER_APP: "Another app is handling this conversation right now.",
    Reason.NEWS_RESTRICTED: "Meta restricts messaging for news pages in this region.",
    Reason.SENDER_RESTRICTED: "Meta has temporarily restricted this account from sending messages.",
    Reason.BLOCKED_FOR_POLICY: "Meta has temporarily blocked this action for a policy violation.",
    Reason.BUSINESS_BLOCKED: "Meta has blocked this business from Instagram messaging.",
    Reason.TAG_NOT_ALLOWED: "This message tag can't be used for this message.",
    Reason.MESSAGE_DELETED: "That message was deleted.",
    Reason.HUMAN_AGENT_NOT_APPROVED: "Replies after 24 hours need the Human Agent feature, which "
    "this app has not been approved for.",
    Reason.INSTAGRAM_NOT_LINKED: "The Facebook Page is not linked to an Instagram professional "
    "account.",
    Reason.ACCOUNT_LINK_UNVERIFIED: "Meta could not verify the link between the Page and the "
    "Instagram account.",
    Reason.NOT_ROUTING_RECEIVER: "This app is not set up to receive this conversation.",
    Reason.RECIPIENT_NOT_FOUND: "Instagram could not find this person.",
    Reason.ATTACHMENT_FETCH_FAILED: "Instagram could not download the attachment.",
    Reason.ATTACHMENT_TOO_LARGE: "The attachment is too large for Instagram.",
    Reason.INVALID_ATTACHMENT_ID: "The saved attachment is no longer available.",
    Reason.MULTIPLE_IMAGES_UNAVAILABLE: "Sending several images at once isn't available yet.",
}

_CLASS_USER_MESSAGES: dict[str, str] = {
    "MetaAuthError": "The connection to Instagram is no longer valid. Please reconnect the "
    "account.",
    "MetaRateLimitError": "Instagram is limiting how fast we can send. We'll try again shortly.",
    "MetaTransientError": "Instagram had a temporary problem. We'll try again shortly.",
    "MetaPolicyError": "Instagram refused this message.",
    "MetaPermissionError": "The app is missing a permission on this account. Please reconnect "
    "and grant every permission asked for.",
    "MetaPermanentError": "Instagram rejected the request.",
}


class MetaError(Exception):
    """Base class for every failure talking to Meta."""

    default_reason: ClassVar[str] = Reason.UNKNOWN
    retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str = "",
        *,
        code: int | None = None,
        subcode: int | None = None,
        fbtrace_id: str | None = None,
        http_status: int | None = None,
        reason: str | None = None,
        user_message: str | None = None,
        error_type: str | None = None,
        is_transient: bool = False,
        usage: Usage | None = None,
    ) -> None:
        super().__init__(message or type(self).__name__)
        self.message = message
        self.code = code
        self.subcode = subcode
        self.fbtrace_id = fbtrace_id
        self.http_status = http_status
        self.reason: str = reason or self.default_reason
        self.error_type = error_type
        self.is_transient = is_transient
        self.usage = usage
        self.user_message: str = (
            user_message
            or _USER_MESSAGES.get(self.reason)
            or _CLASS_USER_MESSAGES.get(type(self).__name__, "Instagram returned an error.")
        )

    def __str__(self) -> str:
        parts = [f"{type(self).__name__}[{self.reason}]"]
        if self.code is not None:
            parts.append(f"code={self.code}")
        if self.subcode is not None:
            parts.append(f"subcode={self.subcode}")
        if self.http_status is not None:
            parts.append(f"http={self.http_status}")
        if self.fbtrace_id:
            parts.append(f"fbtrace_id={self.fbtrace_id}")
        if self.message:
            parts.append(self.message)
        return " ".join(parts)


class MetaAuthError(MetaError):
    """The token is invalid, expired or revoked: reconnect the account."""

    default_reason = Reason.TOKEN_INVALID


class MetaRateLimitError(MetaError):
    """Throttled by Meta; ``retry_after`` is in seconds when derivable."""

    default_reason = Reason.RATE_LIMITED
    retryable = True

    def __init__(self, message: str = "", *, retry_after: float | None = None, **kwargs: Any):
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class MetaTransientError(MetaError):
    """Temporary failure. ``may_have_succeeded`` is true when a write may have gone through."""

    default_reason = Reason.TEMPORARY
    retryable = True

    def __init__(self, message: str = "", *, may_have_succeeded: bool = False, **kwargs: Any):
        super().__init__(message, **kwargs)
        self.may_have_succeeded = may_have_succeeded


class MetaPolicyError(MetaError):
    """Meta refuses this action for a policy or recipient reason; ``reason`` says which."""

    default_reason = Reason.UNKNOWN


class MetaPermissionError(MetaError):
    """A permission, app review, feature or account setting is missing."""

    default_reason = Reason.PERMISSION_DENIED


class MetaPermanentError(MetaError):
    """The request is wrong or Meta's answer is unusable; retrying will not help."""

    default_reason = Reason.UNKNOWN


_Spec = tuple[type[MetaError], str]

# (code, subcode) -> class and reason. Subcode None is the code's default.
_BY_CODE_AND_SUBCODE: dict[tuple[int, int | None], _Spec] = {
    # Auth
    (102, None): (MetaAuthError, Reason.SESSION_INVALID),
    (190, None): (MetaAuthError, Reason.TOKEN_INVALID),
    (190, 458): (MetaAuthError, Reason.APP_NOT_INSTALLED),
    (190, 459): (MetaAuthError, Reason.USER_CHECKPOINTED),
    (190, 460): (MetaAuthError, Reason.PASSWORD_CHANGED),
    (190, 463): (MetaAuthError, Reason.TOKEN_EXPIRED),
    (190, 464): (MetaAuthError, Reason.USER_UNCONFIRMED),
    (190, 467): (MetaAuthError, Reason.TOKEN_INVALID),
    # Rate limits
    (4, None): (MetaRateLimitError, Reason.APP_RATE_LIMITED),
    (17, None): (MetaRateLimitError, Reason.USER_RATE_LIMITED),
    (32, None): (MetaRateLimitError, Reason.PAGE_RATE_LIMITED),
    (341, None): (MetaRateLimitError, Reason.APP_LIMIT_REACHED),
    (613, None): (MetaRateLimitError, Reason.RATE_LIMITED),
    (613, 2534040): (MetaRateLimitError, Reason.MESSAGING_RATE_LIMITED),
    (80001, None): (MetaRateLimitError, Reason.BUSINESS_RATE_LIMITED),
    (80002, None): (MetaRateLimitError, Reason.BUSINESS_RATE_LIMITED),
    (80006, None): (MetaRateLimitError, Reason.BUSINESS_RATE_LIMITED),
    # Transient
    (1, None): (MetaTransientError, Reason.UNKNOWN_ERROR),
    (2, None): (MetaTransientError, Reason.TEMPORARY),
    (2, 2018344): (MetaTransientError, Reason.TEMPORARY_SEND_FAILURE),
    (100, 2018294): (MetaTransientError, Reason.ATTACHMENT_TIMEOUT),
    # Policy and recipient
    (10, 2534022): (MetaPolicyError, Reason.WINDOW_CLOSED),
    (10, 2018278): (MetaPolicyError, Reason.WINDOW_CLOSED),
    (10, 2018065): (MetaPolicyError, Reason.NEWS_RESTRICTED),
    (10, 2018108): (MetaPolicyError, Reason.PERSON_UNAVAILABLE),
    (10, 1893063): (MetaPolicyError, Reason.SENDER_RESTRICTED),
    (100, 2534025): (MetaPolicyError, Reason.ALREADY_REPLIED),
    (10903, None): (MetaPolicyError, Reason.ALREADY_REPLIED),
    (100, 2534029): (MetaPolicyError, Reason.BUSINESS_BLOCKED),
    (100, 2534037): (MetaPolicyError, Reason.NOT_THREAD_OWNER),
    (200, 1545041): (MetaPolicyError, Reason.PERSON_UNAVAILABLE),
    (200, 2018028): (MetaPolicyError, Reason.PERSON_UNAVAILABLE),
    (200, 2534041): (MetaPolicyError, Reason.MESSAGE_ACCESS_OFF),
    (368, None): (MetaPolicyError, Reason.BLOCKED_FOR_POLICY),
    (551, None): (MetaPolicyError, Reason.PERSON_UNAVAILABLE),
    (551, 1545041): (MetaPolicyError, Reason.PERSON_UNAVAILABLE),
    (613, 2018338): (MetaPolicyError, Reason.TAG_NOT_ALLOWED),
    (36103, None): (MetaPolicyError, Reason.NOT_ELIGIBLE),
    # Permission
    (10, None): (MetaPermissionError, Reason.PERMISSION_DENIED),
    (10, 2534077): (MetaPermissionError, Reason.ACCOUNT_LINK_UNVERIFIED),
    (100, 2018276): (MetaPermissionError, Reason.HUMAN_AGENT_NOT_APPROVED),
    (100, 2534013): (MetaPermissionError, Reason.INSTAGRAM_NOT_LINKED),
    (200, None): (MetaPermissionError, Reason.PERMISSION_DENIED),
    # Permanent
    (3, None): (MetaPermanentError, Reason.CAPABILITY_MISSING),
    (100, None): (MetaPermanentError, Reason.INVALID_PARAMETER),
    (100, 33): (MetaPermanentError, Reason.OBJECT_NOT_FOUND),
    (100, 2018001): (MetaPermanentError, Reason.RECIPIENT_NOT_FOUND),
    (100, 2018008): (MetaPermanentError, Reason.ATTACHMENT_FETCH_FAILED),
    (100, 2018047): (MetaPermanentError, Reason.ATTACHMENT_UPLOAD_FAILED),
    (100, 2018074): (MetaPermanentError, Reason.INVALID_ATTACHMENT_ID),
    (100, 2018109): (MetaPermanentError, Reason.ATTACHMENT_TOO_LARGE),
    (100, 2534014): (MetaPermanentError, Reason.RECIPIENT_NOT_FOUND),
    (100, 2534015): (MetaPermanentError, Reason.INVALID_MESSAGE),
    (506, None): (MetaPermanentError, Reason.DUPLICATE),
}

# Subcodes that mean the same thing whatever the code (the table lists them without one).
_BY_SUBCODE: dict[int, _Spec] = {
    2534068: (MetaPermanentError, Reason.MULTIPLE_IMAGES_UNAVAILABLE),
    2018300: (MetaPolicyError, Reason.THREAD_OWNED_BY_OTHER_APP),
    2018171: (MetaPermissionError, Reason.NOT_ROUTING_RECEIVER),
    2018234: (MetaPermissionError, Reason.NOT_ROUTING_RECEIVER),
    9000001: (MetaPolicyError, Reason.MESSAGE_DELETED),
}


def classify(code: int | None, subcode: int | None) -> _Spec | None:
    """The class and reason for a Graph code/subcode pair, or ``None`` if unknown."""
    if code is not None and subcode is not None and (code, subcode) in _BY_CODE_AND_SUBCODE:
        return _BY_CODE_AND_SUBCODE[(code, subcode)]
    if subcode is not None and subcode in _BY_SUBCODE:
        return _BY_SUBCODE[subcode]
    if code is not None:
        if (code, None) in _BY_CODE_AND_SUBCODE:
            return _BY_CODE_AND_SUBCODE[(code, None)]
        if 200 <= code <= 299:
            return (MetaPermissionError, Reason.PERMISSION_DENIED)
    return None


def _decode_body(body: bytes | str | Mapping[str, Any] | None) -> Any:
    if body is None:
        return None
    if isinstance(body, Mapping):
        return body
    if len(body) > 1_000_000:
        return None
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


def _retry_after(headers: Mapping[str, str] | None, usage: Usage | None) -> float | None:
    header = header_lookup(headers, "Retry-After")
    if header:
        seconds = as_int(header)
        if seconds is not None and seconds >= 0:
            return float(seconds)
    if usage is not None and usage.regain_access_seconds:
        return float(usage.regain_access_seconds)
    return None


def _text(value: Any, limit: int = 2000) -> str:
    return value[:limit] if isinstance(value, str) else ""


def map_error(
    status: int | None,
    body: bytes | str | Mapping[str, Any] | None,
    headers: Mapping[str, str] | None = None,
) -> MetaError:
    """Turn an HTTP failure from any Meta host into the right ``MetaError`` subclass.

    Understands the Graph envelope ``{"error": {...}}``, the flat api.instagram.com shape
    ``{"error_type", "code", "error_message"}``, OAuth-style ``{"error": "...",
    "error_description": "..."}`` and non-JSON bodies (then the HTTP status decides).
    Classification branches on code/subcode first and on HTTP status only as a fallback.
    """
    usage = parse_usage_headers(headers)
    data = as_dict(_decode_body(body))
    message = ""
    code: int | None = None
    subcode: int | None = None
    fbtrace_id: str | None = None
    error_type: str | None = None
    is_transient = False
    meta_user_message: str | None = None
    recognised = False

    envelope = as_dict(data.get("error")) if data is not None else None
    if envelope is not None:
        recognised = True
        message = _text(envelope.get("message"))
        code = as_int(envelope.get("code"))
        subcode = as_int(envelope.get("error_subcode"))
        fbtrace_id = as_str(envelope.get("fbtrace_id"))
        error_type = as_str(envelope.get("type"))
        is_transient = as_bool(envelope.get("is_transient"))
        user_msg = envelope.get("error_user_msg")
        meta_user_message = user_msg[:500] if isinstance(user_msg, str) and user_msg else None
    elif data is not None and ("error_type" in data or "error_message" in data):
        recognised = True
        message = _text(data.get("error_message"))
        code = as_int(data.get("code"))
        error_type = as_str(data.get("error_type"))
    elif data is not None and isinstance(data.get("error"), str):
        recognised = True
        message = _text(data.get("error_description")) or _text(data.get("error"))
        error_type = _text(data.get("error"), 200)

    common: dict[str, Any] = {
        "code": code,
        "subcode": subcode,
        "fbtrace_id": fbtrace_id,
        "http_status": status,
        "error_type": error_type,
        "is_transient": is_transient,
        "usage": usage,
    }

    spec = classify(code, subcode)
    if spec is None:
        if is_transient:
            spec = (MetaTransientError, Reason.TEMPORARY)
        elif status == 429:
            spec = (MetaRateLimitError, Reason.RATE_LIMITED)
        elif status is not None and status >= 500:
            spec = (MetaTransientError, Reason.SERVER_ERROR)
        elif not recognised and status == 401:
            spec = (MetaAuthError, Reason.TOKEN_INVALID)
        elif error_type == "OAuthException" and code == 400:
            spec = (MetaPermanentError, Reason.OAUTH_ERROR)
        elif not recognised:
            spec = (MetaPermanentError, Reason.INVALID_RESPONSE)
        else:
            spec = (MetaPermanentError, Reason.UNKNOWN)
    if not message and not recognised:
        message = f"HTTP {status} without a Graph error body" if status else "No response body"

    cls, reason = spec
    # Meta's own end-user sentence is used only where we have no better one of our own.
    user_message = None if reason in _USER_MESSAGES else meta_user_message
    if cls is MetaRateLimitError:
        return MetaRateLimitError(
            message,
            reason=reason,
            user_message=user_message,
            retry_after=_retry_after(headers, usage),
            **common,
        )
    return cls(message, reason=reason, user_message=user_message, **common)
