"""Tolerant readers for JSON values received from Meta.

Every helper accepts any value and returns ``None`` (or an empty container) instead of raising,
so the webhook parser and the response parsers stay total over arbitrary input.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

# Epoch values at or above this are milliseconds (10^12 ms is September 2001; 10^12 s is far
# beyond any date Meta sends).
_MS_THRESHOLD = 10**12
# datetime cannot represent years after 9999; anything past that is garbage.
_MAX_EPOCH_MS = 253_402_300_799_999


def as_dict(value: Any) -> dict[str, Any] | None:
    """The value if it is a JSON object, else ``None``."""
    return value if isinstance(value, dict) else None


def as_list(value: Any) -> list[Any]:
    """The value if it is a JSON array, else an empty list."""
    return value if isinstance(value, list) else []


def as_str(value: Any) -> str | None:
    """A string, or an integer rendered as one (Meta sends ids as both); else ``None``."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 10**40:
        return str(value)
    return None


def as_int(value: Any) -> int | None:
    """An integer from an int, an integral float or a decimal string; else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return int(value)
        return None
    if isinstance(value, str):
        text = value.strip()
        # isdecimal(), not isdigit(): int() refuses superscripts and circled digits ("²", "①"),
        # and one sign at most ("--1" is not a number).
        digits = text[1:] if text.startswith("-") else text
        if digits.isdecimal() and len(text) <= 30:
            return int(text)
    return None


def as_bool(value: Any) -> bool:
    """True only for JSON ``true`` (or the strings ``"true"``/``"1"``)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value.strip().lower() in {"true", "1"}
    return False


def as_str_tuple(value: Any) -> tuple[str, ...]:
    """A tuple of strings from a JSON array or a comma-separated string."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return tuple(s for s in (as_str(v) for v in as_list(value)) if s is not None)


def epoch_to_ms(value: Any) -> int | None:
    """Normalise an epoch in seconds or milliseconds (number or digit string) to milliseconds.

    Values at or above 10^12 are taken as milliseconds, anything smaller as seconds. Zero,
    negative, non-finite and out-of-range values give ``None``.
    """
    number: int | float
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = value
    elif isinstance(value, str) and len(value) <= 40:
        text = value.strip()
        try:
            number = int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                return None
    else:
        return None
    if isinstance(number, float) and not math.isfinite(number):
        return None
    if number <= 0:
        return None
    ms = number if number >= _MS_THRESHOLD else number * 1000
    if ms > _MAX_EPOCH_MS:
        return None
    return int(ms) or None  # under a millisecond after the epoch is zero


def ms_to_datetime(ms: int | None) -> datetime | None:
    """An aware UTC datetime for epoch milliseconds."""
    if ms is None:
        return None
    try:
        return datetime.fromtimestamp(ms / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def epoch_seconds_to_datetime(value: Any) -> datetime | None:
    """Aware UTC datetime for an epoch in seconds; ``0`` or missing gives ``None``."""
    seconds = as_int(value)
    if not seconds or seconds <= 0:
        return None
    return ms_to_datetime(epoch_to_ms(seconds))


def parse_graph_time(value: Any) -> datetime | None:
    """Parse Graph's ISO-8601 times such as ``2024-07-12T19:11:07+0000``."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    text = value.strip()
    # Graph writes offsets as +0000, which fromisoformat only accepts from Python 3.11 on in
    # some spellings; strptime with %z covers it explicitly.
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S%z").astimezone(UTC)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def header_lookup(headers: Mapping[str, str] | None, name: str) -> str | None:
    """Case-insensitive header read that works on plain dicts too."""
    if not headers:
        return None
    direct = headers.get(name)
    if isinstance(direct, str):
        return direct
    lowered = name.lower()
    for key, val in headers.items():
        if isinstance(key, str) and key.lower() == lowered and isinstance(val, str):
            return val
    return None
