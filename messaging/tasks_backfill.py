"""The history import task. Thin: load the account, run the import, schedule what follows."""

from __future__ import annotations

from celery import shared_task

from accounts.models import InstagramAccount
from accounts.tenancy import tenant_task
from messaging import backfill

MAX_TRANSIENT_FAILURES = 5


@shared_task(name="messaging.backfill_account", ignore_result=True)
@tenant_task
def backfill_account(tenant_id: int, account_id: int, transient_failures: int = 0) -> str:
    """Import the account's history; runs again by itself until the import is done.

    Safe to run twice: one run per account at a time, and every page is stored once.
    """
    account = InstagramAccount.objects.filter(pk=account_id).first()
    if account is None:
        return "gone"
    outcome = backfill.backfill_account_run(account=account)
    if outcome.state == "transient":
        if transient_failures + 1 >= MAX_TRANSIENT_FAILURES:
            backfill.backfill_give_up(
                account=account,
                error="Instagram kept failing to answer. Try the history import again later.",
            )
            return "failed"
        backfill_account.apply_async(
            args=(tenant_id, account_id),
            kwargs={"transient_failures": transient_failures + 1},
            countdown=outcome.countdown * (2**transient_failures),
        )
    elif outcome.state in ("again", "throttled"):
        backfill_account.apply_async(args=(tenant_id, account_id), countdown=outcome.countdown)
    return outcome.state
