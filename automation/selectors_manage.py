"""Reads for managing automation (the settings pages and the partner API), tenant-scoped.

The engine's own reads live in ``automation.selectors``.
"""

from __future__ import annotations

from django.db.models import OuterRef, QuerySet, Subquery

from accounts.models import InstagramAccount
from automation.models import AccountAutomation, Rule, RuleRun


def rule_list(*, account: InstagramAccount) -> QuerySet[Rule]:
    """The account's rules in the order they run, each with ``last_fired_at``."""
    last_fired = (
        RuleRun.objects.filter(rule=OuterRef("pk"), outcome=RuleRun.Outcome.FIRED)
        .order_by("-created_at")
        .values("created_at")[:1]
    )
    return (
        Rule.objects.filter(account=account)
        .annotate(last_fired_at=Subquery(last_fired))
        .order_by("position", "id")
    )


def rule_get(*, rule_id: int, account_ids: QuerySet[InstagramAccount, int] | None = None) -> Rule:
    """One rule of the workspace (``DoesNotExist`` for another workspace's id)."""
    rules = Rule.objects.select_related("account")
    if account_ids is not None:
        rules = rules.filter(account_id__in=account_ids)
    return rules.get(pk=rule_id)


def rule_run_list(*, rule: Rule) -> QuerySet[RuleRun]:
    """The rule's history, newest first, with who it was for."""
    return (
        RuleRun.objects.filter(rule=rule)
        .select_related("contact", "conversation", "comment")
        .order_by("-created_at", "-id")
    )


def account_automation_get(*, account: InstagramAccount) -> AccountAutomation:
    """The account's settings; an unsaved row with the defaults when none was saved yet."""
    row = AccountAutomation.objects.filter(account=account).first()
    if row is None:
        row = AccountAutomation(tenant_id=account.tenant_id, account=account)
    return row


def profile_sync_status(row: AccountAutomation) -> str:
    """``failed``, ``synced``, ``none`` (nothing to show at Meta) or ``pending``."""
    if row.profile_sync_error:
        return "failed"
    if row.profile_synced_at is not None:
        return "synced"
    if not (row.ice_breakers or row.persistent_menu):
        return "none"
    return "pending"


def rule_run_sent_texts(runs: list[RuleRun]) -> dict[int, str]:
    """The text of each message a page of runs sent, by message id (one query)."""
    from messaging.models import Message

    ids = {
        item["message_id"]
        for run in runs
        for item in run.done or []
        if isinstance(item, dict) and isinstance(item.get("message_id"), int)
    }
    if not ids:
        return {}
    return dict(Message.objects.filter(pk__in=ids).values_list("pk", "text"))


def outside_hours_rule_count(*, account: InstagramAccount) -> int:
    """How many enabled away-message rules (outside business hours) the account has."""
    from automation.models import Trigger

    return Rule.objects.filter(account=account, trigger=Trigger.OUTSIDE_HOURS, enabled=True).count()
