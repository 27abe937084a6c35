"""The audit log: who did what and when, appended by services, read by owners and admins.

An entry names its actor, an action, and the object it was about by type and id. ``detail``
holds counts, role names, scope names, setting values: never message content, a token, or a
customer's name. Entries are never changed or removed (see ``AuditEntry``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import ApiKey, AuditEntry, Tenant, User
from config.input_guard import parse_digits


class Action:
    """Every action the log records, and how the log page names it."""

    MEMBER_INVITED = "member.invited"
    MEMBER_JOINED = "member.joined"
    MEMBER_ROLE_CHANGED = "member.role_changed"
    MEMBER_REMOVED = "member.removed"
    API_KEY_CREATED = "api_key.created"
    API_KEY_REVOKED = "api_key.revoked"
    SETTINGS_CHANGED = "settings.changed"
    ACCOUNT_CONNECTED = "account.connected"
    ACCOUNT_DISCONNECTED = "account.disconnected"
    ACCOUNT_DEAUTHORIZED = "account.deauthorized"
    ACCOUNT_TOKEN_FAILED = "account.token_failed"  # noqa: S105 (an action name, not a secret)
    MESSAGE_UNSENT = "message.unsent"
    CONTACT_EXPORTED = "contact.exported"
    CONTACT_ERASURE_REQUESTED = "contact.erasure_requested"
    CONTACT_ERASED = "contact.erased"
    RETENTION_CHANGED = "retention.changed"
    RETENTION_PURGED = "retention.purged"
    DATA_DELETION_PROCESSED = "data_deletion.processed"
    TENANT_DELETION_REQUESTED = "tenant.deletion_requested"
    AUTOMATION_RULE_CREATED = "automation.rule_created"
    AUTOMATION_RULE_CHANGED = "automation.rule_changed"
    AUTOMATION_RULE_DELETED = "automation.rule_deleted"
    AUTOMATION_SETTINGS_CHANGED = "automation.settings_changed"

    LABELS: dict[str, str] = {
        MEMBER_INVITED: "Member invited",
        MEMBER_JOINED: "Member joined",
        MEMBER_ROLE_CHANGED: "Role changed",
        MEMBER_REMOVED: "Member removed",
        API_KEY_CREATED: "API key created",
        API_KEY_REVOKED: "API key revoked",
        SETTINGS_CHANGED: "Settings changed",
        ACCOUNT_CONNECTED: "Instagram account connected",
        ACCOUNT_DISCONNECTED: "Instagram account disconnected",
        ACCOUNT_DEAUTHORIZED: "App removed by the account's owner",
        ACCOUNT_TOKEN_FAILED: "Instagram connection failed",
        MESSAGE_UNSENT: "Message unsent by the customer",
        CONTACT_EXPORTED: "Contact data exported",
        CONTACT_ERASURE_REQUESTED: "Contact erasure requested",
        CONTACT_ERASED: "Contact erased",
        RETENTION_CHANGED: "Retention policy changed",
        RETENTION_PURGED: "Old message content erased",
        DATA_DELETION_PROCESSED: "Data deletion request from Meta",
        TENANT_DELETION_REQUESTED: "Workspace deletion requested",
        AUTOMATION_RULE_CREATED: "Automation rule created",
        AUTOMATION_RULE_CHANGED: "Automation rule changed",
        AUTOMATION_RULE_DELETED: "Automation rule deleted",
        AUTOMATION_SETTINGS_CHANGED: "Automation settings changed",
    }


# Keys whose values could carry content are refused outright, so a careless caller fails loudly.
_FORBIDDEN_DETAIL_KEYS = frozenset(
    {"text", "body", "message", "content", "token", "access_token", "secret", "url", "name"}
)


def _actor_label(user: User | None, api_key: ApiKey | None, fallback: str) -> str:
    if user is not None:
        return user.email
    if api_key is not None:
        return f"API key {api_key.name} ({api_key.prefix}…)"
    return fallback


def audit_record(
    *,
    tenant: Tenant | int,
    action: str,
    actor_user: User | None = None,
    actor_api_key: ApiKey | None = None,
    actor_label: str = "",
    target_type: str = "",
    target_id: Any = "",
    detail: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry to the workspace's log, inside the caller's transaction."""
    detail = dict(detail or {})
    forbidden = sorted(_FORBIDDEN_DETAIL_KEYS & set(detail))
    if forbidden:
        raise ValueError(f"audit detail may not carry {', '.join(forbidden)}")
    tenant_id = tenant if isinstance(tenant, int) else tenant.pk
    user = actor_user if actor_user is not None and actor_user.is_authenticated else None
    return AuditEntry.objects.create(
        tenant_id=tenant_id,
        actor_user=user,
        actor_api_key=actor_api_key,
        actor_label=_actor_label(user, actor_api_key, actor_label or "System")[:200],
        action=action,
        target_type=target_type,
        target_id=str(target_id or "")[:64],
        detail=detail,
    )


# -- selectors -------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditFilters:
    action: str = ""
    actor: str = ""  # a person's id, "key:<id>" for an API key, or "system"
    since: date | None = None
    until: date | None = None


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min), timezone.get_current_timezone())


def audit_entry_list(filters: AuditFilters | None = None) -> QuerySet[AuditEntry]:
    """The active workspace's entries, newest first, narrowed by ``filters``."""
    entries = AuditEntry.objects.select_related("actor_user").order_by("-created_at", "-id")
    if filters is None:
        return entries
    if filters.action:
        if filters.action.endswith("."):
            entries = entries.filter(action__startswith=filters.action)
        else:
            entries = entries.filter(action=filters.action)
    if filters.actor == "system":
        entries = entries.filter(actor_user__isnull=True, actor_api_key__isnull=True)
    elif filters.actor.startswith("key:"):
        key_id = parse_digits(filters.actor[4:])
        if key_id is not None:
            entries = entries.filter(actor_api_key_id=key_id)
    elif (user_id := parse_digits(filters.actor)) is not None:
        entries = entries.filter(actor_user_id=user_id)
    if filters.since is not None:
        entries = entries.filter(created_at__gte=_day_start(filters.since))
    if filters.until is not None:
        entries = entries.filter(created_at__lt=_day_start(filters.until + timedelta(days=1)))
    return entries


def audit_actor_choices() -> list[tuple[str, str]]:
    """The people and keys that appear in the workspace's log, for the filter."""
    seen: dict[str, str] = {}
    rows = (
        AuditEntry.objects.order_by()
        .values_list("actor_user_id", "actor_api_key_id", "actor_label")
        .distinct()[:500]
    )
    for user_id, key_id, label in rows:
        if user_id is not None:
            seen.setdefault(str(user_id), label)
        elif key_id is not None:
            seen.setdefault(f"key:{key_id}", label)
        else:
            seen.setdefault("system", "System and Meta")
    return sorted(seen.items(), key=lambda item: item[1].lower())
