"""Reads of automation, always inside the caller's tenant scope."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.db.models import QuerySet

from accounts.models import InstagramAccount
from automation.models import AccountAutomation, Rule, RuleRun

# Runs that count towards a rule's cooldown: it fired, or its partner bot is being asked.
COOLDOWN_OUTCOMES = (RuleRun.Outcome.FIRED, RuleRun.Outcome.PENDING)


def rule_list(*, account: InstagramAccount) -> QuerySet[Rule]:
    """The account's rules in the order they run."""
    return Rule.objects.filter(account=account).order_by("position", "id")


def rules_enabled_for(*, account: InstagramAccount, triggers: Iterable[str]) -> list[Rule]:
    """The account's enabled rules with one of ``triggers``, in the order they run (one query)."""
    return list(
        Rule.objects.filter(account=account, enabled=True, trigger__in=list(triggers)).order_by(
            "position", "id"
        )
    )


def rule_run_list(*, rule: Rule) -> QuerySet[RuleRun]:
    """A rule's history, newest first."""
    return (
        RuleRun.objects.filter(rule=rule)
        .select_related("contact", "conversation", "comment")
        .order_by("-created_at", "-id")
    )


def rule_in_cooldown(*, rule: Rule, customer_igsid: str, now: datetime) -> bool:
    """Whether the rule already fired for this person within its cooldown."""
    if not customer_igsid or rule.cooldown.total_seconds() <= 0:
        return False
    return RuleRun.objects.filter(
        rule=rule,
        customer_igsid=customer_igsid,
        outcome__in=COOLDOWN_OUTCOMES,
        created_at__gte=now - rule.cooldown,
    ).exists()


def account_automation_get(*, account_id: int) -> AccountAutomation | None:
    return AccountAutomation.objects.filter(account_id=account_id).first()


def resolve_returns_to_automation(*, account_id: int) -> bool:
    """Whether resolving a conversation of this account hands it back to automation."""
    value = (
        AccountAutomation.objects.filter(account_id=account_id)
        .values_list("resolve_returns_to_automation", flat=True)
        .first()
    )
    return True if value is None else bool(value)


def rule_runs_pending(*, created_before: datetime) -> QuerySet[RuleRun]:
    """Runs still waiting for their partner bot that were created before ``created_before``."""
    return RuleRun.objects.filter(
        outcome=RuleRun.Outcome.PENDING, created_at__lt=created_before
    ).order_by("id")
