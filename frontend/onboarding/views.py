"""Pages for connecting Instagram accounts, their health, client links and agents' access.

Admin pages run in the active workspace's scope, so another workspace's ids are not found
(404). A client opening an onboarding link has no account here: the link's token is the key,
and names the one workspace their accounts land in.

The Meta login keeps its ``state`` in the person's session, together with the workspace (or
link) it is for; the callback refuses any other.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ObjectDoesNotExist
from django.core.exceptions import PermissionDenied as Forbidden
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import onboarding, selectors, tenancy
from accounts.exceptions import AccountsError
from accounts.models import (
    InstagramAccount,
    Membership,
    OnboardingAttempt,
    OnboardingLink,
    Role,
)
from accounts.roles import Capability, membership_can
from config.input_guard import parse_digits
from frontend.views import member_required

FLOW_KEY = "instagram_onboarding"
LOGIN_KINDS = {k.value: k.label for k in InstagramAccount.LoginKind}


def _membership(request: HttpRequest) -> Membership:
    membership: Membership | None = getattr(request, "membership", None)
    if membership is None:  # member_required makes this unreachable
        raise Forbidden
    return membership


def _found(selector: Any, **kwargs: Any) -> Any:
    try:
        return selector(**kwargs)
    except ObjectDoesNotExist as exc:
        raise Http404 from exc


def _callback_url(login_kind: str) -> str:
    """The redirect URI registered with Meta: one per login, on the public site URL."""
    path = reverse(f"frontend:onboarding_callback_{login_kind}")
    return f"{settings.SITE_URL.rstrip('/')}{path}"


def _start_login(request: HttpRequest, *, login_kind: str, tenant_id: int, link_token: str = ""):  # type: ignore[no-untyped-def]
    if login_kind not in LOGIN_KINDS:
        raise Http404
    state = onboarding.new_state()
    request.session[FLOW_KEY] = {
        "state": state,
        "kind": login_kind,
        "tenant_id": tenant_id,
        "link_token": link_token,
        "user_id": request.user.pk if request.user.is_authenticated and not link_token else None,
        "attempt_id": None,
    }
    url = onboarding.login_url(
        login_kind=login_kind, redirect_uri=_callback_url(login_kind), state=state
    )
    return redirect(url)


# -- the accounts list and one account's health ------------------------------------------------


@require_GET
@member_required()
def account_list(request: HttpRequest) -> HttpResponse:
    membership = _membership(request)
    accounts = list(selectors.instagram_account_list(membership=membership))
    counts: dict[str, int] = {}
    for account in accounts:
        counts[account.health] = counts.get(account.health, 0) + 1
    context = {
        "section": "accounts",
        "accounts": accounts,
        "counts": counts,
        "attention": [a for a in accounts if a.health == "needs_reauth"],
        "can_manage_accounts": membership_can(membership, Capability.MANAGE_ACCOUNTS),
    }
    return render(request, "onboarding/account_list.html", context)


@require_GET
@member_required()
def account_health(request: HttpRequest, account_id: int) -> HttpResponse:
    membership = _membership(request)
    account = _found(selectors.instagram_account_get, account_id=account_id, membership=membership)
    can_manage = membership_can(membership, Capability.MANAGE_ACCOUNTS)
    context = {
        "section": "accounts",
        "account": account,
        "can_manage_accounts": can_manage,
        "required": onboarding.REQUIRED_PERMISSIONS[account.login_kind],
        "reconnect_link": request.session.pop(f"reconnect_link_{account.pk}", ""),
        "now": timezone.now(),
    }
    return render(request, "onboarding/account_health.html", context)


@require_POST
@member_required(Capability.MANAGE_ACCOUNTS)
def account_check(request: HttpRequest, account_id: int) -> HttpResponse:
    account = _found(selectors.instagram_account_get, account_id=account_id)
    onboarding.instagram_account_check_soon(account=account)
    messages.success(
        request,
        f"@{account.username or account.ig_user_id} is being checked with Meta. "
        "Reload this page in a moment.",
    )
    return redirect("frontend:onboarding_account", account_id=account.pk)


@never_cache
@require_http_methods(["GET", "POST"])
@member_required(Capability.MANAGE_ACCOUNTS)
def account_disconnect(request: HttpRequest, account_id: int) -> HttpResponse:
    account = _found(selectors.instagram_account_get, account_id=account_id)
    if request.method == "POST":
        erase = request.POST.get("conversations") == "erase"
        onboarding.instagram_account_disconnect(
            account=account,
            erase_conversations=erase,
            actor_user=request.user,  # type: ignore[arg-type]
        )
        kept = "Its conversations were erased." if erase else "Its conversations were kept."
        messages.success(request, f"@{account.username} was disconnected. {kept}")
        return redirect("frontend:instagram_accounts")
    return render(
        request, "onboarding/account_disconnect.html", {"section": "accounts", "account": account}
    )


@never_cache
@require_POST
@member_required(Capability.MANAGE_ACCOUNTS)
def account_reconnect_link(request: HttpRequest, account_id: int) -> HttpResponse:
    account = _found(selectors.instagram_account_get, account_id=account_id)
    membership = _membership(request)
    _, token = onboarding.onboarding_link_create(
        tenant=membership.tenant,
        created_by=request.user,  # type: ignore[arg-type]
        note=f"Reconnect @{account.username or account.ig_user_id}",
        account=account,
        send_to=request.POST.get("email", "").strip(),
    )
    request.session[f"reconnect_link_{account.pk}"] = request.build_absolute_uri(
        reverse("frontend:onboarding_client", args=[token])
    )
    messages.success(request, "A reconnect link was made. Send it to the client.")
    return redirect("frontend:onboarding_account", account_id=account.pk)


# -- connecting --------------------------------------------------------------------------------


@never_cache
@require_http_methods(["GET", "POST"])
@member_required(Capability.MANAGE_ACCOUNTS)
def connect(request: HttpRequest) -> HttpResponse:
    membership = _membership(request)
    if request.method == "POST":
        return _start_login(
            request, login_kind=request.POST.get("login_kind", ""), tenant_id=membership.tenant_id
        )
    return render(request, "onboarding/connect.html", {"section": "accounts"})


def _refused(request: HttpRequest, text: str, *, client: bool, status: int = 200) -> HttpResponse:
    template = "onboarding/client_refused.html" if client else "onboarding/refused.html"
    return render(request, template, {"section": "accounts", "reason": text}, status=status)


@never_cache
@require_GET
def callback(request: HttpRequest, login_kind: str) -> HttpResponse:
    """Where Meta sends the person back, with a code or the reason there is none."""
    flow = request.session.get(FLOW_KEY) or {}
    client = bool(flow.get("link_token"))
    state = request.GET.get("state", "")
    if not flow:
        messages.warning(request, "No login was in progress here. Start again to connect.")
        return redirect("frontend:onboarding_connect")
    if (
        flow.get("kind") != login_kind
        or not state
        or not constant_time_compare(state, flow.get("state", ""))
    ):
        return _refused(
            request,
            "This login could not be matched to one you started here, so nothing was "
            "connected. Please start again.",
            client=client,
            status=400,
        )
    flow["state"] = ""  # one use
    request.session[FLOW_KEY] = flow
    error = request.GET.get("error", "")
    if error or not request.GET.get("code"):
        text = onboarding.login_refusal_text(
            login_kind=login_kind,
            error=error or "no_code",
            reason=request.GET.get("error_reason", ""),
            description=request.GET.get("error_description", ""),
        )
        return _refused(request, text, client=client)
    code = request.GET["code"].removesuffix("#_")
    if client:
        return _client_callback(request, flow, login_kind, code)
    membership: Membership | None = getattr(request, "membership", None)
    if (
        membership is None
        or membership.tenant_id != flow.get("tenant_id")
        or request.user.pk != flow.get("user_id")
        or not membership_can(membership, Capability.MANAGE_ACCOUNTS)
    ):
        return _refused(
            request,
            "This login was started for another workspace or person, so nothing was "
            "connected. Please start again.",
            client=False,
            status=400,
        )
    try:
        attempt = onboarding.onboarding_attempt_create(
            tenant=membership.tenant,
            login_kind=login_kind,
            code=code,
            redirect_uri=_callback_url(login_kind),
            started_by=request.user,  # type: ignore[arg-type]
        )
    except AccountsError as exc:
        return _refused(request, exc.message, client=False)
    flow["attempt_id"] = attempt.pk
    request.session[FLOW_KEY] = flow
    return redirect("frontend:onboarding_pick")


def _pick_context(attempt: OnboardingAttempt, **extra: Any) -> dict[str, Any]:
    candidates = attempt.candidates
    return {
        "section": "accounts",
        "attempt": attempt,
        "candidates": candidates,
        "login_label": LOGIN_KINDS.get(attempt.login_kind, ""),
        "connectable": [c for c in candidates if c.get("availability") != "elsewhere"],
        **extra,
    }


@never_cache
@require_http_methods(["GET", "POST"])
@member_required(Capability.MANAGE_ACCOUNTS)
def pick(request: HttpRequest) -> HttpResponse:
    """The accounts the login in this session can reach; the person picks which to connect."""
    flow = request.session.get(FLOW_KEY) or {}
    try:
        attempt = selectors.onboarding_attempt_get(attempt_id=int(flow.get("attempt_id") or 0))
    except ObjectDoesNotExist:
        attempt = None
    if attempt is None or flow.get("link_token"):
        messages.warning(request, "That login is over. Start again to connect accounts.")
        return redirect("frontend:onboarding_connect")
    if request.method == "POST":
        try:
            outcome = onboarding.onboarding_connect(
                attempt=attempt,
                ig_user_ids=request.POST.getlist("account"),
                user=request.user,  # type: ignore[arg-type]
            )
        except AccountsError as exc:
            context = _pick_context(attempt, error=exc.message)
            return render(request, "onboarding/pick.html", context, status=400)
        request.session.pop(FLOW_KEY, None)
        return render(
            request, "onboarding/connected.html", {"section": "accounts", "outcome": outcome}
        )
    return render(request, "onboarding/pick.html", _pick_context(attempt))


# -- client onboarding links -------------------------------------------------------------------


@never_cache
@require_http_methods(["GET", "POST"])
@member_required(Capability.MANAGE_ACCOUNTS)
def links(request: HttpRequest) -> HttpResponse:
    membership = _membership(request)
    new_link = ""
    status = 200
    error = ""
    if request.method == "POST":
        try:
            days = int(request.POST.get("expires_in_days") or 7)
        except ValueError:
            days = 0
        try:
            _, token = onboarding.onboarding_link_create(
                tenant=membership.tenant,
                created_by=request.user,  # type: ignore[arg-type]
                note=request.POST.get("note", ""),
                expires_in=timedelta(days=days),
                send_to=request.POST.get("email", "").strip(),
            )
        except AccountsError as exc:
            error, status = exc.message, 400
        else:
            new_link = request.build_absolute_uri(
                reverse("frontend:onboarding_client", args=[token])
            )
    now = timezone.now()
    rows = [(link, link.state_at(now)) for link in selectors.onboarding_link_list()]
    context = {
        "section": "accounts",
        "rows": rows,
        "new_link": new_link,
        "error": error,
        "States": OnboardingLink.State,
    }
    return render(request, "onboarding/links.html", context, status=status)


@require_POST
@member_required(Capability.MANAGE_ACCOUNTS)
def link_revoke(request: HttpRequest, link_id: int) -> HttpResponse:
    link = _found(selectors.onboarding_link_get, link_id=link_id)
    onboarding.onboarding_link_revoke(link=link)
    messages.success(request, "The link was withdrawn. It no longer works.")
    return redirect("frontend:onboarding_links")


def _client_link(token: str) -> OnboardingLink:
    link = tenancy.onboarding_link_by_token(token)
    if link is None:
        raise Http404
    return link


@never_cache
@require_http_methods(["GET", "POST"])
def client_start(request: HttpRequest, token: str) -> HttpResponse:
    """The link a client opens: who asks, and the two ways to log in with Meta."""
    link = _client_link(token)
    try:
        onboarding.onboarding_link_check(link)
    except AccountsError as exc:
        return _refused(request, exc.message, client=True, status=410)
    with tenancy.scope_of_trusted_row(link):
        onboarding.onboarding_link_open(link=link)
        if request.method == "POST":
            return _start_login(
                request,
                login_kind=request.POST.get("login_kind", ""),
                tenant_id=link.tenant_id,
                link_token=token,
            )
    return render(request, "onboarding/client_start.html", {"link": link, "token": token})


def _client_callback(
    request: HttpRequest, flow: dict[str, Any], login_kind: str, code: str
) -> HttpResponse:
    link = tenancy.onboarding_link_by_token(flow.get("link_token", ""))
    try:
        onboarding.onboarding_link_check(link)
    except AccountsError as exc:
        return _refused(request, exc.message, client=True, status=410)
    if link is None or link.tenant_id != flow.get("tenant_id"):
        raise Http404
    with tenancy.scope_of_trusted_row(link):
        try:
            attempt = onboarding.onboarding_attempt_create(
                tenant=link.tenant,
                login_kind=login_kind,
                code=code,
                redirect_uri=_callback_url(login_kind),
                started_by=None,
                link=link,
            )
        except AccountsError as exc:
            return _refused(request, exc.message, client=True)
    flow["attempt_id"] = attempt.pk
    request.session[FLOW_KEY] = flow
    return redirect("frontend:onboarding_client_pick", token=flow["link_token"])


@never_cache
@require_http_methods(["GET", "POST"])
def client_pick(request: HttpRequest, token: str) -> HttpResponse:
    link = _client_link(token)
    flow = request.session.get(FLOW_KEY) or {}
    if not constant_time_compare(flow.get("link_token", ""), token) or not flow.get("attempt_id"):
        raise Http404
    with tenancy.scope_of_trusted_row(link):
        attempt = _found(selectors.onboarding_attempt_get, attempt_id=flow["attempt_id"])
        if attempt.link_id != link.pk:
            raise Http404
        context = _pick_context(attempt, link=link, token=token, client=True)
        if request.method == "POST":
            try:
                outcome = onboarding.onboarding_connect(
                    attempt=attempt, ig_user_ids=request.POST.getlist("account"), user=None
                )
            except AccountsError as exc:
                context["error"] = exc.message
                return render(request, "onboarding/client_pick.html", context, status=400)
            request.session.pop(FLOW_KEY, None)
            return render(
                request, "onboarding/client_done.html", {"link": link, "outcome": outcome}
            )
    return render(request, "onboarding/client_pick.html", context)


# -- which accounts an agent sees --------------------------------------------------------------


@never_cache
@require_http_methods(["GET", "POST"])
@member_required(Capability.MANAGE_MEMBERS)
def member_accounts(request: HttpRequest, membership_id: int) -> HttpResponse:
    member = _found(selectors.membership_get, membership_id=membership_id)
    accounts = list(selectors.instagram_account_list(include_disconnected=False))
    status = 200
    error = ""
    if request.method == "POST":
        picked = (parse_digits(v) for v in request.POST.getlist("account"))
        wanted = [account_id for account_id in picked if account_id is not None]
        try:
            onboarding.membership_set_account_access(
                membership=member,
                limited=request.POST.get("limited") == "yes",
                account_ids=wanted,
            )
        except AccountsError as exc:
            error, status = exc.message, 400
        else:
            messages.success(request, f"Account access of {member.user.email} saved.")
            return redirect("frontend:onboarding_member_accounts", membership_id=member.pk)
    context = {
        "section": "members",
        "member": member,
        "accounts": accounts,
        "allowed": selectors.account_access_ids(membership=member),
        "limitable": member.role not in (Role.OWNER, Role.ADMIN),
        "error": error,
    }
    return render(request, "onboarding/member_accounts.html", context, status=status)
