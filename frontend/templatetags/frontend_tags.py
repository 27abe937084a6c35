"""Small helpers for the web UI's templates."""

from __future__ import annotations

from typing import Any

from django import template

from accounts import services, tenancy
from accounts.exceptions import InvitationInvalid
from accounts.forms import PENDING_INVITATION_KEY
from accounts.models import ApiScope, Invitation, Membership
from accounts.roles import Capability, membership_can

register = template.Library()


@register.filter
def initials(user: Any) -> str:
    """One or two letters for an avatar: from the name if there is one, else the email."""
    name = (getattr(user, "get_full_name", lambda: "")() or "").strip()
    if name:
        parts = name.split()
        return (parts[0][0] + (parts[-1][0] if len(parts) > 1 else "")).upper()
    email = str(getattr(user, "email", "") or user)
    return (email[:1] or "?").upper()


@register.filter
def scope_label(value: str) -> str:
    try:
        return str(ApiScope(value).label)
    except ValueError:
        return value


@register.simple_tag(takes_context=True)
def pending_invitation(context: dict[str, Any]) -> Invitation | None:
    """The still-valid invitation this browser is following, if any (signup and login pages)."""
    request = context.get("request")
    token = request.session.get(PENDING_INVITATION_KEY) if request is not None else None
    if not token:
        return None
    try:
        return services.invitation_check(tenancy.invitation_by_token(token))
    except InvitationInvalid:
        return None


@register.simple_tag
def can(membership: Membership | None, capability: str) -> bool:
    return membership_can(membership, Capability(capability))
