"""W9 PostgreSQL down: the database stops under 50 req/s; the webhook answers 503, never 200.

The full 120 s outage (DRILL_OUTAGE_SECONDS shortens it for a quick try).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable

import pytest

from tests.drills.conftest import Drill
from tests.drills.support import (
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
OUTAGE = outage_seconds(120.0)


@pytest.mark.drill
def test_w9_postgres_down_answers_503_fast_and_loses_nothing(
    drill: Drill, report: Callable[..., None]
) -> None:
    total = int(RATE * (BEFORE + OUTAGE + AFTER))
    sent = deliveries(drill.seed["ig_user_id"], "w9", total)
    outage = run_with_outage(
        drill.stack.web_port,
        sent,
        rate=RATE,
        before=BEFORE,
        take_down=lambda: drill.pg.stop("fast"),
        bring_back=drill.pg.start,
        outage_seconds=OUTAGE,
        # Meta backs off between retries (the 503 says Retry-After: 5); a capped exponential
        # with jitter keeps the drill short without a retry storm no real sender would make.
        backoff=lambda attempt: random.uniform(0.5, 1.0) * min(30.0, 5.0 * 2.0 ** (attempt - 1)),
    )
    attempts = [a for d in sent for a in d.attempts]
    during = [a for a in attempts if a.scheduled >= outage.down and a.finished <= outage.restarting]
    statuses_during = Counter(a.status for a in during)
    slow_during = [a for a in during if a.latency >= 1.0]
    retried = [d for d in sent if len(d.attempts) > 1]
    accepted_after = [d for d in retried if d.acked and d.attempts[-1].scheduled >= outage.up]
    lost = acked_but_lost(drill.pg, drill.dbname, sent)
    counts, _ = wait_processed(drill.pg, drill.dbname, total, timeout=120)
    latencies = sorted(a.latency for a in during)
    report(
        f"W9 PostgreSQL stopped for {outage.restarting - outage.down:.0f} s under {RATE:.0f} req/s",
        **{
            "responses during outage": len(during),
            "by status": dict(sorted(statuses_during.items())),
            "slowest 503 (s)": round(latencies[-1], 3) if latencies else None,
            "over 1 s": len(slow_during),
            "events retried": len(retried),
            "accepted after restart": len(accepted_after),
        },
        **summary(sent, counts, lost),
    )
    print(f"timeline (t=0: database stopped, back at +{outage.up - outage.down:.0f} s):")
    print(timeline(sent, outage.down))

    assert during, "the outage must see traffic"
    assert statuses_during == Counter({503: len(during)}), "only 503 while the database is down"
    assert not slow_during, "503 within 1 s"
    assert all(d.acked for d in sent), "the sender's retries are all accepted after restart"
    assert accepted_after, "some events were accepted only after the restart"
    assert lost == 0, "never 200 without persistence"
    assert counts.stored == total
    assert counts.pending == 0
    assert counts.quarantined == 0
    assert counts.messages == total
    assert counts.duplicate_messages == 0
