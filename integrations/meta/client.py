"""HTTP client for Meta's Graph API (both login stacks).

One ``requests.Session`` per ``MetaClient``; connect and read timeouts on every call; the
Graph version pinned by configuration; ``access_token`` and ``appsecret_proof`` sent as query
parameters on every call that carries a token (the proof keyed with the Meta app secret on
graph.facebook.com and with the Instagram app secret on graph.instagram.com). Only GET
requests are retried, and only on ``MetaTransientError``; a POST (a send above all) is never
retried here: the caller decides, using ``MetaTransientError.may_have_succeeded``.

Tokens never appear in log lines or exception messages: requests' own exceptions (whose text
contains the URL with its query string) are replaced, not chained.

Entry points:

- ``MetaClient``: app-level calls (OAuth for both stacks, ``debug_token``, Pages, app
  subscriptions) and factories for per-account clients.
- ``AccountClient``: everything done on behalf of one connected account (Send API,
  conversations, routing, messenger_profile, webhook subscription), bound to its host, node
  and token. Get one from ``MetaClient.facebook_page()`` or ``MetaClient.instagram_account()``.
- ``client_from_settings()``: a ``MetaClient`` configured from Django settings.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, TypeVar
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from integrations.meta._coerce import as_dict, as_list, as_str
from integrations.meta.errors import (
    MetaError,
    MetaPermanentError,
    MetaTransientError,
    Reason,
    map_error,
)
from integrations.meta.models import (
    AccessToken,
    AppSubscription,
    AttachmentUpload,
    Button,
    Conversation,
    ConversationMessage,
    FacebookPage,
    FacebookUser,
    IceBreakerSet,
    InstagramProfile,
    Paged,
    PersistentMenu,
    QuickReply,
    SendResult,
    SubscribedApp,
    TemplateElement,
    ThreadOwner,
    TokenDebugInfo,
    UserProfile,
    paging_of,
)
from integrations.meta.signatures import appsecret_proof
from integrations.meta.usage import Usage, parse_usage_headers

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_GRAPH_VERSION = "v25.0"
_VERSION_RE = re.compile(r"^v\d+\.\d+$")

# Limits enforced before calling Meta (a ValueError is raised past them).
MAX_TEXT_BYTES = 1000
MAX_QUICK_REPLIES = 13
MAX_QUICK_REPLY_TITLE_CHARS = 20
MAX_TEMPLATE_ELEMENTS = 10
MAX_TEMPLATE_BUTTONS = 3
MAX_TEMPLATE_TITLE_CHARS = 80
MAX_BUTTON_TEMPLATE_TEXT_CHARS = 640
MAX_ICE_BREAKERS = 4
MAX_IMAGES_PER_MESSAGE = 10
MAX_METADATA_CHARS = 1000

INSTAGRAM_INBOX_APP_ID = "1217981644879628"
PAGE_INBOX_APP_ID = "263902037430900"

DEFAULT_FACEBOOK_SCOPES: tuple[str, ...] = (
    "instagram_basic",
    "instagram_manage_messages",
    "instagram_manage_comments",
    "pages_show_list",
    "pages_manage_metadata",
    "pages_read_engagement",
    "pages_messaging",
    "business_management",
)
DEFAULT_INSTAGRAM_SCOPES: tuple[str, ...] = (
    "instagram_business_basic",
    "instagram_business_manage_messages",
    "instagram_business_manage_comments",
)
DEFAULT_PAGE_SUBSCRIBED_FIELDS: tuple[str, ...] = (
    "messages",
    "messaging_postbacks",
    "message_reads",
    "message_reactions",
    "messaging_handovers",
    "standby",
)
DEFAULT_INSTAGRAM_SUBSCRIBED_FIELDS: tuple[str, ...] = (
    "messages",
    "message_echoes",
    "message_edit",
    "message_reactions",
    "messaging_seen",
    "messaging_postbacks",
    "messaging_referral",
    "messaging_handover",
    "standby",
    "comments",
    "live_comments",
)
PAGE_FIELDS = (
    "id,name,access_token,category,tasks,"
    "instagram_business_account{id,username,name,profile_picture_url}"
)
INSTAGRAM_ACCOUNT_FIELDS = "id,username,name,profile_picture_url,followers_count,media_count"
INSTAGRAM_ME_FIELDS = (
    "id,user_id,username,name,account_type,profile_picture_url,followers_count,"
    "follows_count,media_count"
)
CONVERSATION_FIELDS = "id,updated_time,participants"
MESSAGE_LIST_FIELDS = "id,created_time,from,to,message"
MESSAGE_FIELDS = "id,created_time,from,to,message,attachments,shares,story,reply_to"
USER_PROFILE_FIELDS = (
    "name,username,profile_pic,follower_count,is_user_follow_business,"
    "is_business_follow_user,is_verified_user"
)

AttachmentType = Literal["image", "video", "audio", "file"]
SenderAction = Literal["typing_on", "typing_off", "mark_seen"]


class Host(StrEnum):
    """Which Graph host (and so which token kind and app secret) a call goes to."""

    FACEBOOK = "facebook"  # graph.facebook.com, Facebook Login tokens (User, Page, app)
    INSTAGRAM = "instagram"  # graph.instagram.com, Instagram Login tokens


@dataclass(frozen=True, slots=True)
class MetaConfig:
    """Static configuration. Base URLs have no trailing slash and no version segment."""

    app_id: str = ""
    app_secret: str = field(default="", repr=False)
    instagram_app_id: str = ""
    instagram_app_secret: str = field(default="", repr=False)
    graph_version: str = DEFAULT_GRAPH_VERSION
    graph_url: str = "https://graph.facebook.com"
    instagram_graph_url: str = "https://graph.instagram.com"
    facebook_dialog_url: str = "https://www.facebook.com"
    instagram_authorize_url: str = "https://www.instagram.com/oauth/authorize"
    instagram_api_url: str = "https://api.instagram.com"
    connect_timeout: float = 3.05
    read_timeout: float = 10.0
    get_retries: int = 2
    retry_backoff_seconds: float = 0.5
    pool_maxsize: int = 50
    user_agent: str = "igdm-platform/1.0"

    def __post_init__(self) -> None:
        if not _VERSION_RE.match(self.graph_version):
            raise ValueError(f"graph_version must look like 'v25.0', got {self.graph_version!r}")
        if self.get_retries < 0:
            raise ValueError("get_retries must be >= 0")

    @property
    def app_access_token(self) -> str:
        return f"{self.app_id}|{self.app_secret}"


def _segment(value: str) -> str:
    """Quote one path segment so an id can never change the path."""
    text = str(value)
    if not text:
        raise ValueError("empty id in Graph path")
    return quote(text, safe="")


def _csv(values: Sequence[str] | str) -> str:
    return values if isinstance(values, str) else ",".join(values)


def _never_sent(exc: requests.ConnectionError) -> bool:
    """True when the connection failed before any byte of the request went out."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, NewConnectionError | ConnectTimeoutError)


class _Session(requests.Session):
    """A ``requests.Session`` that reads the environment (proxies, ``NO_PROXY``, the CA bundle)
    once per scheme and host instead of on every call. requests walks the whole environment
    for each request, which cost about a tenth of a worker's CPU per send; a running process's
    environment does not change, and Meta's hosts are few."""

    _MAX_HOSTS = 64

    def __init__(self) -> None:
        super().__init__()
        self._environment: dict[tuple[Any, ...], Any] = {}

    def merge_environment_settings(
        self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> Any:
        parts = urlsplit(url)
        key = (
            parts.scheme,
            parts.netloc,
            tuple(sorted((proxies or {}).items())),
            stream,
            verify,
            cert,
            self.trust_env,
        )
        merged = self._environment.get(key)
        if merged is None:
            merged = super().merge_environment_settings(url, proxies, stream, verify, cert)
            if len(self._environment) >= self._MAX_HOSTS:
                self._environment.clear()
            self._environment[key] = merged
        return {**merged, "proxies": dict(merged["proxies"])}


class MetaClient:
    """App-level Graph API client. Thread-safe for concurrent calls."""

    def __init__(
        self,
        config: MetaConfig,
        *,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self._sleep = sleep
        self._local = threading.local()
        if session is None:
            session = _Session()
            adapter = HTTPAdapter(
                pool_connections=4, pool_maxsize=config.pool_maxsize, max_retries=0
            )
            session.mount("https://", adapter)
            session.mount("http://", adapter)
        session.headers["User-Agent"] = config.user_agent
        self.session = session

    def __repr__(self) -> str:
        return f"MetaClient(version={self.config.graph_version!r})"

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> MetaClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- usage --------------------------------------------------------------------------------

    @property
    def last_usage(self) -> Usage | None:
        """Usage headers of the last response received by this thread (``None`` if absent)."""
        return getattr(self._local, "last_usage", None)

    # -- transport ----------------------------------------------------------------------------

    def _base(self, host: Host) -> str:
        base = self.config.graph_url if host is Host.FACEBOOK else self.config.instagram_graph_url
        return base.rstrip("/")

    def _secret_for(self, host: Host) -> str:
        if host is Host.INSTAGRAM:
            return self.config.instagram_app_secret
        return self.config.app_secret

    def url_for(self, host: Host, path: str, *, versioned: bool = True) -> str:
        """Absolute URL of a Graph path (``path`` without leading slash or version)."""
        path = path.lstrip("/")
        if versioned:
            return f"{self._base(host)}/{self.config.graph_version}/{path}"
        return f"{self._base(host)}/{path}"

    def request(
        self,
        method: str,
        host: Host,
        path: str,
        *,
        token: str | None = None,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        form: Mapping[str, Any] | None = None,
        files: Mapping[str, Any] | None = None,
        versioned: bool = True,
        url: str | None = None,
        retry: bool | None = None,
    ) -> dict[str, Any]:
        """Low-level call returning the decoded JSON object, or raising ``MetaError``.

        ``retry`` defaults to True for GET and False otherwise.
        """
        method = method.upper()
        target = url or self.url_for(host, path, versioned=versioned)
        query: dict[str, Any] = {k: v for k, v in (params or {}).items() if v is not None}
        if token:
            query["access_token"] = token
            secret = self._secret_for(host)
            if secret:
                query["appsecret_proof"] = appsecret_proof(token, secret)
        may_retry = (method == "GET") if retry is None else retry
        attempts = 1 + (self.config.get_retries if may_retry else 0)
        for attempt in range(1, attempts + 1):
            try:
                return self._send_once(method, host, target, query, json_body, form, files)
            except MetaTransientError as exc:
                if attempt >= attempts:
                    raise
                delay = self.config.retry_backoff_seconds * (2 ** (attempt - 1))
                logger.info(
                    "meta %s %s transient failure (%s), retry %d/%d in %.2fs",
                    method,
                    urlsplit(target).path,
                    exc.reason,
                    attempt,
                    attempts - 1,
                    delay,
                )
                self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _send_once(
        self,
        method: str,
        host: Host,
        url: str,
        query: dict[str, Any],
        json_body: Any,
        form: Mapping[str, Any] | None,
        files: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        path = urlsplit(url).path
        started = time.monotonic()
        try:
            response = self.session.request(
                method,
                url,
                params=query or None,
                json=json_body,
                data=form,
                files=files,
                timeout=(self.config.connect_timeout, self.config.read_timeout),
                allow_redirects=False,
            )
        except requests.Timeout as exc:
            connect = isinstance(exc, requests.ConnectTimeout)
            logger.warning("meta %s %s %s timed out", method, host.value, path)
            raise MetaTransientError(
                f"{type(exc).__name__} on {method} {path}",
                reason=Reason.TIMEOUT,
                may_have_succeeded=method != "GET" and not connect,
            ) from None
        except requests.ConnectionError as exc:
            logger.warning("meta %s %s %s connection error", method, host.value, path)
            raise MetaTransientError(
                f"{type(exc).__name__} on {method} {path}",
                reason=Reason.CONNECTION_ERROR,
                may_have_succeeded=method != "GET" and not _never_sent(exc),
            ) from None
        except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError):
            raise MetaTransientError(
                f"broken response on {method} {path}",
                reason=Reason.CONNECTION_ERROR,
                may_have_succeeded=method != "GET",
            ) from None
        except requests.RequestException as exc:
            raise MetaPermanentError(
                f"{type(exc).__name__} on {method} {path}", reason=Reason.UNKNOWN
            ) from None

        elapsed_ms = (time.monotonic() - started) * 1000
        usage = parse_usage_headers(response.headers)
        self._local.last_usage = usage
        status = response.status_code
        logger.debug("meta %s %s %s -> %s in %.0f ms", method, host.value, path, status, elapsed_ms)
        if 200 <= status < 300:
            body = self._decode(response, method, path)
            if isinstance(body.get("error"), dict):
                raise map_error(status, body, response.headers)
            return body
        error = map_error(status, response.content, response.headers)
        logger.info(
            "meta %s %s %s failed: %s %s code=%s subcode=%s fbtrace_id=%s",
            method,
            host.value,
            path,
            status,
            error.reason,
            error.code,
            error.subcode,
            error.fbtrace_id,
        )
        raise error

    @staticmethod
    def _decode(response: requests.Response, method: str, path: str) -> dict[str, Any]:
        if not response.content:
            return {}
        try:
            body = json.loads(response.content)
        except (ValueError, RecursionError):
            raise MetaTransientError(
                f"non-JSON success body on {method} {path}",
                reason=Reason.INVALID_RESPONSE,
                http_status=response.status_code,
                may_have_succeeded=method != "GET",
            ) from None
        if isinstance(body, dict):
            return body
        return {"result": body}

    # -- paging -------------------------------------------------------------------------------

    def _same_origin(self, host: Host, url: str) -> bool:
        a, b = urlsplit(url), urlsplit(self._base(host))
        return (a.scheme, a.netloc) == (b.scheme, b.netloc)

    def fetch_page(
        self,
        host: Host,
        path: str,
        parse: Callable[[dict[str, Any]], T],
        *,
        token: str,
        params: Mapping[str, Any] | None = None,
        container: str | None = None,
        url: str | None = None,
    ) -> Paged[T]:
        """Fetch one page of an edge. ``container`` names a nested edge in the first page."""
        body = self.request("GET", host, path, token=token, params=params, url=url)
        edge = as_dict(body.get(container)) if container else body
        edge = edge or {}
        items = tuple(parse(item) for item in as_list(edge.get("data")) if isinstance(item, dict))
        before, after, next_url = paging_of(edge)
        return Paged(items=items, before=before, after=after, next_url=next_url)

    def next_page(
        self,
        host: Host,
        path: str,
        page: Paged[T],
        parse: Callable[[dict[str, Any]], T],
        *,
        token: str,
        params: Mapping[str, Any] | None = None,
    ) -> Paged[T] | None:
        """The page after ``page``, following ``paging.next`` when it points at our host.

        The ``next`` URL's own parameters are kept; the token and proof are re-applied so a
        ``next`` link never decides where the token goes. A ``next`` URL on another origin is
        not followed: the ``after`` cursor is used on the original path instead.
        """
        if not page.next_url:
            return None
        if self._same_origin(host, page.next_url):
            parts = urlsplit(page.next_url)
            next_params = {
                k: v
                for k, v in parse_qsl(parts.query, keep_blank_values=True)
                if k not in {"access_token", "appsecret_proof"}
            }
            bare = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
            return self.fetch_page(host, path, parse, token=token, params=next_params, url=bare)
        if page.after:
            return self.fetch_page(
                host, path, parse, token=token, params={**(params or {}), "after": page.after}
            )
        return None

    def iterate(
        self,
        host: Host,
        path: str,
        parse: Callable[[dict[str, Any]], T],
        *,
        token: str,
        params: Mapping[str, Any] | None = None,
        container: str | None = None,
        max_pages: int | None = None,
    ) -> Iterator[T]:
        """Yield every item of an edge, page after page (stops on a repeated cursor)."""
        page: Paged[T] | None = self.fetch_page(
            host, path, parse, token=token, params=params, container=container
        )
        seen: set[str] = set()
        pages = 0
        while page is not None:
            pages += 1
            yield from page.items
            marker = page.next_url or ""
            if not page.items or marker in seen or (max_pages and pages >= max_pages):
                return
            seen.add(marker)
            page = self.next_page(host, path, page, parse, token=token, params=params)

    # -- Facebook Login -----------------------------------------------------------------------

    def facebook_login_url(
        self,
        *,
        redirect_uri: str,
        state: str,
        config_id: str | None = None,
        scopes: Sequence[str] | None = None,
        extras: Mapping[str, Any] | None = None,
        display: str | None = None,
        override_default_response_type: bool = False,
    ) -> str:
        """URL of the Facebook Login (for Business) dialog; ``config_id`` replaces ``scopes``."""
        if not state:
            raise ValueError("state is required")
        params: dict[str, str] = {
            "client_id": self.config.app_id,
            "redirect_uri": redirect_uri,
            "state": state,
            "response_type": "code",
        }
        if config_id:
            params["config_id"] = config_id
        elif scopes:
            params["scope"] = ",".join(scopes)
        if override_default_response_type:
            params["override_default_response_type"] = "true"
        if display:
            params["display"] = display
        if extras:
            params["extras"] = json.dumps(extras, separators=(",", ":"))
        base = self.config.facebook_dialog_url.rstrip("/")
        return f"{base}/{self.config.graph_version}/dialog/oauth?{urlencode(params)}"

    def exchange_facebook_code(self, *, code: str, redirect_uri: str) -> AccessToken:
        """Exchange the dialog's ``code`` for a user token (single use: never retried)."""
        body = self.request(
            "GET",
            Host.FACEBOOK,
            "oauth/access_token",
            params={
                "client_id": self.config.app_id,
                "client_secret": self.config.app_secret,
                "redirect_uri": redirect_uri,
                "code": code,
            },
            retry=False,
        )
        return self._token_or_error(body)

    def exchange_facebook_long_lived_token(self, short_lived_token: str) -> AccessToken:
        """Exchange a user token for a ~60-day one (``fb_exchange_token``)."""
        body = self.request(
            "GET",
            Host.FACEBOOK,
            "oauth/access_token",
            params={
                "grant_type": "fb_exchange_token",
                "client_id": self.config.app_id,
                "client_secret": self.config.app_secret,
                "fb_exchange_token": short_lived_token,
            },
        )
        return self._token_or_error(body)

    def debug_token(self, input_token: str) -> TokenDebugInfo:
        """Inspect any token (validity, type, scopes, granular targets, expiries)."""
        body = self.request(
            "GET",
            Host.FACEBOOK,
            "debug_token",
            token=self.config.app_access_token,
            params={"input_token": input_token},
        )
        return TokenDebugInfo.from_api(body)

    def facebook_me(self, user_token: str) -> FacebookUser:
        body = self.request(
            "GET", Host.FACEBOOK, "me", token=user_token, params={"fields": "id,name"}
        )
        return FacebookUser(id=as_str(body.get("id")) or "", name=as_str(body.get("name")))

    def list_pages(self, user_token: str, *, fields: str = PAGE_FIELDS) -> list[FacebookPage]:
        """Every Page the user granted, with Page tokens and linked Instagram accounts."""
        return list(
            self.iterate(
                Host.FACEBOOK,
                "me/accounts",
                FacebookPage.from_api,
                token=user_token,
                params={"fields": fields},
            )
        )

    def get_page(self, page_id: str, token: str) -> FacebookPage:
        body = self.request(
            "GET",
            Host.FACEBOOK,
            _segment(page_id),
            token=token,
            params={
                "fields": "id,name,instagram_business_account{id,username,name,profile_picture_url}"
            },
        )
        return FacebookPage.from_api(body)

    def get_instagram_account(self, ig_id: str, page_token: str) -> InstagramProfile:
        """Details of a Page-linked Instagram account (Facebook Login path)."""
        body = self.request(
            "GET",
            Host.FACEBOOK,
            _segment(ig_id),
            token=page_token,
            params={"fields": INSTAGRAM_ACCOUNT_FIELDS},
        )
        return InstagramProfile.from_api(body)

    # -- Instagram Login ----------------------------------------------------------------------

    def instagram_login_url(
        self,
        *,
        redirect_uri: str,
        state: str,
        scopes: Sequence[str] = DEFAULT_INSTAGRAM_SCOPES,
        force_reauth: bool = False,
        enable_fb_login: bool | None = None,
    ) -> str:
        """URL of the Instagram Business Login authorize page."""
        if not state:
            raise ValueError("state is required")
        params: dict[str, str] = {
            "client_id": self.config.instagram_app_id,
            "redirect_uri": redirect_uri,
            "response_type": "code",
            "scope": ",".join(scopes),
            "state": state,
        }
        if force_reauth:
            params["force_reauth"] = "true"
        if enable_fb_login is not None:
            params["enable_fb_login"] = "true" if enable_fb_login else "false"
        return f"{self.config.instagram_authorize_url}?{urlencode(params)}"

    def exchange_instagram_code(self, *, code: str, redirect_uri: str) -> AccessToken:
        """Exchange an Instagram Login code for a short-lived token (flat or ``data[]`` body)."""
        code = code.removesuffix("#_")
        body = self.request(
            "POST",
            Host.INSTAGRAM,
            "",
            url=f"{self.config.instagram_api_url.rstrip('/')}/oauth/access_token",
            form={
                "client_id": self.config.instagram_app_id,
                "client_secret": self.config.instagram_app_secret,
                "grant_type": "authorization_code",
                "redirect_uri": redirect_uri,
                "code": code,
            },
        )
        return self._token_or_error(body)

    def exchange_instagram_long_lived_token(self, short_lived_token: str) -> AccessToken:
        """Exchange a short-lived Instagram token for a 60-day one (``ig_exchange_token``)."""
        body = self.request(
            "GET",
            Host.INSTAGRAM,
            "access_token",
            token=short_lived_token,
            params={
                "grant_type": "ig_exchange_token",
                "client_secret": self.config.instagram_app_secret,
            },
            versioned=False,
        )
        return self._token_or_error(body)

    def refresh_instagram_token(self, long_lived_token: str) -> AccessToken:
        """Refresh a long-lived Instagram token (must be >= 24 h old and not expired)."""
        body = self.request(
            "GET",
            Host.INSTAGRAM,
            "refresh_access_token",
            token=long_lived_token,
            params={"grant_type": "ig_refresh_token"},
            versioned=False,
        )
        return self._token_or_error(body)

    def instagram_me(self, token: str, *, fields: str = INSTAGRAM_ME_FIELDS) -> InstagramProfile:
        """``/me`` on graph.instagram.com; ``user_id`` is the id webhooks use."""
        body = self.request("GET", Host.INSTAGRAM, "me", token=token, params={"fields": fields})
        return InstagramProfile.from_api(body)

    @staticmethod
    def _token_or_error(body: dict[str, Any]) -> AccessToken:
        token = AccessToken.from_api(body)
        if not token.access_token:
            raise MetaPermanentError(
                "token response without access_token", reason=Reason.INVALID_RESPONSE
            )
        return token

    # -- app-level webhook subscriptions ------------------------------------------------------

    def list_app_subscriptions(self) -> list[AppSubscription]:
        body = self.request(
            "GET",
            Host.FACEBOOK,
            f"{_segment(self.config.app_id)}/subscriptions",
            token=self.config.app_access_token,
        )
        return [
            AppSubscription.from_api(i) for i in as_list(body.get("data")) if isinstance(i, dict)
        ]

    def set_app_subscription(
        self,
        *,
        object: str,  # noqa: A002 - Meta's parameter name
        callback_url: str,
        verify_token: str,
        fields: Sequence[str],
        include_values: bool = True,
    ) -> bool:
        body = self.request(
            "POST",
            Host.FACEBOOK,
            f"{_segment(self.config.app_id)}/subscriptions",
            token=self.config.app_access_token,
            params={
                "object": object,
                "callback_url": callback_url,
                "verify_token": verify_token,
                "fields": _csv(fields),
                "include_values": "true" if include_values else "false",
            },
        )
        return _success(body)

    # -- per-account clients ------------------------------------------------------------------

    def facebook_page(self, page_id: str, page_token: str) -> AccountClient:
        """Client for an Instagram account connected through Facebook Login (via its Page)."""
        return AccountClient(self, Host.FACEBOOK, page_id, page_token)

    def instagram_account(self, access_token: str, ig_user_id: str = "me") -> AccountClient:
        """Client for an account connected through Instagram Login."""
        return AccountClient(self, Host.INSTAGRAM, ig_user_id, access_token)


def _success(body: Mapping[str, Any]) -> bool:
    value = body.get("success", body.get("result"))
    return value is True


def _check_text(text: str) -> None:
    if not text:
        raise ValueError("text must not be empty")
    if len(text.encode("utf-8")) > MAX_TEXT_BYTES:
        raise ValueError(f"text exceeds {MAX_TEXT_BYTES} bytes of UTF-8")


class AccountClient:
    """Calls made for one connected account, bound to its host, node id and token.

    On the Facebook Login path the node is the Page id and the token a Page token; on the
    Instagram Login path the node is the Instagram account id (or ``me``) and the token an
    Instagram user token.
    """

    def __init__(self, client: MetaClient, host: Host, node_id: str, token: str) -> None:
        if not token:
            raise ValueError("token is required")
        self.client = client
        self.host = host
        self.node_id = node_id
        self._token = token

    def __repr__(self) -> str:
        return f"AccountClient(host={self.host.value!r}, node_id={self.node_id!r})"

    def rebound(self, client: MetaClient) -> AccountClient:
        """The same account through another client (another thread's session)."""
        if client is self.client:
            return self
        return AccountClient(client, self.host, self.node_id, self._token)

    @property
    def last_usage(self) -> Usage | None:
        return self.client.last_usage

    def _node_path(self, *suffix: str) -> str:
        return "/".join([_segment(self.node_id), *suffix])

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        files: Mapping[str, Any] | None = None,
        form: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        return self.client.request(
            method,
            self.host,
            path,
            token=self._token,
            params=params,
            json_body=json_body,
            files=files,
            form=form,
        )

    # -- webhook subscription (per account) ---------------------------------------------------

    def subscribe_app(self, fields: Sequence[str] | None = None) -> bool:
        """Install the app's webhooks on this account (``POST subscribed_apps``)."""
        if fields is None:
            fields = (
                DEFAULT_PAGE_SUBSCRIBED_FIELDS
                if self.host is Host.FACEBOOK
                else DEFAULT_INSTAGRAM_SUBSCRIBED_FIELDS
            )
        body = self._call(
            "POST", self._node_path("subscribed_apps"), params={"subscribed_fields": _csv(fields)}
        )
        return _success(body)

    def subscribed_apps(self) -> list[SubscribedApp]:
        body = self._call("GET", self._node_path("subscribed_apps"))
        return [SubscribedApp.from_api(i) for i in as_list(body.get("data")) if isinstance(i, dict)]

    def unsubscribe_app(self) -> bool:
        return _success(self._call("DELETE", self._node_path("subscribed_apps")))

    # -- Send API -----------------------------------------------------------------------------

    def _send(self, body: dict[str, Any]) -> SendResult:
        return SendResult.from_api(self._call("POST", self._node_path("messages"), json_body=body))

    @staticmethod
    def _message_body(
        recipient_id: str,
        message: dict[str, Any],
        *,
        human_agent: bool,
        reply_to_mid: str | None,
        metadata: str | None,
    ) -> dict[str, Any]:
        if not recipient_id:
            raise ValueError("recipient_id is required")
        if metadata is not None:
            if len(metadata) > MAX_METADATA_CHARS:
                raise ValueError(f"metadata exceeds {MAX_METADATA_CHARS} characters")
            message = {**message, "metadata": metadata}
        body: dict[str, Any] = {
            "recipient": {"id": recipient_id},
            "messaging_type": "MESSAGE_TAG" if human_agent else "RESPONSE",
            "message": message,
        }
        if human_agent:
            body["tag"] = "HUMAN_AGENT"
        if reply_to_mid:
            body["reply_to"] = {"mid": reply_to_mid}
        return body

    def send_text(
        self,
        recipient_id: str,
        text: str,
        *,
        quick_replies: Sequence[QuickReply] = (),
        human_agent: bool = False,
        reply_to_mid: str | None = None,
        metadata: str | None = None,
    ) -> SendResult:
        """Send text (max 1000 UTF-8 bytes), optionally with up to 13 quick replies.

        ``human_agent=True`` sends with ``messaging_type=MESSAGE_TAG`` and ``tag=HUMAN_AGENT``
        (7-day window, human-written replies only, needs Meta's approval).
        """
        _check_text(text)
        message: dict[str, Any] = {"text": text}
        if quick_replies:
            if len(quick_replies) > MAX_QUICK_REPLIES:
                raise ValueError(f"at most {MAX_QUICK_REPLIES} quick replies")
            for qr in quick_replies:
                if qr.content_type == "text" and not (
                    0 < len(qr.title) <= MAX_QUICK_REPLY_TITLE_CHARS
                ):
                    raise ValueError("quick reply title must be 1-20 characters")
            message["quick_replies"] = [qr.to_api() for qr in quick_replies]
        return self._send(
            self._message_body(
                recipient_id,
                message,
                human_agent=human_agent,
                reply_to_mid=reply_to_mid,
                metadata=metadata,
            )
        )

    def send_attachment(
        self,
        recipient_id: str,
        attachment_type: AttachmentType,
        *,
        url: str | None = None,
        attachment_id: str | None = None,
        human_agent: bool = False,
        reply_to_mid: str | None = None,
        metadata: str | None = None,
    ) -> SendResult:
        """Send one image/video/audio/file, by public URL or by an uploaded ``attachment_id``."""
        if (url is None) == (attachment_id is None):
            raise ValueError("give exactly one of url or attachment_id")
        payload = {"url": url} if url is not None else {"attachment_id": attachment_id}
        message = {"attachment": {"type": attachment_type, "payload": payload}}
        return self._send(
            self._message_body(
                recipient_id,
                message,
                human_agent=human_agent,
                reply_to_mid=reply_to_mid,
                metadata=metadata,
            )
        )

    def send_images(
        self,
        recipient_id: str,
        urls: Sequence[str],
        *,
        human_agent: bool = False,
        metadata: str | None = None,
    ) -> SendResult:
        """Send up to 10 images in one message (``attachments`` array)."""
        if not urls or len(urls) > MAX_IMAGES_PER_MESSAGE:
            raise ValueError(f"send 1-{MAX_IMAGES_PER_MESSAGE} images")
        message = {"attachments": [{"type": "image", "payload": {"url": u}} for u in urls]}
        return self._send(
            self._message_body(
                recipient_id, message, human_agent=human_agent, reply_to_mid=None, metadata=metadata
            )
        )

    def send_like_heart(
        self, recipient_id: str, *, human_agent: bool = False, metadata: str | None = None
    ) -> SendResult:
        """Send the heart sticker."""
        message = {"attachment": {"type": "like_heart"}}
        return self._send(
            self._message_body(
                recipient_id, message, human_agent=human_agent, reply_to_mid=None, metadata=metadata
            )
        )

    def send_media_share(
        self,
        recipient_id: str,
        media_id: str,
        *,
        human_agent: bool = False,
        metadata: str | None = None,
    ) -> SendResult:
        """Share one of the business's own posts (``MEDIA_SHARE``)."""
        message = {"attachment": {"type": "MEDIA_SHARE", "payload": {"id": media_id}}}
        return self._send(
            self._message_body(
                recipient_id, message, human_agent=human_agent, reply_to_mid=None, metadata=metadata
            )
        )

    def send_generic_template(
        self,
        recipient_id: str,
        elements: Sequence[TemplateElement],
        *,
        human_agent: bool = False,
        metadata: str | None = None,
    ) -> SendResult:
        """Send a carousel of 1-10 cards, each with up to 3 buttons."""
        if not elements or len(elements) > MAX_TEMPLATE_ELEMENTS:
            raise ValueError(f"generic template takes 1-{MAX_TEMPLATE_ELEMENTS} elements")
        for element in elements:
            if not element.title or len(element.title) > MAX_TEMPLATE_TITLE_CHARS:
                raise ValueError("element title must be 1-80 characters")
            if element.subtitle and len(element.subtitle) > MAX_TEMPLATE_TITLE_CHARS:
                raise ValueError("element subtitle must be at most 80 characters")
            if len(element.buttons) > MAX_TEMPLATE_BUTTONS:
                raise ValueError(f"at most {MAX_TEMPLATE_BUTTONS} buttons per element")
        message = {
            "attachment": {
                "type": "template",
                "payload": {
                    "template_type": "generic",
                    "elements": [e.to_api() for e in elements],
                },
            }
        }
        return self._send(
            self._message_body(
                recipient_id, message, human_agent=human_agent, reply_to_mid=None, metadata=metadata
            )
        )

    def send_button_template(
        self,
        recipient_id: str,
        text: str,
        buttons: Sequence[Button],
        *,
        human_agent: bool = False,
        metadata: str | None = None,
    ) -> SendResult:
        """Send text (max 640 chars) with 1-3 buttons."""
        if not text or len(text) > MAX_BUTTON_TEMPLATE_TEXT_CHARS:
            raise ValueError("button template text must be 1-640 characters")
        if not buttons or len(buttons) > MAX_TEMPLATE_BUTTONS:
            raise ValueError(f"button template takes 1-{MAX_TEMPLATE_BUTTONS} buttons")
        message = {
            "attachment": {
                "type": "template",
                "payload": {
                    "template_type": "button",
                    "text": text,
                    "buttons": [b.to_api() for b in buttons],
                },
            }
        }
        return self._send(
            self._message_body(
                recipient_id, message, human_agent=human_agent, reply_to_mid=None, metadata=metadata
            )
        )

    def send_private_reply(self, comment_id: str, text: str) -> SendResult:
        """Answer a comment in DM (once per comment, within 7 days).

        ``recipient_id`` of the result is the commenter's IGSID.
        """
        _check_text(text)
        if not comment_id:
            raise ValueError("comment_id is required")
        body = {"recipient": {"comment_id": comment_id}, "message": {"text": text}}
        return self._send(body)

    def react(self, recipient_id: str, message_id: str, reaction: str = "love") -> SendResult:
        """React to a customer's message (Facebook path accepts ``love`` only)."""
        body = {
            "recipient": {"id": recipient_id},
            "sender_action": "react",
            "payload": {"message_id": message_id, "reaction": reaction},
        }
        return self._send(body)

    def unreact(self, recipient_id: str, message_id: str) -> SendResult:
        body = {
            "recipient": {"id": recipient_id},
            "sender_action": "unreact",
            "payload": {"message_id": message_id},
        }
        return self._send(body)

    def send_sender_action(self, recipient_id: str, action: SenderAction) -> SendResult:
        """``typing_on``, ``typing_off`` or ``mark_seen``; sent alone, as Meta requires."""
        if action not in ("typing_on", "typing_off", "mark_seen"):
            raise ValueError(f"unsupported sender action {action!r}")
        return self._send({"recipient": {"id": recipient_id}, "sender_action": action})

    def typing_on(self, recipient_id: str) -> SendResult:
        return self.send_sender_action(recipient_id, "typing_on")

    def typing_off(self, recipient_id: str) -> SendResult:
        return self.send_sender_action(recipient_id, "typing_off")

    def mark_seen(self, recipient_id: str) -> SendResult:
        return self.send_sender_action(recipient_id, "mark_seen")

    # -- attachment upload --------------------------------------------------------------------

    def upload_attachment(
        self, attachment_type: AttachmentType, url: str, *, is_reusable: bool = True
    ) -> AttachmentUpload:
        """Upload by URL for a reusable ``attachment_id``."""
        body = {
            "platform": "instagram",
            "message": {
                "attachment": {
                    "type": attachment_type,
                    "payload": {"url": url, "is_reusable": is_reusable},
                }
            },
        }
        data = self._call("POST", self._node_path("message_attachments"), json_body=body)
        return self._attachment_result(data)

    def upload_attachment_file(
        self,
        attachment_type: AttachmentType,
        *,
        filename: str,
        content: bytes,
        content_type: str,
        is_reusable: bool = True,
    ) -> AttachmentUpload:
        """Upload file bytes (multipart ``filedata``) for a reusable ``attachment_id``."""
        message = {"attachment": {"type": attachment_type, "payload": {"is_reusable": is_reusable}}}
        data = self._call(
            "POST",
            self._node_path("message_attachments"),
            form={"platform": "instagram", "message": json.dumps(message)},
            files={"filedata": (filename, content, content_type)},
        )
        return self._attachment_result(data)

    @staticmethod
    def _attachment_result(data: Mapping[str, Any]) -> AttachmentUpload:
        attachment_id = as_str(data.get("attachment_id"))
        if not attachment_id:
            raise MetaPermanentError(
                "upload response without attachment_id", reason=Reason.INVALID_RESPONSE
            )
        return AttachmentUpload(attachment_id=attachment_id)

    # -- Conversations API --------------------------------------------------------------------

    def _conversation_params(
        self, user_id: str | None, fields: str, limit: int | None
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"platform": "instagram", "fields": fields}
        if user_id:
            params["user_id"] = user_id
        if limit:
            params["limit"] = limit
        return params

    def list_conversations(
        self,
        *,
        user_id: str | None = None,
        fields: str = CONVERSATION_FIELDS,
        limit: int | None = None,
        after: str | None = None,
    ) -> Paged[Conversation]:
        """One page of Instagram conversations (``user_id`` narrows to one customer)."""
        params = self._conversation_params(user_id, fields, limit)
        if after:
            params["after"] = after
        return self.client.fetch_page(
            self.host,
            self._node_path("conversations"),
            Conversation.from_api,
            token=self._token,
            params=params,
        )

    def iter_conversations(
        self,
        *,
        user_id: str | None = None,
        fields: str = CONVERSATION_FIELDS,
        limit: int | None = None,
        max_pages: int | None = None,
    ) -> Iterator[Conversation]:
        """Every conversation, following cursors page after page."""
        return self.client.iterate(
            self.host,
            self._node_path("conversations"),
            Conversation.from_api,
            token=self._token,
            params=self._conversation_params(user_id, fields, limit),
            max_pages=max_pages,
        )

    def find_conversation(self, user_id: str) -> Conversation | None:
        """The thread with one customer (IGSID), if any."""
        page = self.list_conversations(user_id=user_id)
        return page.items[0] if page.items else None

    def get_conversation(
        self, conversation_id: str, *, fields: str = "id,updated_time,participants"
    ) -> Conversation:
        body = self._call("GET", _segment(conversation_id), params={"fields": fields})
        return Conversation.from_api(body)

    def conversation_messages(
        self, conversation_id: str, *, fields: str = MESSAGE_LIST_FIELDS
    ) -> Paged[ConversationMessage]:
        """First page of a conversation's messages, newest first."""
        return self.client.fetch_page(
            self.host,
            _segment(conversation_id),
            ConversationMessage.from_api,
            token=self._token,
            params={"fields": f"messages{{{fields}}}"},
            container="messages",
        )

    def iter_conversation_messages(
        self,
        conversation_id: str,
        *,
        fields: str = MESSAGE_LIST_FIELDS,
        max_pages: int | None = None,
    ) -> Iterator[ConversationMessage]:
        """Every message id Meta lists for a conversation (details only for the latest 20)."""
        return self.client.iterate(
            self.host,
            _segment(conversation_id),
            ConversationMessage.from_api,
            token=self._token,
            params={"fields": f"messages{{{fields}}}"},
            container="messages",
            max_pages=max_pages,
        )

    def get_message(self, message_id: str, *, fields: str = MESSAGE_FIELDS) -> ConversationMessage:
        body = self._call("GET", _segment(message_id), params={"fields": fields})
        return ConversationMessage.from_api(body)

    def get_user_profile(self, igsid: str, *, fields: str = USER_PROFILE_FIELDS) -> UserProfile:
        """Profile of a customer who has messaged the business (consent required)."""
        body = self._call("GET", _segment(igsid), params={"fields": fields})
        profile = UserProfile.from_api(body)
        return profile if profile.id else dataclasses.replace(profile, id=igsid)

    # -- conversation routing -----------------------------------------------------------------

    def _routing(self, edge: str, body: dict[str, Any]) -> bool:
        return _success(self._call("POST", self._node_path(edge), json_body=body))

    def pass_thread_control(
        self, recipient_id: str, target_app_id: str, *, metadata: str | None = None
    ) -> bool:
        body: dict[str, Any] = {"recipient": {"id": recipient_id}, "target_app_id": target_app_id}
        if metadata:
            body["metadata"] = metadata
        return self._routing("pass_thread_control", body)

    def take_thread_control(self, recipient_id: str, *, metadata: str | None = None) -> bool:
        body: dict[str, Any] = {"recipient": {"id": recipient_id}}
        if metadata:
            body["metadata"] = metadata
        return self._routing("take_thread_control", body)

    def release_thread_control(self, recipient_id: str) -> bool:
        return self._routing("release_thread_control", {"recipient": {"id": recipient_id}})

    def request_thread_control(self, recipient_id: str, *, metadata: str | None = None) -> bool:
        body: dict[str, Any] = {"recipient": {"id": recipient_id}}
        if metadata:
            body["metadata"] = metadata
        return self._routing("request_thread_control", body)

    def extend_thread_control(self, recipient_id: str, duration_seconds: int) -> bool:
        return self._routing(
            "extend_thread_control",
            {"recipient": {"id": recipient_id}, "duration": duration_seconds},
        )

    def thread_owner(self, recipient_id: str) -> ThreadOwner:
        body = self._call(
            "GET", self._node_path("thread_owner"), params={"recipient": recipient_id}
        )
        return ThreadOwner.from_api(body)

    def messaging_feature_status(self) -> dict[str, bool]:
        body = self._call("GET", "me", params={"fields": "messaging_feature_status"})
        status = as_dict(body.get("messaging_feature_status")) or {}
        return {str(k): v for k, v in status.items() if isinstance(v, bool)}

    # -- messenger_profile: ice breakers and persistent menu ----------------------------------

    def _profile_get(self, field_name: str) -> list[Any]:
        body = self._call(
            "GET",
            self._node_path("messenger_profile"),
            params={"platform": "instagram", "fields": field_name},
        )
        values: list[Any] = []
        for item in as_list(body.get("data")):
            values.extend(as_list((as_dict(item) or {}).get(field_name)))
        if not values:
            values = as_list(body.get(field_name))
        return values

    def _profile_set(self, field_name: str, value: list[dict[str, Any]]) -> bool:
        body = self._call(
            "POST",
            self._node_path("messenger_profile"),
            params={"platform": "instagram"},
            json_body={"platform": "instagram", field_name: value},
        )
        return _success(body)

    def _profile_delete(self, field_name: str) -> bool:
        body = self._call(
            "DELETE",
            self._node_path("messenger_profile"),
            params={"platform": "instagram"},
            json_body={"platform": "instagram", "fields": [field_name]},
        )
        return _success(body)

    def set_ice_breakers(self, sets: Sequence[IceBreakerSet]) -> bool:
        """Replace the ice breakers (max 4 questions per locale)."""
        for item in sets:
            if not item.items or len(item.items) > MAX_ICE_BREAKERS:
                raise ValueError(f"each locale takes 1-{MAX_ICE_BREAKERS} ice breakers")
        return self._profile_set("ice_breakers", [s.to_api() for s in sets])

    def get_ice_breakers(self) -> list[IceBreakerSet]:
        return [s for s in map(IceBreakerSet.from_api, self._profile_get("ice_breakers")) if s]

    def delete_ice_breakers(self) -> bool:
        return self._profile_delete("ice_breakers")

    def set_persistent_menu(self, menus: Sequence[PersistentMenu]) -> bool:
        return self._profile_set("persistent_menu", [m.to_api() for m in menus])

    def get_persistent_menu(self) -> list[PersistentMenu]:
        return [m for m in map(PersistentMenu.from_api, self._profile_get("persistent_menu")) if m]

    def delete_persistent_menu(self) -> bool:
        return self._profile_delete("persistent_menu")


def client_from_settings(**overrides: Any) -> MetaClient:
    """A ``MetaClient`` configured from Django settings (``overrides`` win over settings).

    Reads ``META_APP_ID``, ``META_APP_SECRET``, ``META_INSTAGRAM_APP_ID``,
    ``META_INSTAGRAM_APP_SECRET``, ``META_GRAPH_VERSION``, ``META_GRAPH_URL``,
    ``META_INSTAGRAM_GRAPH_URL``, ``META_TIMEOUT_SECONDS`` and, for the simulator, the optional
    ``META_FACEBOOK_DIALOG_URL``, ``META_INSTAGRAM_AUTHORIZE_URL``, ``META_INSTAGRAM_API_URL``.
    """
    from django.conf import settings  # imported here so the package works without Django

    defaults = MetaConfig()
    timeout = float(getattr(settings, "META_TIMEOUT_SECONDS", defaults.read_timeout) or 10.0)
    values: dict[str, Any] = {
        "app_id": str(getattr(settings, "META_APP_ID", "") or ""),
        "app_secret": str(getattr(settings, "META_APP_SECRET", "") or ""),
        "instagram_app_id": str(getattr(settings, "META_INSTAGRAM_APP_ID", "") or ""),
        "instagram_app_secret": str(getattr(settings, "META_INSTAGRAM_APP_SECRET", "") or ""),
        "graph_version": getattr(settings, "META_GRAPH_VERSION", None) or defaults.graph_version,
        "graph_url": getattr(settings, "META_GRAPH_URL", None) or defaults.graph_url,
        "instagram_graph_url": getattr(settings, "META_INSTAGRAM_GRAPH_URL", None)
        or defaults.instagram_graph_url,
        "facebook_dialog_url": getattr(settings, "META_FACEBOOK_DIALOG_URL", None)
        or defaults.facebook_dialog_url,
        "instagram_authorize_url": getattr(settings, "META_INSTAGRAM_AUTHORIZE_URL", None)
        or defaults.instagram_authorize_url,
        "instagram_api_url": getattr(settings, "META_INSTAGRAM_API_URL", None)
        or defaults.instagram_api_url,
        "read_timeout": timeout,
        "connect_timeout": min(defaults.connect_timeout, timeout),
    }
    values.update(overrides)
    return MetaClient(MetaConfig(**values))


__all__ = [
    "DEFAULT_GRAPH_VERSION",
    "AccountClient",
    "Host",
    "MetaClient",
    "MetaConfig",
    "MetaError",
    "client_from_settings",
]
