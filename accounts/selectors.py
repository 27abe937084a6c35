"""Every read in the accounts domain. Always inside a tenant scope."""

from __future__ import annotations

from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import (
    AccountAccess,
    ApiKey,
    InstagramAccount,
    Invitation,
    Membership,
    OnboardingAttempt,
    OnboardingLink,
    Role,
)

# Roles that always see every account of the workspace.
UNLIMITED_ROLES = frozenset({Role.OWNER, Role.ADMIN})


def membership_list() -> QuerySet[Membership]:
    return Membership.objects.select_related("user").order_by("created_at", "pk")


def membership_get(*, membership_id: int) -> Membership:
    return Membership.objects.select_related("user").get(pk=membership_id)


def invitation_list_pending() -> QuerySet[Invitation]:
    return (
        Invitation.objects.filter(
            accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=timezone.now()
        )
        .select_related("invited_by")
        .order_by("-created_at")
    )


def invitation_get(*, invitation_id: int) -> Invitation:
    return Invitation.objects.get(pk=invitation_id)


def api_key_list() -> QuerySet[ApiKey]:
    return ApiKey.objects.select_related("created_by").order_by("-created_at")


def api_key_get(*, api_key_id: int) -> ApiKey:
    return ApiKey.objects.get(pk=api_key_id)


def membership_is_limited(membership: Membership | None) -> bool:
    return (
        membership is not None
        and membership.accounts_limited
        and membership.role not in UNLIMITED_ROLES
    )


def visible_account_ids(membership: Membership | None) -> QuerySet[InstagramAccount, int]:
    """Ids of the Instagram accounts a member may see: use as ``account_id__in=`` anywhere.

    Owners and admins see every account of the workspace; an agent or viewer limited to chosen
    accounts sees only those. ``None`` (a partner API key) sees every account.
    """
    accounts = InstagramAccount.objects.all()
    if membership is not None and membership_is_limited(membership):
        allowed = AccountAccess.objects.filter(membership=membership).values("account_id")
        accounts = accounts.filter(pk__in=allowed)
    return accounts.values_list("pk", flat=True)


def instagram_account_list(
    *, membership: Membership | None = None, include_disconnected: bool = True
) -> QuerySet[InstagramAccount]:
    """The workspace's Instagram accounts that ``membership`` may see (all when ``None``)."""
    accounts = InstagramAccount.objects.all()
    if membership_is_limited(membership):
        accounts = accounts.filter(pk__in=visible_account_ids(membership))
    if not include_disconnected:
        accounts = accounts.exclude(status=InstagramAccount.Status.DISCONNECTED)
    return accounts.order_by("username", "pk")


def instagram_account_get(
    *, account_id: int, membership: Membership | None = None
) -> InstagramAccount:
    """One account the member may see; ``DoesNotExist`` otherwise (another tenant's too)."""
    return instagram_account_list(membership=membership).get(pk=account_id)


def account_access_ids(*, membership: Membership) -> set[int]:
    return set(
        AccountAccess.objects.filter(membership=membership).values_list("account_id", flat=True)
    )


def onboarding_link_list() -> QuerySet[OnboardingLink]:
    return OnboardingLink.objects.select_related("created_by", "account").order_by(
        "-created_at", "-pk"
    )


def onboarding_link_get(*, link_id: int) -> OnboardingLink:
    return onboarding_link_list().get(pk=link_id)


def onboarding_attempt_get(*, attempt_id: int) -> OnboardingAttempt:
    return OnboardingAttempt.objects.select_related("link").get(
        pk=attempt_id, completed_at__isnull=True, expires_at__gt=timezone.now()
    )
