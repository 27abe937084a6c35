"""W10 Redis refused and W11 Redis hung, under 50 req/s: the webhook never notices.

Nothing on the request path touches Redis, so every delivery is answered 200 quickly; the relay
and the worker pick the stored events up once Redis is back. The outages last the full 60 s
(DRILL_OUTAGE_SECONDS shortens them for a quick try).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from bench import loadgen
from tests.drills.conftest import Drill
from tests.drills.support import (
    Outage,
    acked_but_lost,
    deliveries,
    outage_seconds,
    run_with_outage,
    summary,
    timeline,
    wait_processed,
)

RATE = 50.0
BEFORE, AFTER = 5.0, 10.0
PROCESSED_WITHIN = 120.0
OUTAGE = outage_seconds(60.0)


def _drill(
    drill: Drill,
    report: Callable[..., None],
    *,
    row: str,
    take_down: Callable[[], None],
    bring_back: Callable[[], None],
) -> None:
    total = int(RATE * (BEFORE + OUTAGE + AFTER))
    sent = deliveries(drill.seed["ig_user_id"], row[:3].strip().lower(), total)
    outage: Outage = run_with_outage(
        drill.stack.web_port, sent, rate=RATE, before=BEFORE,
        take_down=take_down, bring_back=bring_back, outage_seconds=OUTAGE,
    )  # fmt: skip
    first = [d.attempts[0] for d in sent if d.attempts]
    first_ok = sum(1 for a in first if a.status == 200)
    p99 = loadgen.percentile([a.latency for a in first], 99)
    during = [a for a in first if outage.down <= a.scheduled <= outage.restarting]
    lost = acked_but_lost(drill.pg, drill.dbname, sent)
    remaining = max(1.0, PROCESSED_WITHIN - (time.monotonic() - outage.up))
    counts, _ = wait_processed(drill.pg, drill.dbname, total, timeout=remaining)
    processed_after = time.monotonic() - outage.up
    report(
        f"{row} for {outage.restarting - outage.down:.0f} s under {RATE:.0f} req/s",
        **{
            "first attempts answered 200": f"{first_ok}/{len(first)}",
            "of them during the outage": f"{sum(a.status == 200 for a in during)}/{len(during)}",
            "p99 ack latency (ms)": round(p99 * 1000, 1),
            "max ack latency (ms)": round(max(a.latency for a in first) * 1000, 1),
            "all processed, s after return": round(processed_after, 1),
        },
        **summary(sent, counts, lost),
    )
    print(f"timeline (t=0: Redis gone, back at +{outage.up - outage.down:.0f} s):")
    print(timeline(sent, outage.down))

    assert during, "the outage must see traffic"
    assert first_ok == total, "100 % answered 200 while Redis is away"
    assert p99 < 1.0, "p99 < 1 s"
    assert lost == 0
    assert counts.stored == total
    assert counts.pending == 0, f"every event processed within {PROCESSED_WITHIN:.0f} s of Redis"
    assert counts.quarantined == 0
    assert processed_after <= PROCESSED_WITHIN
    assert counts.messages == total
    assert counts.duplicate_messages == 0


@pytest.mark.drill
def test_w10_redis_refused(drill: Drill, report: Callable[..., None]) -> None:
    _drill(
        drill, report, row="W10 Redis stopped",
        take_down=drill.redis.stop, bring_back=drill.redis.start,
    )  # fmt: skip


@pytest.mark.drill
def test_w11_redis_hung(drill: Drill, report: Callable[..., None]) -> None:
    _drill(
        drill, report, row="W11 Redis SIGSTOPped",
        take_down=drill.redis.pause, bring_back=drill.redis.resume,
    )  # fmt: skip
