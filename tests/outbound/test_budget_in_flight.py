"""D5: the send budget counts a send from Meta's answer, not from its grant.

Meta counts a call when the call reaches it, which can be long after the budget granted it (a
free call thread, the network, Meta's own queue). A granted send therefore holds its place in
the window while it is in flight, and leaves the window one window after its answer came back;
a grant whose call was never made is given back at once. The same rules hold with Redis (many
processes) and without it (the embedded demo, one process).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from messaging import ratelimit

ACCOUNT = 990_001
WINDOW = 0.3


@pytest.fixture(params=["redis", "in-process"])
def budget(request: pytest.FixtureRequest, settings: Any) -> Iterator[str]:
    """Three text sends per 0.3 s for one account, kept in Redis or in this process."""
    if request.param == "in-process":
        settings.REDIS_URL = ""
    settings.OUTBOUND_RATE_LIMITS = {**settings.OUTBOUND_RATE_LIMITS, "text": (3, WINDOW)}
    ratelimit.reset(ACCOUNT)
    yield request.param
    ratelimit.reset(ACCOUNT)


def _take(count: int) -> ratelimit.Grants:
    return ratelimit.take(ACCOUNT, ratelimit.TEXT, count)


def test_a_send_still_in_flight_keeps_its_place_after_the_window(budget: str) -> None:
    first = _take(3)
    assert first.granted == 3
    assert len(set(first.slots)) == 3
    time.sleep(WINDOW + 0.05)
    # Counted from their grants the three would have left the window; they are still in flight.
    later = _take(1)
    assert later.granted == 0
    assert later.wait == pytest.approx(WINDOW, abs=0.01)
    # One answer comes back now: its place frees one window later, not before.
    ratelimit.ended(ACCOUNT, ratelimit.TEXT, {first.slots[0]: time.monotonic()})
    assert _take(1).granted == 0
    time.sleep(WINDOW + 0.02)
    assert _take(2).granted == 1


def test_the_wait_is_counted_from_when_the_answer_came_back(budget: str) -> None:
    grant = ratelimit.acquire(ACCOUNT, ratelimit.TEXT, max_wait=0)
    assert grant.granted
    assert grant.slot
    assert _take(2).granted == 2
    # The answer came back 0.2 s ago and is recorded only now: 0.1 s of the window is left.
    ratelimit.ended(ACCOUNT, ratelimit.TEXT, {grant.slot: time.monotonic() - 0.2})
    waiting = _take(1)
    assert waiting.granted == 0
    assert 0.05 <= waiting.wait <= 0.12
    time.sleep(waiting.wait + 0.01)
    assert _take(1).granted == 1


def test_a_call_never_made_gives_its_place_back_at_once(budget: str) -> None:
    grants = _take(3)
    assert _take(1).granted == 0
    ratelimit.ended(ACCOUNT, ratelimit.TEXT, {grants.slots[1]: None, grants.slots[2]: None})
    assert _take(3).granted == 2


def test_an_answer_recorded_after_a_reset_does_not_come_back(budget: str) -> None:
    grants = _take(3)
    ratelimit.reset(ACCOUNT)
    ratelimit.ended(ACCOUNT, ratelimit.TEXT, dict.fromkeys(grants.slots, time.monotonic()))
    assert _take(3).granted == 3


def test_a_paused_account_is_granted_nothing(budget: str) -> None:
    ratelimit.pause(ACCOUNT, 5)
    paused = _take(2)
    assert paused.granted == 0
    assert paused.paused
    assert paused.slots == ()
    assert 4 < paused.wait <= 5
    assert not ratelimit.acquire(ACCOUNT, ratelimit.TEXT, max_wait=0).granted
