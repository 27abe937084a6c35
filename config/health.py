"""Liveness and readiness: the database, Redis (where configured) and a worker's heartbeat."""

from __future__ import annotations

import logging
import socket
import time
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse

logger = logging.getLogger(__name__)

HEARTBEAT_KEY = "health:worker-heartbeat"


def record_worker_heartbeat() -> None:
    cache.set(HEARTBEAT_KEY, {"at": time.time(), "host": socket.gethostname()}, timeout=3600)


def _check_database() -> dict[str, Any]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return {"ok": True}
    except Exception as exc:
        logger.warning("health: database unavailable: %s", type(exc).__name__)
        return {"ok": False, "error": type(exc).__name__}


def _check_redis() -> dict[str, Any]:
    if not settings.REDIS_URL:
        return {"ok": True, "configured": False}
    import redis

    try:
        client = redis.Redis.from_url(
            settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1
        )
        client.ping()
        return {"ok": True, "configured": True}
    except Exception as exc:
        logger.warning("health: redis unavailable: %s", type(exc).__name__)
        return {"ok": False, "configured": True, "error": type(exc).__name__}


def _check_worker() -> dict[str, Any]:
    try:
        beat = cache.get(HEARTBEAT_KEY)
    except Exception as exc:
        return {"ok": False, "error": type(exc).__name__}
    if not beat:
        return {"ok": False, "last_seen_seconds": None}
    age = time.time() - float(beat["at"])
    return {
        "ok": age <= settings.WORKER_HEARTBEAT_MAX_AGE,
        "last_seen_seconds": round(age, 1),
    }


def healthz(request: HttpRequest) -> JsonResponse:
    """Readiness: 200 only when the database, Redis and a worker all answer."""
    checks = {"database": _check_database(), "redis": _check_redis(), "worker": _check_worker()}
    ok = all(check["ok"] for check in checks.values())
    return JsonResponse({"ok": ok, "checks": checks}, status=200 if ok else 503)


def readyz(request: HttpRequest) -> JsonResponse:
    """Web readiness: the database answers, so webhooks can be stored and acknowledged.

    Redis and workers are left out on purpose: their outage delays processing, and must not
    take the web pods out of service while ingest still works.
    """
    database = _check_database()
    return JsonResponse({"ok": database["ok"]}, status=200 if database["ok"] else 503)


def livez(request: HttpRequest) -> JsonResponse:
    """Liveness: the process serves requests (dependencies are readiness's business)."""
    return JsonResponse({"ok": True})
