"""Pages of the web UI.

Every view checks who is asking (signed in, member of the active workspace, allowed by the role)
and then calls selectors and services. Objects named in a URL are looked up inside the active
workspace's scope, so another workspace's id is simply not found (404).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ObjectDoesNotExist
from django.core.exceptions import PermissionDenied as Forbidden
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import selectors, services, tenancy
from accounts.exceptions import AccountsError, InvitationInvalid
from accounts.forms import PENDING_INVITATION_KEY
from accounts.models import ApiKey, InstagramAccount, Membership, Role
from accounts.roles import Capability, membership_can, roles_assignable_by
from frontend import forms

View = Callable[..., HttpResponse]
T = TypeVar("T")


# -- guards ------------------------------------------------------------------------------------


def member_required(capability: Capability | None = None) -> Callable[[View], View]:
    """Signed in, a member of the active workspace and, if given, allowed the capability.

    Logged-out people go to the login page; people without a workspace go home, which offers
    to create one; a missing capability answers 403.
    """

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            membership = _membership(request)
            if membership is None:
                return redirect("frontend:home")
            if capability is not None and not membership_can(membership, capability):
                raise Forbidden
            return view(request, *args, **kwargs)

        return wrapper

    return decorate


def _membership(request: HttpRequest) -> Membership | None:
    return getattr(request, "membership", None)


def _acting(request: HttpRequest) -> Membership:
    membership = _membership(request)
    if membership is None:  # member_required makes this unreachable
        raise Forbidden
    return membership


def _require(request: HttpRequest, capability: Capability) -> None:
    if not membership_can(_membership(request), capability):
        raise Forbidden


def _found(selector: Callable[..., T], **kwargs: Any) -> T:
    """A selector's object, or 404 when it is missing or belongs to another workspace."""
    try:
        return selector(**kwargs)
    except ObjectDoesNotExist as exc:
        raise Http404 from exc


# -- home, workspaces --------------------------------------------------------------------------


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        return redirect("account_login")
    membership = _membership(request)
    if membership is None:
        return render(
            request, "frontend/no_workspace.html", {"form": forms.WorkspaceForm(), "section": ""}
        )
    accounts = list(selectors.instagram_account_list(membership=membership))
    can_manage_members = membership_can(membership, Capability.MANAGE_MEMBERS)
    context = {
        "section": "inbox",
        "accounts": accounts,
        "accounts_active": sum(a.status == InstagramAccount.Status.ACTIVE for a in accounts),
        "accounts_attention": sum(
            a.status == InstagramAccount.Status.NEEDS_REAUTH for a in accounts
        ),
        "member_count": selectors.membership_list().count(),
        "pending_invitation_count": (
            selectors.invitation_list_pending().count() if can_manage_members else None
        ),
        "can_manage_members": can_manage_members,
    }
    return render(request, "frontend/home.html", context)


@require_GET
@member_required()
def instagram_accounts(request: HttpRequest) -> HttpResponse:
    # The accounts list, with each account's health, lives with the onboarding pages.
    from frontend.onboarding.views import account_list

    return account_list(request)


@require_POST
def tenant_switch(request: HttpRequest) -> HttpResponse:
    """Make another of the person's workspaces the active one; any other id answers 404."""
    if not request.user.is_authenticated:
        return redirect_to_login(reverse("frontend:home"))
    form = forms.TenantSwitchForm(request.POST)
    if not form.is_valid() or not tenancy.activate_tenant(request, form.cleaned_data["tenant_id"]):
        raise Http404("No such workspace.")
    return redirect("frontend:home")


@require_http_methods(["GET", "POST"])
def workspace_create(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    form = forms.WorkspaceForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        tenant = services.tenant_create_with_owner(
            name=form.cleaned_data["name"],
            owner=request.user,  # type: ignore[arg-type]
        )
        tenancy.activate_tenant(request, tenant.pk)
        messages.success(request, f"Workspace “{tenant.name}” created. You are its owner.")
        return redirect("frontend:home")
    status = 400 if request.method == "POST" else 200
    return render(
        request, "frontend/workspace_create.html", {"form": form, "section": ""}, status=status
    )


# -- members and invitations -------------------------------------------------------------------


def _member_rows(
    request: HttpRequest, memberships: list[Membership], errors: dict[int, str] | None = None
) -> list[dict[str, Any]]:
    acting = _acting(request)
    can_manage = membership_can(acting, Capability.MANAGE_MEMBERS)
    assignable = roles_assignable_by(acting.role) if can_manage else []
    rows = []
    for member in memberships:
        editable = can_manage and (member.role != Role.OWNER or acting.role == Role.OWNER)
        choices = [(r, Role(r).label) for r in assignable]
        if editable and member.role not in assignable:
            choices.insert(0, (member.role, Role(member.role).label))
        rows.append(
            {
                "member": member,
                "is_self": member.pk == acting.pk,
                "editable": editable,
                "role_choices": choices,
                "error": (errors or {}).get(member.pk, ""),
            }
        )
    return rows


def _render_members(
    request: HttpRequest,
    *,
    invite_form: forms.InvitationCreateForm | None = None,
    invite_link: str = "",
    invite_email: str = "",
    row_errors: dict[int, str] | None = None,
    status: int = 200,
) -> HttpResponse:
    acting = _acting(request)
    can_manage = membership_can(acting, Capability.MANAGE_MEMBERS)
    if can_manage and invite_form is None:
        invite_form = forms.InvitationCreateForm(assignable_roles=roles_assignable_by(acting.role))
    memberships = list(selectors.membership_list())
    context = {
        "section": "members",
        "rows": _member_rows(request, memberships, row_errors),
        "member_count": len(memberships),
        "can_manage": can_manage,
        "invitations": list(selectors.invitation_list_pending()) if can_manage else [],
        "invite_form": invite_form,
        "invite_link": invite_link,
        "invite_email": invite_email,
    }
    return render(request, "frontend/members.html", context, status=status)


@require_GET
@member_required()
def members(request: HttpRequest) -> HttpResponse:
    return _render_members(request)


@require_POST
@member_required(Capability.MANAGE_MEMBERS)
def member_role(request: HttpRequest, membership_id: int) -> HttpResponse:
    acting = _acting(request)
    member = _found(selectors.membership_get, membership_id=membership_id)
    form = forms.MembershipRoleForm(request.POST)
    error = ""
    if not form.is_valid():
        error = "Choose a role."
    else:
        try:
            services.membership_change_role(
                membership=member,
                role=form.cleaned_data["role"],
                acting_role=acting.role,
                actor_user=request.user,  # type: ignore[arg-type]
            )
        except AccountsError as exc:
            error = exc.message
    if request.htmx:  # type: ignore[attr-defined]
        if not error and member.pk == acting.pk:
            # The person changed their own role: what they may do changed, reload the page.
            response = HttpResponse(status=204)
            response["HX-Refresh"] = "true"
            return response
        row = _member_rows(request, [member], {member.pk: error} if error else None)[0]
        row["saved"] = not error
        return render(request, "frontend/partials/member_row.html", {"row": row})
    if error:
        return _render_members(request, row_errors={member.pk: error}, status=400)
    messages.success(request, f"{member.user.email} is now {member.get_role_display()}.")
    return redirect("frontend:members")


@require_POST
@member_required(Capability.MANAGE_MEMBERS)
def member_remove(request: HttpRequest, membership_id: int) -> HttpResponse:
    acting = _acting(request)
    member = _found(selectors.membership_get, membership_id=membership_id)
    try:
        services.membership_remove(
            membership=member,
            acting_role=acting.role,
            actor_user=request.user,  # type: ignore[arg-type]
        )
    except AccountsError as exc:
        return _render_members(request, row_errors={member.pk: exc.message}, status=400)
    if member.pk == acting.pk:
        messages.success(request, "You left the workspace.")
        return redirect("frontend:home")
    messages.success(request, f"{member.user.email} was removed from the workspace.")
    return redirect("frontend:members")


@never_cache
@require_POST
@member_required(Capability.MANAGE_MEMBERS)
def invitation_create(request: HttpRequest) -> HttpResponse:
    acting = _acting(request)
    form = forms.InvitationCreateForm(
        request.POST, assignable_roles=roles_assignable_by(acting.role)
    )
    if not form.is_valid():
        return _render_members(request, invite_form=form, status=400)
    try:
        invitation, token = services.invitation_create(
            tenant=acting.tenant,
            email=form.cleaned_data["email"],
            role=form.cleaned_data["role"],
            invited_by=request.user,  # type: ignore[arg-type]
            acting_role=acting.role,
        )
    except AccountsError as exc:
        form.add_error("role", exc.message)
        return _render_members(request, invite_form=form, status=400)
    link = request.build_absolute_uri(reverse("frontend:invitation_accept", args=[token]))
    return _render_members(request, invite_link=link, invite_email=invitation.email)


@require_POST
@member_required(Capability.MANAGE_MEMBERS)
def invitation_revoke(request: HttpRequest, invitation_id: int) -> HttpResponse:
    invitation = _found(selectors.invitation_get, invitation_id=invitation_id)
    services.invitation_revoke(invitation=invitation)
    messages.success(request, f"The invitation for {invitation.email} was withdrawn.")
    return redirect("frontend:members")


def _invitation_refused(request: HttpRequest, reason: str, *, status: int) -> HttpResponse:
    request.session.pop(PENDING_INVITATION_KEY, None)
    return render(request, "frontend/invitation_invalid.html", {"reason": reason}, status=status)


@never_cache
@require_http_methods(["GET", "POST"])
def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    """The link in an invitation. The token is the key: it names the workspace and the role."""
    invitation = tenancy.invitation_by_token(token)
    if invitation is None:
        return _invitation_refused(request, "This invitation link is not valid.", status=404)
    try:
        services.invitation_check(invitation)
    except InvitationInvalid as exc:
        return _invitation_refused(request, exc.message, status=410)

    if not request.user.is_authenticated:
        # Signup and login bring the person back here once they are signed in.
        request.session[PENDING_INVITATION_KEY] = token
        return render(request, "frontend/invitation_welcome.html", {"invitation": invitation})

    if request.method == "POST":
        try:
            membership = services.invitation_accept(
                token=token,
                user=request.user,  # type: ignore[arg-type]
            )
        except InvitationInvalid as exc:
            return _invitation_refused(request, exc.message, status=410)
        request.session.pop(PENDING_INVITATION_KEY, None)
        tenancy.activate_tenant(request, membership.tenant_id)
        messages.success(
            request,
            f"Welcome to {invitation.tenant.name}. You joined as {membership.get_role_display()}.",
        )
        return redirect("frontend:home")

    existing = tenancy.membership_of_user_in(
        request.user,  # type: ignore[arg-type]
        invitation.tenant_id,
    )
    context = {"invitation": invitation, "existing": existing, "token": token}
    return render(request, "frontend/invitation_accept.html", context)


# -- API keys ----------------------------------------------------------------------------------


@require_GET
@member_required(Capability.MANAGE_API_KEYS)
def api_keys(request: HttpRequest) -> HttpResponse:
    keys = list(selectors.api_key_list())
    context = {
        "section": "api_keys",
        "keys": keys,
        "active_count": sum(k.is_active for k in keys),
    }
    return render(request, "frontend/api_keys.html", context)


@never_cache
@require_http_methods(["GET", "POST"])
@member_required(Capability.MANAGE_API_KEYS)
def api_key_create(request: HttpRequest) -> HttpResponse:
    form = forms.ApiKeyCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            key, secret = services.api_key_create(
                tenant=_acting(request).tenant,
                name=form.cleaned_data["name"],
                scopes=form.cleaned_data["scopes"],
                created_by=request.user,  # type: ignore[arg-type]
            )
        except AccountsError as exc:
            field = {"no_name": "name", "no_scope": "scopes", "unknown_scope": "scopes"}
            form.add_error(field.get(exc.code), exc.message)
        else:
            # The only time the full key is ever shown: it is not stored, only its hash.
            context = {"section": "api_keys", "key": key, "secret": secret}
            return render(request, "frontend/api_key_created.html", context)
    status = 400 if request.method == "POST" else 200
    return render(
        request,
        "frontend/api_key_create.html",
        {"section": "api_keys", "form": form},
        status=status,
    )


@require_http_methods(["GET", "POST"])
@member_required(Capability.MANAGE_API_KEYS)
def api_key_revoke(request: HttpRequest, api_key_id: int) -> HttpResponse:
    key: ApiKey = _found(selectors.api_key_get, api_key_id=api_key_id)
    if request.method == "POST":
        if key.is_active:
            services.api_key_revoke(api_key=key, actor_user=request.user)  # type: ignore[arg-type]
            messages.success(request, f"The key “{key.name}” was revoked. It stops working now.")
        return redirect("frontend:api_keys")
    return render(request, "frontend/api_key_revoke.html", {"section": "api_keys", "key": key})


# -- settings ----------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@member_required()
def settings_page(request: HttpRequest) -> HttpResponse:
    acting = _acting(request)
    can_edit = membership_can(acting, Capability.MANAGE_SETTINGS)
    status = 200
    if request.method == "POST":
        _require(request, Capability.MANAGE_SETTINGS)
        form = forms.WorkspaceForm(request.POST)
        if form.is_valid():
            try:
                services.tenant_rename(
                    tenant=acting.tenant,
                    name=form.cleaned_data["name"],
                    actor_user=request.user,  # type: ignore[arg-type]
                )
            except AccountsError as exc:
                form.add_error("name", exc.message)
            else:
                messages.success(request, "Workspace name saved.")
                return redirect("frontend:settings")
        status = 400
    else:
        form = forms.WorkspaceForm(initial={"name": acting.tenant.name})
    context = {"section": "settings", "form": form, "can_edit": can_edit}
    return render(request, "frontend/settings.html", context, status=status)
