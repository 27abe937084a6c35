"""Inbox settings pages. Saved replies and labels are the team's daily tools: anyone who may
answer manages them; messaging settings (bot disclosure, human-agent replies) need the
settings capability. Viewers read. Another workspace's ids are not found (404)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import ObjectDoesNotExist
from django.core.exceptions import PermissionDenied as Forbidden
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from accounts import selectors as accounts_selectors
from accounts.models import Membership
from accounts.roles import Capability, membership_can
from frontend.views import member_required
from messaging import selectors_inbox
from messaging.models import Label
from messaging.services import teamwork


def _membership(request: HttpRequest) -> Membership:
    membership: Membership | None = getattr(request, "membership", None)
    if membership is None:
        raise Forbidden
    return membership


def _require(request: HttpRequest, capability: Capability) -> None:
    if not membership_can(_membership(request), capability):
        raise Forbidden


def _base(request: HttpRequest, tab: str) -> dict[str, Any]:
    membership = _membership(request)
    return {
        "section": "inbox_settings",
        "tab": tab,
        "can_reply": membership_can(membership, Capability.REPLY),
        "can_manage": membership_can(membership, Capability.MANAGE_SETTINGS),
    }


@require_http_methods(["GET", "POST"])
@member_required()
def replies(request: HttpRequest) -> HttpResponse:
    context = _base(request, "replies")
    status = 200
    form = {"shortcut": "", "body": ""}
    if request.method == "POST":
        _require(request, Capability.REPLY)
        form = {"shortcut": request.POST.get("shortcut", ""), "body": request.POST.get("body", "")}
        try:
            reply = teamwork.canned_reply_create(
                tenant_id=_membership(request).tenant_id,
                shortcut=form["shortcut"],
                body=form["body"],
                actor=request.user,  # type: ignore[arg-type]
            )
        except teamwork.TeamworkError as exc:
            context["form_error"] = exc.message
            status = 400
        else:
            messages.success(request, f"Saved reply /{reply.shortcut} added.")
            return redirect("settings_pages:replies")
    context.update(
        {
            "replies": list(selectors_inbox.canned_reply_list()),
            "labels": list(selectors_inbox.label_list()),
            "colors": Label.Color.choices,
            "form": form,
        }
    )
    return render(request, "settings_pages/replies.html", context, status=status)


def _reply(reply_id: int) -> Any:
    try:
        return selectors_inbox.canned_reply_get(reply_id=reply_id)
    except ObjectDoesNotExist as exc:
        raise Http404 from exc


@require_POST
@member_required(Capability.REPLY)
def reply_update(request: HttpRequest, reply_id: int) -> HttpResponse:
    reply = _reply(reply_id)
    try:
        teamwork.canned_reply_update(
            reply=reply,
            shortcut=request.POST.get("shortcut", ""),
            body=request.POST.get("body", ""),
            actor=request.user,  # type: ignore[arg-type]
        )
    except teamwork.TeamworkError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Saved reply /{reply.shortcut} updated.")
    return redirect("settings_pages:replies")


@require_POST
@member_required(Capability.REPLY)
def reply_delete(request: HttpRequest, reply_id: int) -> HttpResponse:
    reply = _reply(reply_id)
    teamwork.canned_reply_delete(reply=reply, actor=request.user)  # type: ignore[arg-type]
    messages.success(request, f"Saved reply /{reply.shortcut} deleted.")
    return redirect("settings_pages:replies")


@require_POST
@member_required(Capability.REPLY)
def label_create(request: HttpRequest) -> HttpResponse:
    try:
        label = teamwork.label_create(
            tenant_id=_membership(request).tenant_id,
            name=request.POST.get("name", ""),
            color=request.POST.get("color", ""),
            actor=request.user,  # type: ignore[arg-type]
        )
    except teamwork.TeamworkError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Label “{label.name}” added.")
    return redirect("settings_pages:replies")


@require_POST
@member_required(Capability.REPLY)
def label_delete(request: HttpRequest, label_id: int) -> HttpResponse:
    try:
        label = selectors_inbox.label_get(label_id=label_id)
    except ObjectDoesNotExist as exc:
        raise Http404 from exc
    teamwork.label_delete(label=label, actor=request.user)  # type: ignore[arg-type]
    messages.success(request, f"Label “{label.name}” deleted.")
    return redirect("settings_pages:replies")


def _messaging_settings_model() -> Any:
    from messaging import models

    return getattr(models, "MessagingSettings", None)


@require_http_methods(["GET", "POST"])
@member_required()
def messaging(request: HttpRequest) -> HttpResponse:
    context = _base(request, "messaging")
    model = _messaging_settings_model()
    accounts = list(accounts_selectors.instagram_account_list(membership=_membership(request)))
    context["available"] = model is not None
    if model is None:
        return render(request, "settings_pages/messaging.html", context)
    from messaging.services import outbound

    if request.method == "POST":
        _require(request, Capability.MANAGE_SETTINGS)
        account = None
        account_id = request.POST.get("account", "")
        if account_id:
            account = next((a for a in accounts if str(a.pk) == account_id), None)
            if account is None:
                raise Http404
        text = " ".join(request.POST.get("disclosure_text", "").split())[:300]
        mode = request.POST.get("disclosure_mode", "")
        human = request.POST.get("human_agent_enabled", "")
        values: dict[str, Any] = {"disclosure_text": text}
        if mode in ("always", "never", ""):
            values["disclosure_mode"] = mode
        if account is None:
            values["human_agent_enabled"] = human == "on"
        outbound.messaging_settings_update(
            tenant_id=_membership(request).tenant_id, account=account, **values
        )
        messages.success(
            request, f"Messaging settings saved for {account or 'the whole workspace'}."
        )
        return redirect("settings_pages:messaging")
    rows = {row.account_id: row for row in model.objects.all()}
    context.update(
        {
            "workspace": rows.get(None),
            "account_rows": [(a, rows.get(a.pk)) for a in accounts],
        }
    )
    from messaging import policy

    context["default_disclosure"] = policy.DEFAULT_DISCLOSURE
    return render(request, "settings_pages/messaging.html", context)
