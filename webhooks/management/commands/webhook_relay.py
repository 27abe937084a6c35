"""Wake workers when webhook events are stored: the bridge from the event table to Celery."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand

from webhooks import relay

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = (
        "Publish a drain task whenever webhook events wait (LISTEN/NOTIFY or polling), "
        "a few at most waiting in the broker at once."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--interval", type=float, default=1.0, help="poll interval, seconds")
        parser.add_argument("--once", action="store_true", help="check once and exit")
        parser.add_argument(
            "--heartbeat-file", default="", help="touched every round, for liveness probes"
        )

    def handle(
        self, *args: Any, interval: float, once: bool, heartbeat_file: str, **options: Any
    ) -> None:
        from webhooks.tasks import wake_drainers

        last_kick = 0.0
        while True:
            if heartbeat_file:
                Path(heartbeat_file).touch()
            notified = False if once else relay.wait_for_events(interval)
            try:
                waiting = notified or relay.pending_exists()
            except Exception:
                logger.warning("webhook relay: database unavailable", exc_info=True)
                waiting = False
            if waiting and time.monotonic() - last_kick > 0.1:
                try:
                    wake_drainers()
                    last_kick = time.monotonic()
                except Exception:
                    # The broker is down: the events wait in the table; try again next round.
                    logger.warning("webhook relay: broker unavailable", exc_info=True)
            if once:
                return
