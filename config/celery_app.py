"""The Celery application: JSON only, four queues, late acks, time limits from settings."""

import logging
import os
import threading
import time

from celery import Celery
from celery.signals import task_postrun, worker_init, worker_ready
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")

logger = logging.getLogger(__name__)

app = Celery("igdm")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = [Queue(name) for name in ("webhooks", "outbound", "default", "maintenance")]
app.autodiscover_tasks()


@worker_init.connect
def _yield_the_cpu_to_web_requests(**_: object) -> None:
    """Run the worker (and the pool processes it forks) at a lower CPU priority.

    Where web and workers share CPUs, a busy worker would otherwise take the CPU the webhook
    acknowledgement and the inbox need: Meta retries slow acknowledgements, and agents wait on
    pages, while stored work can wait its turn. Alone on its CPUs a niced worker loses nothing.
    """
    from django.conf import settings

    step = int(getattr(settings, "WORKER_CPU_NICE", 0))
    if step > 0 and hasattr(os, "nice"):
        os.nice(step)


@worker_init.connect
def _pool_database_connections(sender: object = None, **_: object) -> None:
    """Let the worker's tasks borrow PostgreSQL connections from a pool.

    Without it every task opened a connection of its own and closed it at the end: a server
    process started, authenticated and warmed its caches for a few statements, which cost more
    CPU than the task's own work. With the pool a task hands its connection back when it ends
    (``_hand_back_database_connections``), and the next task takes it after a check that it
    still works (a restarted database costs one failed check, not a failed task). One pool per
    process (a forked child drops its parent's), never larger than the tasks the worker runs at
    once.
    """
    from django.conf import settings
    from django.db import connections

    database = connections.settings["default"]
    if not getattr(settings, "WORKER_DB_POOL", False) or "postgresql" not in database["ENGINE"]:
        return
    concurrency = int(getattr(sender, "concurrency", 0) or 0) or (os.cpu_count() or 1)
    connections.close_all()
    database["CONN_MAX_AGE"] = 0  # the pool keeps connections, Django must not as well
    database["CONN_HEALTH_CHECKS"] = True  # the pool checks a connection before lending it
    database.setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": max(1, concurrency),
        "max_idle": 300,
        "timeout": 30,
    }


@task_postrun.connect
def _hand_back_database_connections(**_: object) -> None:
    """A pooled task's connection goes back to the pool when the task ends, so a thread pool's
    idle threads hold none."""
    from django.db import connections

    for conn in connections.all(initialized_only=True):
        if conn.settings_dict.get("OPTIONS", {}).get("pool"):
            conn.close()


@worker_ready.connect
def _start_heartbeat(**_: object) -> None:
    """Each worker records a heartbeat every 20 s, so /healthz sees it even without beat."""
    from config.health import record_worker_heartbeat

    def beat() -> None:
        while True:
            try:
                record_worker_heartbeat()
            except Exception:  # a cache outage must not kill the worker
                logger.warning("worker heartbeat could not be recorded", exc_info=True)
            time.sleep(20)

    threading.Thread(target=beat, name="heartbeat", daemon=True).start()
