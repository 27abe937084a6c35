"""Celery tasks that sync ice breakers and the persistent menu to Meta."""

from celery import shared_task

from accounts.tenancy import tenant_task
from automation import profile


@shared_task(name="automation.profile_sync", ignore_result=True)
@tenant_task
def account_profile_sync(tenant_id: int, account_id: int) -> None:
    """Push the account's ice breakers and menu to Meta; safe to run twice (it sets a state)."""
    profile.account_profile_sync(account_id=account_id)
