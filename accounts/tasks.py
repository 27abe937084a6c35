from celery import shared_task

from config.health import record_worker_heartbeat


@shared_task(name="maintenance.heartbeat", ignore_result=True)
def heartbeat() -> None:
    record_worker_heartbeat()
