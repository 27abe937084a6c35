"""Business hours: is an account open at a given moment, in its own time zone.

Hours are ``{"mon": [["09:00", "17:30"]], "tue": [...], ...}`` in the account's IANA zone
(``AccountAutomation.timezone``). A span whose end is not after its start runs past midnight
into the next day (``["22:00", "02:00"]``); ``"24:00"`` ends a span at midnight. An account with
no spans on any day has no business hours: it is never "outside" them.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from config.input_guard import parse_digits

logger = logging.getLogger(__name__)

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _minutes(value: Any) -> int | None:
    """``"HH:MM"`` as minutes after midnight (``"24:00"`` is 1440); None when malformed."""
    if not isinstance(value, str) or len(value) != 5 or value[2] != ":":
        return None
    hours, minutes = parse_digits(value[:2]), parse_digits(value[3:])
    if hours is None or minutes is None:
        return None
    total = hours * 60 + minutes
    if minutes > 59 or total > 24 * 60:
        return None
    return total


def spans_of(hours: Any, day: str) -> list[tuple[int, int]]:
    """The well-formed spans of one weekday, as minutes after midnight."""
    if not isinstance(hours, dict):
        return []
    found: list[tuple[int, int]] = []
    for span in hours.get(day) or []:
        if not isinstance(span, list | tuple) or len(span) != 2:
            continue
        start, end = _minutes(span[0]), _minutes(span[1])
        if start is None or end is None or start == end == 0:
            continue
        found.append((start, end))
    return found


def has_hours(hours: Any) -> bool:
    return any(spans_of(hours, day) for day in DAYS)


def zone_of(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        logger.warning("unknown time zone %r: business hours read in UTC", name[:64])
        return ZoneInfo("UTC")


def is_open(*, hours: Any, timezone_name: str, at: datetime) -> bool:
    """Whether ``at`` falls inside the business hours (True when there are no hours at all)."""
    if not has_hours(hours):
        return True
    local = at.astimezone(zone_of(timezone_name))
    minute = local.hour * 60 + local.minute
    today = DAYS[local.weekday()]
    yesterday = DAYS[(local - timedelta(days=1)).weekday()]
    for start, end in spans_of(hours, today):
        if end > start and start <= minute < end:
            return True
        if end <= start and minute >= start:  # runs past midnight: the evening part
            return True
    return any(end <= start and minute < end for start, end in spans_of(hours, yesterday))


def is_outside(*, hours: Any, timezone_name: str, at: datetime) -> bool:
    """Whether the account has business hours and ``at`` is outside them."""
    return has_hours(hours) and not is_open(hours=hours, timezone_name=timezone_name, at=at)
