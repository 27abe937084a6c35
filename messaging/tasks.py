"""Thin tasks: ids in, one service call, safe to run twice."""

from __future__ import annotations

from celery import shared_task

from accounts.tenancy import tenant_task
from integrations.meta.errors import MetaRateLimitError, MetaTransientError
from messaging.models import Contact
from messaging.services import inbound


@shared_task(
    name="messaging.contact_fetch_profile",
    ignore_result=True,
    autoretry_for=(MetaTransientError, MetaRateLimitError),
    retry_backoff=30,
    retry_jitter=True,
    max_retries=3,
)
@tenant_task
def contact_fetch_profile(tenant_id: int, contact_id: int) -> None:
    contact = Contact.objects.filter(pk=contact_id).select_related("account").first()
    if contact is None:
        return
    inbound.contact_profile_refresh(contact=contact)
