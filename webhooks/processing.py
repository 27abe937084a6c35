"""Turning one stored delivery into product state. Runs inside the claiming transaction."""

from __future__ import annotations

import json
import logging
from typing import Any

from webhooks.models import WebhookEvent

logger = logging.getLogger(__name__)

MAX_NESTING = 64


class Unprocessable(Exception):
    """A signed body that can never be processed: quarantined for inspection, not retried."""


def _reject_constant(name: str) -> Any:
    raise Unprocessable(f"non-finite number {name} in body")


def _depth(value: Any, limit: int) -> int:
    stack = [(value, 1)]
    deepest = 0
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if deepest > limit:
            return deepest
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
    return deepest


def decode_body(raw_body: bytes) -> dict[str, Any]:
    """The delivery as a JSON object, or ``Unprocessable`` with the reason."""
    if raw_body.count(b"[") + raw_body.count(b"{") > 200_000:
        raise Unprocessable("too many nested containers")
    try:
        text = raw_body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Unprocessable("body is not UTF-8") from exc
    try:
        payload = json.loads(text, parse_constant=_reject_constant)
    except RecursionError as exc:
        raise Unprocessable("body nests too deeply") from exc
    except ValueError as exc:
        raise Unprocessable(f"body is not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise Unprocessable("body is not a JSON object")
    if _depth(payload, MAX_NESTING) > MAX_NESTING:
        raise Unprocessable("body nests too deeply")
    return payload


def process_event(event: WebhookEvent) -> None:
    decode_body(bytes(event.raw_body))
    # Routing and event handling arrive with the inbound messaging pipeline.
