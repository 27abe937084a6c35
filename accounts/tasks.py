"""Thin tasks: ids in, one service call, safe to run twice."""

from celery import shared_task

from accounts import services
from accounts.models import Membership
from accounts.tenancy import tenant_task
from config.health import record_worker_heartbeat


@shared_task(name="maintenance.heartbeat", ignore_result=True)
def heartbeat() -> None:
    record_worker_heartbeat()


@shared_task(name="accounts.membership_welcome_email", ignore_result=True)
@tenant_task
def membership_welcome_email(tenant_id: int, membership_id: int) -> None:
    membership = Membership.objects.filter(pk=membership_id).select_related("user", "tenant")
    found = membership.first()
    if found is None:
        return
    services.membership_send_welcome(membership=found)
