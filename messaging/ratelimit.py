"""Per-account send budgets shared by every worker process, kept in Redis.

Meta limits sends per Instagram account (REFERENCE.md §8): text, reactions and stickers in one
budget, audio and video in a smaller one, private replies per hour. Celery's own ``rate_limit``
is per worker, so the budget lives in Redis: a sliding-window log per account and budget (a
sorted set of sends, checked and written by one Lua script on Redis's clock), which
guarantees at most ``limit`` sends in every window, whatever the number of processes.

Meta counts a call when it reaches Meta, which is some time between the moment the budget
granted it and the moment Meta's answer came back: a call waits for a free call thread, the
request travels, Meta's front door queues it. Counting a send at the moment of its grant lets
calls granted in one second reach Meta late, beside the next second's, and Meta answers "too
fast" although the budget was kept. So a granted send is kept in the log as in flight (a
score ``OUTBOUND_LEASE_SECONDS`` ahead, by when its row's lease has run out and the call has
surely ended) until ``ended`` records when its answer came back; it leaves the window one
window after that. Whatever the delays, every second of Meta's clock then sees at most
``limit`` of our calls. A grant whose call was never made is given back at once.

When Meta itself says "too fast" the account is paused: a key with a time to live that every
worker checks first.

Without Redis (the embedded demo) the same rules run inside the process.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
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
local flight = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
"""

# How long until a slot frees: one window after the oldest answered call; a window from now
# when every counted call is still in flight.
_EPILOGUE = """
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local wait = window
if oldest[2] and tonumber(oldest[2]) <= now then wait = tonumber(oldest[2]) + window - now + 1 end
"""

_SCRIPT = (
    _PROLOGUE
    + """
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now + flight, ARGV[4])
  redis.call('PEXPIRE', KEYS[1], flight + window * 2)
  return {1, 0}
end
"""
    + _EPILOGUE
    + """
return {0, wait}
"""
)

# Up to ARGV[4] sends at once (a worker's batch): as many as the window has room for, each
# its own entry ARGV[5]:1, ARGV[5]:2, ..., and how long until the next slot frees when some
# had to wait.
_SCRIPT_MANY = (
    _PROLOGUE
    + """
local wanted = tonumber(ARGV[4])
local room = limit - redis.call('ZCARD', KEYS[1])
local granted = math.max(0, math.min(wanted, room))
for i = 1, granted do
  redis.call('ZADD', KEYS[1], now + flight, ARGV[5] .. ':' .. i)
end
if granted > 0 then redis.call('PEXPIRE', KEYS[1], flight + window * 2) end
if granted == wanted then return {granted, 0} end
"""
    + _EPILOGUE
    + """
return {granted, wait}
"""
)

# Calls answered: each entry ARGV[2i-1] now counts from its answer, ARGV[2i] ms ago; an age
# below zero means the call was never made, and its entry is given back.
_SCRIPT_ENDED = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 1, #ARGV, 2 do
  local age = tonumber(ARGV[i + 1])
  if age < 0 then
    redis.call('ZREM', KEYS[1], ARGV[i])
  else
    redis.call('ZADD', KEYS[1], 'XX', now - age, ARGV[i])
  end
end
return 0
"""


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


@cache
def _script_ended() -> Any:
    return _redis().register_script(_SCRIPT_ENDED)


def _in_flight_s() -> float:
    """How long a granted call counts as in flight when its answer is never recorded."""
    return float(settings.OUTBOUND_LEASE_SECONDS)


class _LocalLimiter:
    """The same sliding window inside one process, for a deployment without Redis."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.windows: dict[str, dict[str, float]] = {}
        self.pauses: dict[int, float] = {}

    def take(self, account_id: int, bucket: str, rule: Rule, slots: list[str]) -> tuple[int, float]:
        """Grant as many of ``slots`` as the window has room for: (granted, wait) where a
        negative wait is the account's pause."""
        now = time.monotonic()
        with self.lock:
            until = self.pauses.get(account_id, 0.0)
            if until > now:
                return 0, -(until - now)
            window = self.windows.setdefault(f"{account_id}:{bucket}", {})
            for slot, at in list(window.items()):
                if at <= now - rule.window_s:
                    del window[slot]
            granted = max(0, min(len(slots), rule.limit - len(window)))
            for slot in slots[:granted]:
                window[slot] = now + _in_flight_s()
            if granted == len(slots):
                return granted, 0.0
            oldest = min(window.values(), default=now)
            return granted, oldest + rule.window_s - now if oldest <= now else rule.window_s

    def ended(self, account_id: int, bucket: str, ages: dict[str, float]) -> None:
        now = time.monotonic()
        with self.lock:
            window = self.windows.get(f"{account_id}:{bucket}", {})
            for slot, age in ages.items():
                if slot not in window:
                    continue
                if age < 0:
                    del window[slot]
                else:
                    window[slot] = now - age

    def pause(self, account_id: int, seconds: float) -> None:
        with self.lock:
            self.pauses[account_id] = max(
                self.pauses.get(account_id, 0.0), time.monotonic() + seconds
            )

    def paused_for(self, account_id: int) -> float:
        with self.lock:
            return max(0.0, self.pauses.get(account_id, 0.0) - time.monotonic())


_local = _LocalLimiter()


def _take_once(account_id: int, bucket: str) -> tuple[float, str]:
    """(0, the send's slot) when a send may go now; (> 0, "") seconds to wait for the budget;
    (< 0, "") the account is paused for that long."""
    rule = rule_for(bucket)
    slot = uuid.uuid4().hex
    if not settings.REDIS_URL:
        granted, wait = _local.take(account_id, bucket, rule, [slot])
        return (0.0, slot) if granted else (wait, "")
    allowed, wait_ms = _script()(
        keys=[_window_key(account_id, bucket), _pause_key(account_id)],
        args=[rule.limit, int(rule.window_s * 1000), int(_in_flight_s() * 1000), slot],
    )
    if int(allowed) == 1:
        return 0.0, slot
    seconds = max(int(wait_ms), 1) / 1000
    return (-seconds if int(allowed) == -1 else seconds), ""


@dataclass(frozen=True)
class Grant:
    """The outcome of asking for a send: granted (``slot`` names it for ``ended``), or how long
    to wait and why."""

    granted: bool
    wait: float = 0.0
    paused: bool = False
    slot: str = ""


def acquire(account_id: int, bucket: str, *, max_wait: float) -> Grant:
    """Take one send from the account's budget, waiting up to ``max_wait`` seconds for it."""
    deadline = time.monotonic() + max_wait
    while True:
        try:
            wait, slot = _take_once(account_id, bucket)
        except Exception:
            logger.warning("send budget of account %s unavailable", account_id, exc_info=True)
            return Grant(granted=False, wait=1.0)
        if wait == 0.0:
            return Grant(granted=True, slot=slot)
        if wait < 0:
            return Grant(granted=False, wait=-wait, paused=True)
        if time.monotonic() + wait > deadline:
            return Grant(granted=False, wait=wait)
        time.sleep(wait)


@dataclass(frozen=True)
class Grants:
    """The outcome of asking for several sends at once: how many may go now (``slots`` names
    them for ``ended``); for the rest, how long until the budget has room again, or that the
    account is paused."""

    granted: int
    wait: float = 0.0
    paused: bool = False
    slots: tuple[str, ...] = ()


def take(account_id: int, bucket: str, count: int) -> Grants:
    """Take up to ``count`` sends from the account's budget at once, without waiting."""
    if count <= 0:
        return Grants(granted=0)
    rule = rule_for(bucket)
    batch = uuid.uuid4().hex
    slots = [f"{batch}:{i}" for i in range(1, count + 1)]
    if not settings.REDIS_URL:
        granted, wait = _local.take(account_id, bucket, rule, slots)
        return Grants(
            granted=granted, wait=abs(wait), paused=wait < 0, slots=tuple(slots[:granted])
        )
    try:
        granted, wait_ms = _script_many()(
            keys=[_window_key(account_id, bucket), _pause_key(account_id)],
            args=[rule.limit, int(rule.window_s * 1000), int(_in_flight_s() * 1000), count, batch],
        )
    except Exception:
        logger.warning("send budget of account %s unavailable", account_id, exc_info=True)
        return Grants(granted=0, wait=1.0)
    if int(granted) == -1:
        return Grants(granted=0, wait=max(int(wait_ms), 1) / 1000, paused=True)
    wait = max(int(wait_ms), 1) / 1000 if int(granted) < count else 0.0
    return Grants(granted=int(granted), wait=wait, slots=tuple(slots[: int(granted)]))


def ended(account_id: int, bucket: str, answered: dict[str, float | None]) -> None:
    """Record when granted calls were answered: slot → ``time.monotonic()`` at the answer, or
    None for a call never made (its slot is given back). Until this is recorded a granted call
    counts as in flight, so a lost record only holds its slot longer, never lets more through."""
    if not answered:
        return
    now = time.monotonic()
    ages = {
        slot: -1.0 if at is None else max(0.0, now - at) for slot, at in answered.items() if slot
    }
    if not settings.REDIS_URL:
        _local.ended(account_id, bucket, ages)
        return
    args: list[Any] = []
    for slot, age in ages.items():
        args += [slot, int(age * 1000) if age >= 0 else -1]
    try:
        _script_ended()(keys=[_window_key(account_id, bucket)], args=args)
    except Exception:
        logger.warning("answers of account %s not kept in its budget", account_id, exc_info=True)


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
