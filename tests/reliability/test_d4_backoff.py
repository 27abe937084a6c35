"""D4: the outbound retry schedule. Transient failures wait with exponential backoff and full
jitter (attempt k waits a uniform time in [0, min(600 s, base·2^k)]) and give up after 8
attempts. The error classes themselves (retried, paused, held, failed at once) are in
tests/outbound/test_send.py."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from messaging.outbox import backoff_delay


def test_d4_each_delay_is_within_its_full_jitter_window() -> None:
    for attempt in range(1, 12):
        ceiling = min(600.0, settings.OUTBOUND_BACKOFF_BASE * 2**attempt)
        delays = [backoff_delay(attempt) for _ in range(500)]
        assert all(0 <= d <= ceiling for d in delays), attempt
        # Full jitter: spread over the whole window, not bunched at its top.
        assert min(delays) < ceiling * 0.1
        assert max(delays) > ceiling * 0.9


def test_d4_the_defaults_give_up_after_8_attempts_within_about_an_hour() -> None:
    assert settings.OUTBOUND_MAX_ATTEMPTS == 8
    assert settings.OUTBOUND_BACKOFF_CAP == 600
    worst = sum(
        min(settings.OUTBOUND_BACKOFF_CAP, settings.OUTBOUND_BACKOFF_BASE * 2**k)
        for k in range(1, settings.OUTBOUND_MAX_ATTEMPTS)
    )
    assert worst <= 3600


def test_d4_the_cap_holds_for_any_configured_base(settings: Any) -> None:
    settings.OUTBOUND_BACKOFF_BASE = 1000.0
    assert all(backoff_delay(k) <= settings.OUTBOUND_BACKOFF_CAP for k in range(1, 40))
