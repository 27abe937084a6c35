"""Hand queued outbound messages to the outbound queue: the bridge from the outbox to Celery."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand
from django.db import DatabaseError, connection
from django_scopes import scope, scopes_disabled

from messaging import outbox

logger = logging.getLogger(__name__)


def relay_round() -> int:
    """Pump every account with work, each inside its tenant's scope; rows handed on."""
    with scopes_disabled():
        accounts = outbox.accounts_with_work()
    published = 0
    for tenant_id, account_id in accounts:
        with scope(tenant=tenant_id):
            published += outbox.pump(account_id=account_id)
    return published


def wait_for_jobs(timeout: float) -> bool:
    """Block until a send is committed (PostgreSQL NOTIFY) or ``timeout`` passes."""
    if connection.vendor != "postgresql":
        import time

        time.sleep(timeout)
        return False
    try:
        connection.ensure_connection()
        raw = connection.connection
        with raw.cursor() as cursor:
            cursor.execute("LISTEN outbound_jobs")
        notified = False
        for _ in raw.notifies(timeout=timeout, stop_after=1):
            notified = True
        return notified
    except DatabaseError:
        connection.close()
        return False


class Command(BaseCommand):
    help = "Publish outbound sends as they are queued (LISTEN/NOTIFY, or polling), with retries."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--interval", type=float, default=1.0, help="poll interval, seconds")
        parser.add_argument("--once", action="store_true", help="one round, then exit")
        parser.add_argument(
            "--heartbeat-file", default="", help="touched every round, for liveness probes"
        )

    def handle(
        self, *args: Any, interval: float, once: bool, heartbeat_file: str, **options: Any
    ) -> None:
        while True:
            if heartbeat_file:
                Path(heartbeat_file).touch()
            try:
                relay_round()
            except DatabaseError:
                logger.warning("outbound relay: database unavailable", exc_info=True)
                connection.close()
            if once:
                return
            wait_for_jobs(interval)
