"""Gunicorn settings for the web process, tuned for webhook ingest behind a load balancer.

Every value can be overridden from the environment, so the same file serves the Procfile, the
container image and Kubernetes. Names starting with an underscore are helpers, not settings.
"""

import os
import re
from pathlib import Path

from gunicorn.glogging import Logger


def _cpu_count() -> int:
    """CPUs this process may use: the cgroup quota when there is one, else the affinity mask."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            return max(1, int(int(quota) / int(period)))
    except (OSError, ValueError):
        pass
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


bind = f"0.0.0.0:{_int('PORT', 8000)}"
wsgi_app = "config.wsgi:application"

# Sync workers enforce `timeout` per request; webhook handlers store and acknowledge, so they
# are short. WEB_CONCURRENCY wins; otherwise 2 x CPU + 1, capped so a large node does not open
# more database connections than the pool is sized for.
workers = _int("WEB_CONCURRENCY", min(2 * _cpu_count() + 1, _int("WEB_CONCURRENCY_MAX", 9)))
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "sync")
if _int("GUNICORN_THREADS", 1) > 1:
    threads = _int("GUNICORN_THREADS", 1)

# A request slower than this is killed (sync workers). Meta retries a webhook that is not
# acknowledged quickly, so a stuck request is cut short rather than left holding a worker.
timeout = _int("GUNICORN_TIMEOUT", 20)
# On SIGTERM, in-flight requests get this long; keep it below the pod's termination grace.
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 25)
keepalive = _int("GUNICORN_KEEPALIVE", 5)

# Recycle workers now and then so slow memory growth never becomes an outage. Each recycle
# costs a short stall on a busy small machine (P1): at 200 webhooks/s over five workers this
# recycles one every few minutes, not every few seconds.
max_requests = _int("GUNICORN_MAX_REQUESTS", 10000)
max_requests_jitter = _int("GUNICORN_MAX_REQUESTS_JITTER", 1000)

# Request-size limits: nothing legitimate needs more; bodies are bounded by Django.
limit_request_line = _int("GUNICORN_LIMIT_REQUEST_LINE", 4094)
limit_request_fields = _int("GUNICORN_LIMIT_REQUEST_FIELDS", 64)
limit_request_field_size = _int("GUNICORN_LIMIT_REQUEST_FIELD_SIZE", 8190)

# The load balancer terminates TLS. Trust its forwarding headers only from the addresses listed
# (in Kubernetes the pod network is reachable only through the ingress, so "*" is set there).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")

# The heartbeat file lives in memory: a disk-backed /tmp can stall workers.
if Path("/dev/shm").is_dir():  # noqa: S108 - a tmpfs, not a shared temp file
    worker_tmp_dir = "/dev/shm"  # noqa: S108
# Containers run with a read-only root filesystem and nobody uses the control socket there.
control_socket_disable = True

# The app is imported once, in the arbiter, and workers fork from it: a worker recycled after
# ``max_requests`` starts without importing Django anew while the others carry its share (on
# two CPUs that import stalled acknowledgements for seconds: P1's p99 2.5 s, 0.6 s preloaded).
# No connection is opened at import time, so no socket is shared across the fork.
preload_app = _int("GUNICORN_PRELOAD", 1) == 1
proc_name = "igdm-web"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
errorlog = "-"
accesslog = "-"
# Path only: query strings (webhook verify tokens, OAuth codes) and referrers never reach logs.
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms "%(a)s"'

# Links that carry a one-time key in the path itself (password reset, email confirmation).
_SECRET_PATHS = re.compile(r"^(/accounts/(?:password/reset/key|confirm-email)/)(?!done/)[^/]+")


class _RedactingLogger(Logger):
    """The stock logger, with one-time keys in paths replaced before the access line is written."""

    def atoms(self, resp, req, environ, request_time):  # type: ignore[no-untyped-def]
        atoms = super().atoms(resp, req, environ, request_time)
        atoms["U"] = _redact_path(atoms.get("U") or "")
        return atoms


def _redact_path(path: str) -> str:
    if not path.startswith("/accounts/"):  # every webhook's line: no pattern to run
        return path
    return _SECRET_PATHS.sub(r"\1<redacted>", path)


logger_class = _RedactingLogger


def when_ready(server):  # type: ignore[no-untyped-def]
    """The preloaded app's objects are moved out of the collector's reach before any fork, so a
    new worker's collections do not copy the arbiter's pages (each copy costs CPU in a request)."""
    import gc

    gc.collect()
    gc.freeze()


def post_worker_init(worker):  # type: ignore[no-untyped-def]
    """Warm a new worker before it accepts: its database connection and the URL map, which
    otherwise cost the first requests it serves (a recycled worker's first acknowledgements)."""
    try:
        from django.db import connection
        from django.urls import get_resolver

        get_resolver().url_patterns  # noqa: B018 - imports every URL module
        get_resolver()._populate()
        connection.ensure_connection()
    except Exception:  # the database may be down: the request path answers 503 by itself
        worker.log.warning("worker warm-up incomplete", exc_info=True)
