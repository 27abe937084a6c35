"""Outbound tasks. Thin: ids in, one call into the outbox, safe to run any number of times."""

from __future__ import annotations

from celery import shared_task

from accounts.tenancy import tenant_task
from messaging import outbox


@shared_task(name="outbound.send", ignore_result=True, acks_late=True)
@tenant_task
def send_job(tenant_id: int, job_id: int) -> str:
    """Send one outbox row. The row's state machine makes a repeated delivery harmless."""
    return outbox.job_run(job_id=job_id)


@shared_task(name="outbound.send_batch", ignore_result=True, acks_late=True)
@tenant_task
def send_batch(tenant_id: int, job_ids: list[int] | int) -> dict[str, int]:
    """Send several outbox rows of one account together (a lone id is a batch of one); each
    row's state machine makes a repeated delivery harmless, as for ``send_job``."""
    ids = [job_ids] if isinstance(job_ids, int) else job_ids
    return outbox.batch_run(job_ids=[int(job_id) for job_id in ids])


@shared_task(name="outbound.pump", ignore_result=True)
@tenant_task
def pump_account(tenant_id: int, account_id: int) -> int:
    """Hand an account's due outbox rows to the outbound queue."""
    return outbox.pump(account_id=account_id)
