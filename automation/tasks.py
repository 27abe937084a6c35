"""Celery tasks of automation: partner bot calls and the sweep of waiting runs."""

from __future__ import annotations

import random

from celery import shared_task
from django.conf import settings

from accounts.models import Tenant
from accounts.tenancy import tenant_task
from automation import bot
from automation.models import RuleRun

# Seconds before each further try of a bot that could not be reached (then the run fails).
BOT_RETRY_DELAYS = (2.0, 10.0, 30.0)


def _retry_delays() -> tuple[float, ...]:
    return tuple(getattr(settings, "AUTOMATION_BOT_RETRY_DELAYS", BOT_RETRY_DELAYS))


@shared_task(name="automation.rule_bot_call", ignore_result=True)
@tenant_task
def rule_bot_call(tenant_id: int, run_id: int, attempt: int = 0) -> None:
    """Ask the partner's bot of a pending run and send its answer; try again with backoff."""
    if not RuleRun.objects.filter(pk=run_id, outcome=RuleRun.Outcome.PENDING).exists():
        return
    delays = _retry_delays()
    state = bot.rule_run_bot_call(run_id=run_id, final_attempt=attempt >= len(delays))
    if state == bot.RETRY:
        countdown = delays[attempt] * random.uniform(0.8, 1.2)  # noqa: S311 - jitter
        rule_bot_call.apply_async(args=(tenant_id, run_id, attempt + 1), countdown=countdown)


@shared_task(name="automation.sweep_pending_runs", ignore_result=True)
def sweep_pending_runs() -> int:
    """Beat: in every workspace, ask again the bots of runs whose task was lost."""
    total = 0
    for tenant_id in Tenant.objects.order_by("pk").values_list("pk", flat=True):
        total += sweep_pending_runs_of_tenant(tenant_id) or 0
    return total


@shared_task(name="automation.sweep_pending_runs_of_tenant", ignore_result=True)
@tenant_task
def sweep_pending_runs_of_tenant(tenant_id: int) -> int:
    run_ids = bot.rule_runs_pending_resume()
    for run_id in run_ids:
        rule_bot_call.apply_async(args=(tenant_id, run_id))
    return len(run_ids)
