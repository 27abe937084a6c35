"""The Celery application: JSON only, four queues, late acks, time limits from settings."""

import logging
import os
import threading
import time

from celery import Celery
from celery.signals import worker_init, worker_ready
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
