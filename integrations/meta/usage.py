"""Rate-limit usage reported by Meta in response headers.

``X-App-Usage`` carries platform (app-level) usage in percent; ``X-Business-Use-Case-Usage``
carries usage per business object (Page or Instagram account) with the minutes left before
access is regained after throttling.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from integrations.meta._coerce import as_dict, as_int, as_list, header_lookup

APP_USAGE_HEADER = "X-App-Usage"
BUSINESS_USE_CASE_USAGE_HEADER = "X-Business-Use-Case-Usage"


@dataclass(frozen=True, slots=True)
class AppUsage:
    """Platform usage of the app, each value a percentage (0-100) of the limit."""

    call_count: int = 0
    total_time: int = 0
    total_cputime: int = 0

    @property
    def max_percent(self) -> int:
        return max(self.call_count, self.total_time, self.total_cputime)


@dataclass(frozen=True, slots=True)
class BusinessUseCaseUsage:
    """Usage of one business use case (``type``) for one Page or Instagram account."""

    business_id: str
    type: str
    call_count: int = 0
    total_time: int = 0
    total_cputime: int = 0
    estimated_time_to_regain_access: int = 0  # minutes

    @property
    def max_percent(self) -> int:
        return max(self.call_count, self.total_time, self.total_cputime)


@dataclass(frozen=True, slots=True)
class Usage:
    """Usage parsed from one response's headers."""

    app: AppUsage | None = None
    business: tuple[BusinessUseCaseUsage, ...] = ()

    @property
    def max_percent(self) -> int:
        """Highest percentage across every reported counter (back off above ~80)."""
        values = [self.app.max_percent] if self.app else []
        values.extend(item.max_percent for item in self.business)
        return max(values, default=0)

    @property
    def regain_access_seconds(self) -> int | None:
        """Seconds until Meta says throttled calls will succeed again, if it said so."""
        minutes = max((b.estimated_time_to_regain_access for b in self.business), default=0)
        return minutes * 60 if minutes > 0 else None

    def for_business(self, business_id: str) -> tuple[BusinessUseCaseUsage, ...]:
        return tuple(item for item in self.business if item.business_id == business_id)


def _load_json_header(value: str | None) -> Any:
    if not value or len(value) > 100_000:
        return None
    try:
        return json.loads(value)
    except (ValueError, RecursionError):
        return None


def _percent(data: Mapping[str, Any], key: str) -> int:
    value = as_int(data.get(key))
    return value if value is not None and value >= 0 else 0


def parse_usage_headers(headers: Mapping[str, str] | None) -> Usage | None:
    """Read both usage headers; ``None`` when neither is present or readable."""
    app_raw = as_dict(_load_json_header(header_lookup(headers, APP_USAGE_HEADER)))
    buc_raw = as_dict(_load_json_header(header_lookup(headers, BUSINESS_USE_CASE_USAGE_HEADER)))
    if app_raw is None and buc_raw is None:
        return None
    app = None
    if app_raw is not None:
        app = AppUsage(
            call_count=_percent(app_raw, "call_count"),
            total_time=_percent(app_raw, "total_time"),
            total_cputime=_percent(app_raw, "total_cputime"),
        )
    business: list[BusinessUseCaseUsage] = []
    for business_id, items in (buc_raw or {}).items():
        for item in as_list(items):
            data = as_dict(item)
            if data is None:
                continue
            kind = data.get("type")
            business.append(
                BusinessUseCaseUsage(
                    business_id=str(business_id),
                    type=kind if isinstance(kind, str) else "",
                    call_count=_percent(data, "call_count"),
                    total_time=_percent(data, "total_time"),
                    total_cputime=_percent(data, "total_cputime"),
                    estimated_time_to_regain_access=_percent(
                        data, "estimated_time_to_regain_access"
                    ),
                )
            )
    return Usage(app=app, business=tuple(business))
