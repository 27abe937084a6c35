"""Thin tasks: ids in, one service call, safe to run twice."""

from celery import shared_task

from accounts import onboarding, services
from accounts.models import InstagramAccount, Membership
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


# -- Instagram account upkeep ------------------------------------------------------------------


@shared_task(name="accounts.refresh_instagram_tokens", ignore_result=True)
def refresh_instagram_tokens() -> int:
    """Beat: queue a refresh for every Instagram Login token close to its 60 days."""
    due = onboarding.accounts_due_for_refresh()
    for tenant_id, account_id in due:
        refresh_instagram_token.delay(tenant_id, account_id)
    return len(due)


@shared_task(name="accounts.refresh_instagram_token", ignore_result=True)
@tenant_task
def refresh_instagram_token(tenant_id: int, account_id: int) -> None:
    account = InstagramAccount.objects.filter(pk=account_id).first()
    if account is None:
        return
    onboarding.instagram_account_refresh_token(account=account)


@shared_task(name="accounts.check_account_tokens", ignore_result=True)
def check_account_tokens() -> int:
    """Beat: queue the daily check of every connected account's token and subscription."""
    due = onboarding.accounts_due_for_check()
    for tenant_id, account_id in due:
        check_account_token.delay(tenant_id, account_id)
    return len(due)


@shared_task(name="accounts.check_account_token", ignore_result=True)
@tenant_task
def check_account_token(tenant_id: int, account_id: int) -> None:
    account = InstagramAccount.objects.filter(pk=account_id).first()
    if account is None:
        return
    onboarding.instagram_account_verify(account=account)
