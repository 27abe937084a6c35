"""Thin tasks: ids in, one service call, safe to run twice."""

from celery import shared_task

from accounts import compliance, onboarding, services
from accounts.models import DataDeletionRequest, InstagramAccount, Membership, TenantDeletionJob
from accounts.tenancy import tenant_task
from config.health import record_worker_heartbeat
from messaging.models import Contact


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


# -- compliance --------------------------------------------------------------------------------


@shared_task(name="accounts.process_data_deletion", ignore_result=True)
def process_data_deletion(request_id: int) -> None:
    request = DataDeletionRequest.objects.filter(pk=request_id).first()
    if request is None:
        return
    compliance.data_deletion_process(request=request)


@shared_task(name="accounts.erase_contact", ignore_result=True)
@tenant_task
def erase_contact(tenant_id: int, contact_id: int) -> None:
    contact = Contact.objects.filter(pk=contact_id).select_related("account").first()
    if contact is None:
        return
    compliance.contact_erase(contact=contact)


@shared_task(name="accounts.retention_purge", ignore_result=True)
@tenant_task
def retention_purge(tenant_id: int) -> None:
    compliance.retention_purge(tenant_id=tenant_id)


@shared_task(name="accounts.retention_purge_all", ignore_result=True)
def retention_purge_all() -> int:
    """Beat, nightly: one purge per workspace with a retention period; old raw deliveries."""
    compliance.webhook_raw_bodies_purge()
    due = compliance.retention_purge_due()
    for tenant_id in due:
        retention_purge.delay(tenant_id)
    return len(due)


@shared_task(name="accounts.delete_tenant", ignore_result=True)
def delete_tenant(job_id: int) -> None:
    job = TenantDeletionJob.objects.filter(pk=job_id).first()
    if job is None:
        return
    compliance.tenant_delete(job=job)


@shared_task(name="accounts.compliance_resume", ignore_result=True)
def compliance_resume() -> int:
    """Beat: queue again the deletion work a lost message or a crash left unfinished."""
    requests, jobs = compliance.unfinished_work()
    for request_id in requests:
        process_data_deletion.delay(request_id)
    for job_id in jobs:
        delete_tenant.delay(job_id)
    return len(requests) + len(jobs)
