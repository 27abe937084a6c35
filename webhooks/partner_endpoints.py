"""Managing a workspace's callback endpoints: create, change, rotate keys, redeliver.

Every function runs inside the caller's tenant scope and is one transaction.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from webhooks.models import CallbackDelivery, CallbackEndpoint, CallbackEventType
from webhooks.partner_delivery import UnsafeCallbackUrl, url_check

MAX_ENDPOINTS = 20
MAX_OVERLAP = timedelta(days=7)


class CallbackError(ValueError):
    """A request the rules refuse; ``code`` is stable, ``message`` is for people."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def new_signing_key() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def _clean_events(events: list[str]) -> list[str]:
    unknown = sorted(set(events) - set(CallbackEventType.values))
    if unknown:
        raise CallbackError("unknown_event_type", f"Unknown event types: {', '.join(unknown)}.")
    if not events:
        raise CallbackError("no_event_types", "Subscribe to at least one event type.")
    return sorted(set(events))


def _clean_url(url: str) -> str:
    try:
        url_check(url)
    except UnsafeCallbackUrl as exc:
        raise CallbackError("url_not_allowed", str(exc)) from exc
    return url


def endpoint_list() -> QuerySet[CallbackEndpoint]:
    return CallbackEndpoint.objects.order_by("-id")


def endpoint_get(*, endpoint_id: int) -> CallbackEndpoint:
    return CallbackEndpoint.objects.get(pk=endpoint_id)


def endpoint_create(
    *, tenant_id: int, url: str, events: list[str], description: str = "", enabled: bool = True
) -> CallbackEndpoint:
    with transaction.atomic():
        if CallbackEndpoint.objects.count() >= MAX_ENDPOINTS:
            raise CallbackError(
                "too_many_endpoints", f"A workspace has at most {MAX_ENDPOINTS} endpoints."
            )
        return CallbackEndpoint.objects.create(
            tenant_id=tenant_id,
            url=_clean_url(url),
            events=_clean_events(events),
            description=description,
            enabled=enabled,
            secret=new_signing_key(),
        )


def endpoint_update(*, endpoint: CallbackEndpoint, changes: dict[str, Any]) -> CallbackEndpoint:
    """Change url, events, description or enabled; turning it on again forgets past failures."""
    with transaction.atomic():
        locked = CallbackEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        if "url" in changes:
            locked.url = _clean_url(changes["url"])
        if "events" in changes:
            locked.events = _clean_events(changes["events"])
        if "description" in changes:
            locked.description = changes["description"]
        if "enabled" in changes:
            if changes["enabled"] and not locked.enabled:
                locked.disabled_reason = ""
                locked.failing_since = None
            locked.enabled = changes["enabled"]
        locked.save()
    return locked


def endpoint_delete(*, endpoint: CallbackEndpoint) -> None:
    with transaction.atomic():
        endpoint.delete()


def endpoint_rotate_key(*, endpoint: CallbackEndpoint, overlap: timedelta) -> CallbackEndpoint:
    """A new signing key; the current one keeps signing too for ``overlap`` (0: stops now)."""
    if overlap < timedelta(0) or overlap > MAX_OVERLAP:
        raise CallbackError("overlap_out_of_range", "The overlap is 0 to 168 hours.")
    now = timezone.now()
    with transaction.atomic():
        locked = CallbackEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        locked.previous_secret = locked.secret if overlap else ""
        locked.previous_secret_expires_at = now + overlap if overlap else None
        locked.secret = new_signing_key()
        locked.secret_rotated_at = now
        locked.save()
    return locked


def delivery_list(
    *, endpoint: CallbackEndpoint, status: str | None = None
) -> QuerySet[CallbackDelivery]:
    deliveries = CallbackDelivery.objects.filter(endpoint=endpoint).select_related("event")
    if status:
        deliveries = deliveries.filter(status=status)
    return deliveries


def delivery_get(*, delivery_id: int) -> CallbackDelivery:
    return CallbackDelivery.objects.select_related("event", "endpoint").get(pk=delivery_id)


def delivery_redeliver(*, delivery: CallbackDelivery) -> CallbackDelivery:
    """Send a delivery again, by hand.

    A finished one (delivered or dead) is copied into a new delivery, keeping its place in the
    conversation's order; an open one is simply tried again at once.
    """
    with transaction.atomic():
        locked = CallbackDelivery.objects.select_for_update().get(pk=delivery.pk)
        now = timezone.now()
        if locked.status in CallbackDelivery.OPEN:
            locked.next_attempt_at = now
            locked.save(update_fields=["next_attempt_at"])
            return locked
        return CallbackDelivery.objects.create(
            tenant_id=locked.tenant_id,
            endpoint_id=locked.endpoint_id,
            event_id=locked.event_id,
            conversation_id=locked.conversation_id,
            sequence=locked.sequence,
            next_attempt_at=now,
            redelivery_of=locked,
        )
