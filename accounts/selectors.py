"""Every read in the accounts domain. Always inside a tenant scope."""

from __future__ import annotations

from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import ApiKey, InstagramAccount, Invitation, Membership


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


def instagram_account_list() -> QuerySet[InstagramAccount]:
    return InstagramAccount.objects.order_by("username", "pk")
