"""Per-account send budgets shared by every worker process, kept in Redis.

Meta limits sends per Instagram account (REFERENCE.md §8): text, reactions and stickers in one
budget, audio and video in a smaller one, private replies per hour. Celery's own ``rate_limit``
is per worker, so the budget lives in Redis: a sliding-window log per account and budget (a
sorted set of send times, checked and written by one Lua script on Redis's clock), which
guarantees at most ``limit`` sends in every window, whatever the number of processes.

When Meta itself says "too fast" the account is paused: a key with a time to live that every
worker checks first.

Without Redis (the embedded demo) the same rules run inside the process.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from functools import cache
from typing import Any

from django.conf import settings

logger = logging.getLogger(__name__)

TEXT = "text"
MEDIA = "media"
PRIVATE_REPLY = "private_reply"

# Both scripts start alike: Redis's clock, the account's pause, the window trimmed to its span.
_PROLOGUE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local paused = redis.call('PTTL', KEYS[2])
if paused > 0 then return {-1, paused} end
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
"""

_SCRIPT = (
    _PROLOGUE
    + """
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window * 2)
  return {1, 0}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, tonumber(oldest[2]) + window - now + 1}
"""
)

# Up to ARGV[3] sends at once (a worker's batch): as many as the window has room for, each
# its own entry, and how long until the next slot frees when some had to wait.
_SCRIPT_MANY = (
    _PROLOGUE
    + """
local wanted = tonumber(ARGV[3])
local room = limit - redis.call('ZCARD', KEYS[1])
local granted = math.max(0, math.min(wanted, room))
for i = 1, granted do
  redis.call('ZADD', KEYS[1], now, ARGV[4] .. ':' .. i)
end
if granted > 0 then redis.call('PEXPIRE', KEYS[1], window * 2) end
if granted == wanted then return {granted, 0} end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local wait = 1
if oldest[2] then wait = tonumber(oldest[2]) + window - now + 1 end
return {granted, wait}
"""
)


@dataclass(frozen=True)
class Rule:
    limit: int
    window_s: float


def rule_for(bucket: str) -> Rule:
    limit, window = settings.OUTBOUND_RATE_LIMITS[bucket]
    return Rule(limit=int(limit), window_s=float(window))


def _prefix() -> str:
    base = settings.CACHES["default"].get("KEY_PREFIX", "") or "igdm"
    return f"{base}:outbound"


def _window_key(account_id: int, bucket: str) -> str:
    return f"{_prefix()}:rate:{account_id}:{bucket}"


def _pause_key(account_id: int) -> str:
    return f"{_prefix()}:pause:{account_id}"


@cache
def _redis() -> Any:
    import redis

    return redis.Redis.from_url(
        settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2, health_check_interval=30
    )


@cache
def _script() -> Any:
    return _redis().register_script(_SCRIPT)


@cache
def _script_many() -> Any:
    return _redis().register_script(_SCRIPT_MANY)


class _LocalLimiter:
    """The same sliding window inside one process, for a deployment without Redis."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.windows: dict[str, deque[float]] = {}
        self.pauses: dict[int, float] = {}

    def take(self, account_id: int, bucket: str, rule: Rule) -> float:
        now = time.monotonic()
        with self.lock:
            until = self.pauses.get(account_id, 0.0)
            if until > now:
                return -(until - now)
            window = self.windows.setdefault(f"{account_id}:{bucket}", deque())
            while window and window[0] <= now - rule.window_s:
                window.popleft()
            if len(window) < rule.limit:
                window.append(now)
                return 0.0
            return window[0] + rule.window_s - now

    def pause(self, account_id: int, seconds: float) -> None:
        with self.lock:
            self.pauses[account_id] = max(
                self.pauses.get(account_id, 0.0), time.monotonic() + seconds
            )

    def paused_for(self, account_id: int) -> float:
        with self.lock:
            return max(0.0, self.pauses.get(account_id, 0.0) - time.monotonic())


_local = _LocalLimiter()


def _take_once(account_id: int, bucket: str) -> float:
    """0 when a send may go now; > 0 seconds to wait for the budget; < 0 the account is paused."""
    rule = rule_for(bucket)
    if not settings.REDIS_URL:
        return _local.take(account_id, bucket, rule)
    allowed, wait_ms = _script()(
        keys=[_window_key(account_id, bucket), _pause_key(account_id)],
        args=[rule.limit, int(rule.window_s * 1000), uuid.uuid4().hex],
    )
    if int(allowed) == 1:
        return 0.0
    seconds = max(int(wait_ms), 1) / 1000
    return -seconds if int(allowed) == -1 else seconds


@dataclass(frozen=True)
class Grant:
    """The outcome of asking for a send: granted, or how long to wait and why."""

    granted: bool
    wait: float = 0.0
    paused: bool = False


def acquire(account_id: int, bucket: str, *, max_wait: float) -> Grant:
    """Take one send from the account's budget, waiting up to ``max_wait`` seconds for it."""
    deadline = time.monotonic() + max_wait
    while True:
        try:
            wait = _take_once(account_id, bucket)
        except Exception:
            logger.warning("send budget of account %s unavailable", account_id, exc_info=True)
            return Grant(granted=False, wait=1.0)
        if wait == 0.0:
            return Grant(granted=True)
        if wait < 0:
            return Grant(granted=False, wait=-wait, paused=True)
        if time.monotonic() + wait > deadline:
            return Grant(granted=False, wait=wait)
        time.sleep(wait)


@dataclass(frozen=True)
class Grants:
    """The outcome of asking for several sends at once: how many may go now; for the rest,
    how long until the budget has room again, or that the account is paused."""

    granted: int
    wait: float = 0.0
    paused: bool = False


def take(account_id: int, bucket: str, count: int) -> Grants:
    """Take up to ``count`` sends from the account's budget at once, without waiting."""
    if count <= 0:
        return Grants(granted=0)
    rule = rule_for(bucket)
    if not settings.REDIS_URL:
        granted = 0
        wait = 0.0
        while granted < count:
            wait = _local.take(account_id, bucket, rule)
            if wait != 0.0:
                break
            granted += 1
        if granted == count:
            return Grants(granted=granted)
        return Grants(granted=granted, wait=abs(wait), paused=wait < 0)
    try:
        granted, wait_ms = _script_many()(
            keys=[_window_key(account_id, bucket), _pause_key(account_id)],
            args=[rule.limit, int(rule.window_s * 1000), count, uuid.uuid4().hex],
        )
    except Exception:
        logger.warning("send budget of account %s unavailable", account_id, exc_info=True)
        return Grants(granted=0, wait=1.0)
    if int(granted) == -1:
        return Grants(granted=0, wait=max(int(wait_ms), 1) / 1000, paused=True)
    wait = max(int(wait_ms), 1) / 1000 if int(granted) < count else 0.0
    return Grants(granted=int(granted), wait=wait)


def pause(account_id: int, seconds: float) -> None:
    """Meta said "too fast": no send for this account for ``seconds``."""
    if seconds <= 0:
        return
    if not settings.REDIS_URL:
        _local.pause(account_id, seconds)
        return
    try:
        client = _redis()
        key = _pause_key(account_id)
        current = client.pttl(key)
        wanted = int(seconds * 1000)
        if current is None or current < wanted:
            client.set(key, "1", px=wanted)
    except Exception:
        logger.warning("pause of account %s not recorded", account_id, exc_info=True)


def paused_for(account_id: int) -> float:
    """Seconds the account stays paused (0 when it may send)."""
    if not settings.REDIS_URL:
        return _local.paused_for(account_id)
    try:
        remaining = _redis().pttl(_pause_key(account_id))
    except Exception:
        return 0.0
    return max(0, int(remaining or 0)) / 1000


def reset(account_id: int) -> None:
    """Forget an account's budget and pause (tests and operators)."""
    if not settings.REDIS_URL:
        with _local.lock:
            _local.pauses.pop(account_id, None)
            for bucket in (TEXT, MEDIA, PRIVATE_REPLY):
                _local.windows.pop(f"{account_id}:{bucket}", None)
        return
    client = _redis()
    client.delete(
        _pause_key(account_id), *(_window_key(account_id, b) for b in (TEXT, MEDIA, PRIVATE_REPLY))
    )
