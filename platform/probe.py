"""Health probes for the containers, one entry point for Docker, Compose and Kubernetes.

    python platform/probe.py http /livez          # the web process answers (or /healthz)
    python platform/probe.py celery worker        # the Celery node worker@<hostname> answers
    python platform/probe.py beat /tmp/celerybeat-schedule 600   # beat saved its schedule lately
    python platform/probe.py file /tmp/relay-heartbeat 30        # a loop touched its heartbeat

Exit status 0 means healthy. Only the standard library is imported for http and beat, so those
probes cost a few milliseconds; the celery probe asks the node over the broker.
"""

from __future__ import annotations

import http.client
import os
import socket
import sys
import time
from pathlib import Path

TIMEOUT_SECONDS = 5.0


def probe_host(allowed_hosts: str) -> str:
    """A Host header Django accepts: the first concrete entry of DJANGO_ALLOWED_HOSTS."""
    for entry in (item.strip() for item in allowed_hosts.split(",")):
        if entry and entry != "*":
            return entry.lstrip(".") or "localhost"
    return "localhost"


def check_http(path: str, port: int, allowed_hosts: str) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT_SECONDS)
    try:
        # TLS ends at the load balancer: say so, or the HTTPS redirect answers instead of the app.
        connection.request(
            "GET",
            path,
            headers={"Host": probe_host(allowed_hosts), "X-Forwarded-Proto": "https"},
        )
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def check_celery(node_prefix: str) -> bool:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from config.celery_app import app

    node = f"{node_prefix}@{socket.gethostname()}"
    replies = app.control.ping(destination=[node], timeout=TIMEOUT_SECONDS) or []
    return any(node in reply for reply in replies)


def check_fresh_file(stem: str, max_age_seconds: float, now: float | None = None) -> bool:
    """True if a file named `stem` or `stem.<suffix>` (dbm adds suffixes) changed recently."""
    base = Path(stem)
    candidates = [base, *base.parent.glob(f"{base.name}.*")]
    ages = [
        (now if now is not None else time.time()) - path.stat().st_mtime
        for path in candidates
        if path.is_file()
    ]
    return bool(ages) and min(ages) <= max_age_seconds


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "http":
        port = int(os.environ.get("PORT") or 8000)
        healthy = check_http(argv[1], port, os.environ.get("DJANGO_ALLOWED_HOSTS", ""))
    elif len(argv) >= 2 and argv[0] == "celery":
        healthy = check_celery(argv[1])
    elif len(argv) >= 3 and argv[0] in {"beat", "file"}:
        healthy = check_fresh_file(argv[1], float(argv[2]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
