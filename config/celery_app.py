"""The Celery application: JSON only, four queues, late acks, time limits from settings."""

import logging
import os
import threading
import time

from celery import Celery
from celery.signals import worker_ready
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")

logger = logging.getLogger(__name__)

app = Celery("igdm")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = [Queue(name) for name in ("webhooks", "outbound", "default", "maintenance")]
app.autodiscover_tasks()


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
