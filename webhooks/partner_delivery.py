"""Delivering partner events: claim, sign, POST, record. The delivery row is the truth.

- The relay claims one due delivery at a time with ``SELECT … FOR UPDATE SKIP LOCKED`` and
  POSTs it inside the claiming transaction, so any number of workers share the work and a
  worker killed mid-call leaves the row due for the next one.
- A delivery is due when its time has come, its endpoint is enabled, and no earlier event of
  the same conversation is still open for that endpoint: a conversation's event N+1 never
  reaches an endpoint before N was delivered or given up.
- Every request is signed: ``X-Relay-Signature: t=<unix>,v1=<hex>`` where the hex is
  HMAC-SHA256 of ``f"{t}.{body}"`` with the endpoint's key (plus a second ``v1`` with the
  previous key while a rotation overlaps). A receiver refuses old timestamps to stop replays.
- Failures retry with exponential backoff and jitter for ``CALLBACK_RETRY_WINDOW_SECONDS``
  (a day), then the delivery is dead. An endpoint failing for
  ``CALLBACK_DISABLE_AFTER_SECONDS`` is disabled and the workspace's owners and admins told.
- Only http(s) URLs, and never loopback, private or link-local addresses (checked on the
  address actually dialled, redirects not followed) unless ``CALLBACK_ALLOW_PRIVATE_URLS``.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core.mail import send_mail
from django.db import connection, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone
from django_scopes import scopes_disabled
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from accounts.models import Membership, Role
from accounts.tenancy import tenant_task
from config.input_guard import parse_digits
from webhooks.models import CallbackDelivery, CallbackEndpoint
from webhooks.partner_events import envelope

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Relay-Signature"
EXCERPT_CHARS = 500
USER_AGENT = "Relay-Callbacks/1.0"


# -- the address guard -------------------------------------------------------------------------


class UnsafeCallbackUrl(ValueError):
    """A URL events may not be sent to."""


def _forbidden_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def url_check(url: str) -> None:
    """Refuse a URL that is not http(s), carries credentials, or names a private address.

    Host names are resolved only when a request is made (``_GuardedConnection``): what counts
    is the address dialled then, not what the name resolved to earlier.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeCallbackUrl("Use an http:// or https:// URL.")
    if parts.username or parts.password:
        raise UnsafeCallbackUrl("Put no user name or password in the URL.")
    if settings.CALLBACKS_ALLOW_PRIVATE_URLS:
        return
    host = parts.hostname.lower()
    if host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
        raise UnsafeCallbackUrl("Events are only sent to public addresses.")
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        return
    if _forbidden_address(str(literal)):
        raise UnsafeCallbackUrl("Events are only sent to public addresses.")


class _GuardedMixin:
    def _new_conn(self) -> Any:
        sock = super()._new_conn()  # type: ignore[misc]
        if not settings.CALLBACKS_ALLOW_PRIVATE_URLS:
            peer = sock.getpeername()[0]
            if _forbidden_address(peer):
                sock.close()
                raise UnsafeCallbackUrl("the address is not public")
        return sock


class _GuardedHTTPConnection(_GuardedMixin, HTTPConnection):
    pass


class _GuardedHTTPSConnection(_GuardedMixin, HTTPSConnection):
    pass


class _GuardedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


class _GuardedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {  # type: ignore[attr-defined]
            "http": _GuardedHTTPPool,
            "https": _GuardedHTTPSPool,
        }


def _session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # no proxy from the environment: the guard sees the real peer
    adapter = _GuardedAdapter(max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    return session


# -- signing -----------------------------------------------------------------------------------


def sign(secret: str, timestamp: int, body: bytes) -> str:
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(endpoint: CallbackEndpoint, timestamp: int, body: bytes) -> str:
    parts = [f"t={timestamp}", f"v1={sign(endpoint.secret, timestamp, body)}"]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires is not None and expires > timezone.now():
        parts.append(f"v1={sign(endpoint.previous_secret, timestamp, body)}")
    return ",".join(parts)


def signature_verify(
    *, secret: str, header: str, body: bytes, tolerance: int = 300, now: float | None = None
) -> bool:
    """What a receiver does: a fresh timestamp and one ``v1`` matching (constant time)."""
    fields = [item.split("=", 1) for item in header.split(",") if "=" in item]
    timestamps = [v for k, v in fields if k.strip() == "t"]
    timestamp = parse_digits(timestamps[0]) if len(timestamps) == 1 else None
    if timestamp is None:
        return False
    if abs((now if now is not None else time.time()) - timestamp) > tolerance:
        return False
    expected = sign(secret, timestamp, body)
    return any(hmac.compare_digest(expected, v.strip()) for k, v in fields if k.strip() == "v1")


def body_of(delivery: CallbackDelivery) -> bytes:
    payload = envelope(delivery.event)
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


# -- the relay ---------------------------------------------------------------------------------


def _due() -> Any:
    now = timezone.now()
    earlier_open = CallbackDelivery.objects.filter(
        endpoint_id=OuterRef("endpoint_id"),
        conversation_id=OuterRef("conversation_id"),
        status__in=CallbackDelivery.OPEN,
        sequence__lt=OuterRef("sequence"),
    )
    return (
        CallbackDelivery.objects.filter(
            status__in=CallbackDelivery.OPEN,
            next_attempt_at__lte=now,
            endpoint__enabled=True,
        )
        .filter(~Exists(earlier_open))
        .order_by("next_attempt_at", "id")
    )


def due_exists() -> bool:
    with scopes_disabled():
        return _due().exists()


def _claim_next() -> tuple[int, int] | None:
    """Lock one due delivery of any workspace for this transaction: (tenant id, delivery id)."""
    with scopes_disabled():
        claim = _due()
        if connection.features.has_select_for_update_skip_locked:
            claim = claim.select_for_update(skip_locked=True, of=("self",))
        return claim.values_list("tenant_id", "id").first()


def relay(*, time_budget: float = 20.0) -> int:
    """Deliver due events until none are left or the time budget is spent; how many tried."""
    deadline = time.monotonic() + time_budget
    tried = 0
    with _session() as session:
        while time.monotonic() < deadline:
            with transaction.atomic():
                claimed = _claim_next()
                if claimed is None:
                    break
                tenant_id, delivery_id = claimed
                delivery_attempt(tenant_id, delivery_id, session=session)
            tried += 1
    return tried


@dataclass
class Outcome:
    status_code: int | None
    latency_ms: int
    excerpt: str
    error: str

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def _post(
    session: requests.Session, endpoint: CallbackEndpoint, delivery: CallbackDelivery
) -> Outcome:
    body = body_of(delivery)
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: signature_header(endpoint, timestamp, body),
        "X-Relay-Event-Id": str(delivery.event_id),
        "X-Relay-Event-Type": delivery.event.type,
        "X-Relay-Delivery-Id": str(delivery.pk),
    }
    started = time.monotonic()
    try:
        url_check(endpoint.url)
        response = session.post(
            endpoint.url,
            data=body,
            headers=headers,
            timeout=(settings.CALLBACK_CONNECT_TIMEOUT_SECONDS, settings.CALLBACK_TIMEOUT_SECONDS),
            allow_redirects=False,
            stream=True,
        )
    except UnsafeCallbackUrl as exc:
        return Outcome(None, _ms(started), "", f"refused: {exc}")
    except requests.RequestException as exc:
        reason = exc.__context__ if isinstance(exc.__context__, UnsafeCallbackUrl) else exc
        return Outcome(None, _ms(started), "", f"{type(reason).__name__}: {reason}"[:300])
    try:
        raw = response.raw.read(EXCERPT_CHARS * 4, decode_content=True) or b""
    except Exception:  # a broken body still has its status code
        raw = b""
    finally:
        response.close()
    excerpt = raw.decode("utf-8", "replace")[:EXCERPT_CHARS].replace("\x00", "")
    return Outcome(response.status_code, _ms(started), excerpt, "")


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def retry_delay(attempts: int) -> timedelta:
    """Exponential backoff with jitter: about base·2^(k-1), capped, never the same twice."""
    ceiling = min(
        settings.CALLBACK_RETRY_MAX_DELAY_SECONDS,
        settings.CALLBACK_RETRY_BASE_SECONDS * 2 ** max(attempts - 1, 0),
    )
    return timedelta(seconds=ceiling / 2 + random.uniform(0, ceiling / 2))  # noqa: S311


@tenant_task
def delivery_attempt(
    tenant_id: int, delivery_id: int, *, session: requests.Session | None = None
) -> CallbackDelivery | None:
    """Try one delivery now (its row is locked by the caller) and record what happened."""
    delivery = (
        CallbackDelivery.objects.select_related("endpoint", "event").filter(pk=delivery_id).first()
    )
    if delivery is None or delivery.status not in CallbackDelivery.OPEN:
        return delivery
    endpoint = delivery.endpoint
    own_session = session is None
    active = session or _session()
    try:
        outcome = _post(active, endpoint, delivery)
    finally:
        if own_session:
            active.close()
    now = timezone.now()
    delivery.attempts += 1
    delivery.last_attempt_at = now
    delivery.last_status_code = outcome.status_code
    delivery.last_latency_ms = outcome.latency_ms
    delivery.response_excerpt = outcome.excerpt
    delivery.last_error = outcome.error or (
        "" if outcome.ok else f"the endpoint answered {outcome.status_code}"
    )
    if outcome.ok:
        delivery.status = CallbackDelivery.Status.DELIVERED
        delivery.delivered_at = now
        if endpoint.failing_since is not None:
            CallbackEndpoint.objects.filter(pk=endpoint.pk).update(failing_since=None)
    else:
        window = timedelta(seconds=settings.CALLBACK_RETRY_WINDOW_SECONDS)
        if now - delivery.created_at >= window:
            delivery.status = CallbackDelivery.Status.DEAD
        else:
            delivery.status = CallbackDelivery.Status.FAILED
            delivery.next_attempt_at = now + retry_delay(delivery.attempts)
        _endpoint_failed(endpoint, now)
    delivery.save()
    logger.info(
        "callback delivery %s to endpoint %s: %s (%s, %s ms, attempt %s)",
        delivery.pk,
        endpoint.pk,
        delivery.status,
        outcome.status_code or outcome.error,
        outcome.latency_ms,
        delivery.attempts,
    )
    return delivery


def _endpoint_failed(endpoint: CallbackEndpoint, now: datetime) -> None:
    locked = CallbackEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    if locked.failing_since is None:
        locked.failing_since = now
        locked.save(update_fields=["failing_since"])
        return
    limit = timedelta(seconds=settings.CALLBACK_DISABLE_AFTER_SECONDS)
    if locked.enabled and now - locked.failing_since >= limit:
        locked.enabled = False
        locked.disabled_reason = (
            f"Disabled on {now:%Y-%m-%d %H:%M} UTC: every delivery failed since "
            f"{locked.failing_since:%Y-%m-%d %H:%M} UTC."
        )
        locked.save(update_fields=["enabled", "disabled_reason"])
        notice = _disabled_notice(locked)
        if notice is not None:
            transaction.on_commit(lambda: send_mail(**notice, fail_silently=True))
        logger.warning("callback endpoint %s disabled after failing for a day", locked.pk)


def _disabled_notice(endpoint: CallbackEndpoint) -> dict[str, Any] | None:
    """The email telling the workspace's owners and admins that an endpoint was disabled."""
    admins = [
        m.user.email
        for m in Membership.objects.filter(role__in=[Role.OWNER, Role.ADMIN]).select_related("user")
    ]
    if not admins:
        return None
    host = urlsplit(endpoint.url).hostname or endpoint.url
    return {
        "subject": f"Event callbacks to {host} were turned off",
        "message": (
            f"Every delivery of events to {endpoint.url} has failed for a day, so it was "
            "turned off. Events are no longer sent to it.\n\n"
            "Once the receiver works again, turn the endpoint back on with the partner API "
            f"(PATCH /api/v1/webhook-endpoints/{endpoint.pk} with enabled=true); failed "
            "deliveries can be sent again from its delivery log.\n"
        ),
        "from_email": None,
        "recipient_list": admins,
    }
