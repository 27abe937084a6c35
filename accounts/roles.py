"""What each role may do. Checked by views and the API before any service is called."""

from __future__ import annotations

from enum import StrEnum

from accounts.models import Membership, Role


class Capability(StrEnum):
    READ = "read"  # see the inbox, accounts and members
    REPLY = "reply"  # answer customers, assign, label, resolve
    MANAGE_ACCOUNTS = "manage_accounts"  # connect and disconnect Instagram accounts
    MANAGE_MEMBERS = "manage_members"  # invite, change roles, remove members
    MANAGE_API_KEYS = "manage_api_keys"  # create and revoke partner API keys
    MANAGE_SETTINGS = "manage_settings"  # workspace settings
    DELETE_TENANT = "delete_tenant"
    MANAGE_COMPLIANCE = "manage_compliance"  # export and erase contacts, retention
    READ_AUDIT = "read_audit"  # read the audit log


_BY_ROLE: dict[str, frozenset[Capability]] = {
    Role.VIEWER: frozenset({Capability.READ}),
    Role.AGENT: frozenset({Capability.READ, Capability.REPLY}),
    Role.ADMIN: frozenset(Capability) - {Capability.DELETE_TENANT},
    Role.OWNER: frozenset(Capability),
}


def role_can(role: str, capability: Capability) -> bool:
    return capability in _BY_ROLE.get(role, frozenset())


def membership_can(membership: Membership | None, capability: Capability) -> bool:
    return membership is not None and role_can(membership.role, capability)


def roles_assignable_by(role: str) -> list[str]:
    """Owners may grant any role; admins any but owner; others none."""
    if role == Role.OWNER:
        return [r.value for r in Role]
    if role == Role.ADMIN:
        return [Role.ADMIN, Role.AGENT, Role.VIEWER]
    return []
