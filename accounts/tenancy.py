"""Where tenant scopes are opened. Nothing else in the product opens one.

Every tenant-owned model has a django-scopes manager that refuses to query outside a scope. The
scope is opened only here, by the entry points:

- ``TenantMiddleware`` for people: the active tenant comes from the session and is honoured only
  while the person is a member of it;
- ``ApiKeyAuthentication`` with ``TenantScopedAPIView`` for partners (``accounts/api``);
- ``tenant_task`` for Celery tasks, which receive a tenant id and load their rows inside it;
- the webhook router (``webhooks/router.py``), which looks accounts up by Meta's id.

The few lookups that must cross tenants before a scope can exist (a person's memberships, an
invitation or API key by its secret) live in this module too, named for what they do.
"""

from __future__ import annotations

import functools
import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from django.db.models import Q
from django.db.models.signals import post_delete
from django.http import HttpRequest, HttpResponse
from django_scopes import scope, scopes_disabled

from accounts.models import (
    ApiKey,
    InstagramAccount,
    Invitation,
    Membership,
    OnboardingAttempt,
    OnboardingLink,
    Tenant,
    TenantCompliance,
)

if TYPE_CHECKING:
    from accounts.models import User

SESSION_TENANT_KEY = "active_tenant_id"

P = ParamSpec("P")
R = TypeVar("R")


def secret_hash(secret: str) -> str:
    """The stored form of a high-entropy secret (API key, invitation token)."""
    return hashlib.sha256(secret.encode()).hexdigest()


# -- cross-tenant lookups, allowed here only ------------------------------------------------


def memberships_of_user(user: User) -> list[Membership]:
    with scopes_disabled():
        return list(
            Membership.objects.filter(user=user).select_related("tenant").order_by("tenant__name")
        )


def membership_of_user_in(user: User, tenant_id: int) -> Membership | None:
    with scopes_disabled():
        return (
            Membership.objects.filter(user=user, tenant_id=tenant_id)
            .select_related("tenant")
            .first()
        )


def invitation_by_token(token: str) -> Invitation | None:
    with scopes_disabled():
        return (
            Invitation.objects.filter(token_hash=secret_hash(token))
            .select_related("tenant")
            .first()
        )


def api_key_by_prefix(prefix: str) -> ApiKey | None:
    with scopes_disabled():
        return ApiKey.objects.filter(prefix=prefix).select_related("tenant").first()


def onboarding_link_by_token(token: str) -> OnboardingLink | None:
    """A client onboarding link by the secret in its URL (the client has no account here)."""
    with scopes_disabled():
        return (
            OnboardingLink.objects.filter(token_hash=secret_hash(token))
            .select_related("tenant")
            .first()
        )


def instagram_account_holder_any_tenant(ig_user_id: str) -> int | None:
    """The id of the tenant an Instagram account is connected to now, if any.

    Only the id leaves this function: a refusal must never name the other tenant.
    """
    with scopes_disabled():
        return (
            InstagramAccount.objects.filter(ig_user_id=ig_user_id)
            .exclude(status=InstagramAccount.Status.DISCONNECTED)
            .values_list("tenant_id", flat=True)
            .first()
        )


def instagram_accounts_of_meta_user_any_tenant(meta_user_id: str) -> list[tuple[int, int]]:
    """(tenant id, account id) of the accounts a person connected, for the deauthorize callback.

    Meta names the person by their app-scoped Facebook id (Facebook Login) or by an Instagram
    id (Instagram Login), so both are matched.
    """
    if not meta_user_id:
        return []
    with scopes_disabled():
        return list(
            InstagramAccount.objects.filter(
                Q(meta_user_id=meta_user_id)
                | Q(ig_user_id=meta_user_id, login_kind=InstagramAccount.LoginKind.INSTAGRAM)
            )
            .exclude(status=InstagramAccount.Status.DISCONNECTED)
            .values_list("tenant_id", "pk")
        )


def instagram_accounts_due_any_tenant(
    *,
    login_kind: str | None = None,
    expiring_before: datetime | None = None,
    checked_before: datetime | None = None,
) -> list[tuple[int, int]]:
    """(tenant id, account id) of connected accounts whose token needs upkeep (beat tasks)."""
    with scopes_disabled():
        accounts = InstagramAccount.objects.filter(status=InstagramAccount.Status.ACTIVE)
        if login_kind is not None:
            accounts = accounts.filter(login_kind=login_kind)
        if expiring_before is not None:
            accounts = accounts.filter(token_expires_at__lt=expiring_before)
        if checked_before is not None:
            accounts = accounts.filter(
                Q(token_checked_at__isnull=True) | Q(token_checked_at__lt=checked_before)
            )
        return list(accounts.order_by("pk").values_list("tenant_id", "pk"))


def instagram_accounts_naming_meta_user_any_tenant(meta_user_id: str) -> list[tuple[int, int]]:
    """(tenant id, account id) of every account, connected or not, that names this person.

    For Meta's data-deletion callback: the person's identity leaves disconnected rows too.
    """
    if not meta_user_id:
        return []
    with scopes_disabled():
        return list(
            InstagramAccount.objects.filter(
                Q(meta_user_id=meta_user_id)
                | Q(ig_user_id=meta_user_id, login_kind=InstagramAccount.LoginKind.INSTAGRAM)
            ).values_list("tenant_id", "pk")
        )


def onboarding_attempts_of_meta_user_any_tenant(meta_user_id: str) -> list[tuple[int, int]]:
    """(tenant id, attempt id) of the logins this person made, for the data-deletion callback."""
    if not meta_user_id:
        return []
    with scopes_disabled():
        return list(
            OnboardingAttempt.objects.filter(meta_user_id=meta_user_id).values_list(
                "tenant_id", "pk"
            )
        )


def tenants_with_retention_any_tenant() -> list[int]:
    """Ids of the workspaces that set a retention period (the nightly purge visits them)."""
    with scopes_disabled():
        return list(
            TenantCompliance.objects.filter(
                Q(message_retention_days__isnull=False) | ~Q(account_retention_days={})
            )
            .order_by("tenant_id")
            .values_list("tenant_id", flat=True)
        )


@contextmanager
def scope_of_trusted_row(row: OnboardingLink) -> Iterator[None]:
    """Open the scope of the tenant owning a row found above by its secret.

    The client who opens an onboarding link has no membership: the link's token is the key,
    and it names the one tenant the client's accounts will land in.
    """
    with scope(tenant=row.tenant_id):
        yield


# -- people: the request middleware ----------------------------------------------------------


def choose_membership(request: HttpRequest) -> Membership | None:
    """The person's membership in their active tenant, falling back to their first one."""
    user = request.user
    if not user.is_authenticated:
        return None
    wanted = request.session.get(SESSION_TENANT_KEY)
    membership = membership_of_user_in(user, wanted) if wanted else None  # type: ignore[arg-type]
    if membership is None:
        memberships = memberships_of_user(user)  # type: ignore[arg-type]
        membership = memberships[0] if memberships else None
        if membership is not None:
            request.session[SESSION_TENANT_KEY] = membership.tenant_id
    return membership


def activate_tenant(request: HttpRequest, tenant_id: int) -> bool:
    """Switch the person's active tenant; refused unless they are a member of it."""
    membership = membership_of_user_in(request.user, tenant_id)  # type: ignore[arg-type]
    if membership is None:
        return False
    request.session[SESSION_TENANT_KEY] = membership.tenant_id
    return True


class TenantMiddleware:
    """Opens the tenant scope for a person's request (the partner API opens its own)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.tenant = None  # type: ignore[attr-defined]
        request.membership = None  # type: ignore[attr-defined]
        if request.path.startswith("/api/"):
            return self.get_response(request)
        membership = choose_membership(request)
        if membership is None:
            return self.get_response(request)
        request.tenant = membership.tenant  # type: ignore[attr-defined]
        request.membership = membership  # type: ignore[attr-defined]
        with scope(tenant=membership.tenant):
            return self.get_response(request)


def tenant_context(request: HttpRequest) -> dict[str, Any]:
    """Template context: the active tenant, the person's role, and the switcher's choices."""
    membership = getattr(request, "membership", None)
    if membership is None:
        return {}
    return {
        "tenant": membership.tenant,
        "membership": membership,
        "switchable_memberships": memberships_of_user(request.user),  # type: ignore[arg-type]
    }


# -- Celery: the task decorator --------------------------------------------------------------


# Workspaces a worker process has seen exist, remembered for a few seconds: a busy worker
# runs many tasks of the same workspace and need not ask for it before each one. Only
# existence is remembered (a missing workspace is asked about every time), a deletion made in
# this process is forgotten at once, one made elsewhere within ``TENANT_SEEN_TTL`` seconds; a
# task started in that window finds none of the deleted workspace's rows (they are deleted with
# it) and does nothing.
TENANT_SEEN_TTL = 10.0
_tenants_seen: dict[int, float] = {}
_tenants_lock = threading.Lock()


def _tenant_exists(tenant_id: int) -> bool:
    now = time.monotonic()
    until = _tenants_seen.get(tenant_id)
    if until is not None and until > now:
        return True
    if not Tenant.objects.filter(pk=tenant_id).exists():
        return False
    with _tenants_lock:
        if len(_tenants_seen) > 10_000:
            _tenants_seen.clear()
        _tenants_seen[tenant_id] = now + TENANT_SEEN_TTL
    return True


def forget_tenants(tenant_id: int | None = None) -> None:
    """Drop remembered workspaces (one, or all): the next task asks the database again."""
    with _tenants_lock:
        if tenant_id is None:
            _tenants_seen.clear()
        else:
            _tenants_seen.pop(tenant_id, None)


def _tenant_deleted(sender: type[Tenant], instance: Tenant, **kwargs: Any) -> None:
    forget_tenants(instance.pk)


post_delete.connect(_tenant_deleted, sender=Tenant, dispatch_uid="tenancy.tenant_deleted")


def tenant_task(func: Callable[P, R]) -> Callable[P, R]:
    """Run a task body inside the scope of the tenant id passed as its first argument.

    The body then loads its rows through scoped managers, so an id that belongs to another
    tenant is simply not found and the task does nothing. A tenant id that names no workspace
    runs nothing.
    """

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        tenant_id = kwargs["tenant_id"] if "tenant_id" in kwargs else args[0]
        if not isinstance(tenant_id, int) or isinstance(tenant_id, bool):
            raise TypeError("A tenant task's first argument is the tenant id.")
        if not _tenant_exists(tenant_id):
            return None  # type: ignore[return-value]
        with scope(tenant=tenant_id):
            return func(*args, **kwargs)

    return wrapper
