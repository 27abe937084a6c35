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
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from django.http import HttpRequest, HttpResponse
from django_scopes import scope, scopes_disabled

from accounts.models import ApiKey, Invitation, Membership, Tenant

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


def tenant_task(func: Callable[P, R]) -> Callable[P, R]:
    """Run a task body inside the scope of the tenant id passed as its first argument.

    The body then loads its rows through scoped managers, so an id that belongs to another
    tenant is simply not found and the task does nothing.
    """

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        tenant_id = kwargs["tenant_id"] if "tenant_id" in kwargs else args[0]
        if not isinstance(tenant_id, int) or isinstance(tenant_id, bool):
            raise TypeError("A tenant task's first argument is the tenant id.")
        if not Tenant.objects.filter(pk=tenant_id).exists():
            return None  # type: ignore[return-value]
        with scope(tenant=tenant_id):
            return func(*args, **kwargs)

    return wrapper
