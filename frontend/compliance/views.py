"""Compliance pages. Each checks who is asking, then calls selectors and services.

Contacts are looked up inside the active workspace's scope, so another workspace's contact is
simply not found (404). The data deletion status page is public: its unguessable code is the
key, and it shows that request's progress and nothing else.
"""

from __future__ import annotations

import json
from datetime import date

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from accounts import audit, compliance, selectors
from accounts.models import DataDeletionRequest
from accounts.roles import Capability, membership_can
from config.input_guard import parse_digits
from frontend.views import _acting, _require, member_required
from messaging import selectors as messaging_selectors
from messaging.models import Contact

AUDIT_PAGE_SIZE = 50


def _contact(contact_id: int) -> Contact:
    """The workspace's contact, or 404 (another workspace's contact is not found either)."""
    try:
        return messaging_selectors.contact_get(contact_id=contact_id)
    except Contact.DoesNotExist:
        raise Http404 from None


@never_cache
@require_GET
@member_required(Capability.MANAGE_COMPLIANCE)
def contact_export(request: HttpRequest, contact_id: int) -> HttpResponse:
    contact = _contact(contact_id)
    data = compliance.contact_export(contact=contact, actor_user=request.user)  # type: ignore[arg-type]
    response = HttpResponse(
        json.dumps(data, indent=2, ensure_ascii=False), content_type="application/json"
    )
    response["Content-Disposition"] = f'attachment; filename="contact-{contact.pk}.json"'
    return response


@require_http_methods(["GET", "POST"])
@member_required(Capability.MANAGE_COMPLIANCE)
def contact_erase(request: HttpRequest, contact_id: int) -> HttpResponse:
    contact = _contact(contact_id)
    if request.method == "POST":
        compliance.contact_erasure_request(contact=contact, actor_user=request.user)  # type: ignore[arg-type]
        messages.success(
            request,
            "Everything held about this contact is being erased. It takes a few seconds.",
        )
        return redirect("inbox:conversation_list")
    context = {"section": "settings", "contact": contact}
    return render(request, "compliance/contact_erase.html", context)


def _parse_days(value: str) -> int | None:
    value = (value or "").strip()
    if not value:
        return None
    days = parse_digits(value)
    if days is None:
        raise compliance.ComplianceError("Enter a number of days.", code="not_a_number")
    return days


@require_http_methods(["GET", "POST"])
@member_required(Capability.READ)
def compliance_settings(request: HttpRequest) -> HttpResponse:
    acting = _acting(request)
    can_edit = membership_can(acting, Capability.MANAGE_COMPLIANCE)
    accounts = list(selectors.instagram_account_list())
    error = ""
    status = 200
    if request.method == "POST":
        _require(request, Capability.MANAGE_COMPLIANCE)
        try:
            days = _parse_days(request.POST.get("days", ""))
            account_days = {
                account.pk: _parse_days(request.POST.get(f"account_{account.pk}", ""))
                for account in accounts
            }
            compliance.retention_policy_set(
                tenant=acting.tenant,
                days=days,
                account_days=account_days,
                actor_user=request.user,  # type: ignore[arg-type]
            )
        except compliance.ComplianceError as exc:
            error = exc.message
            status = 400
        else:
            messages.success(request, "Retention policy saved.")
            return redirect("frontend:compliance_settings")
    policy = compliance.tenant_compliance_get(tenant=acting.tenant)
    overrides = policy.account_retention_days or {}
    context = {
        "section": "settings",
        "policy": policy,
        "can_edit": can_edit,
        "can_delete": membership_can(acting, Capability.DELETE_TENANT),
        "can_read_audit": membership_can(acting, Capability.READ_AUDIT),
        "accounts": [(a, overrides.get(str(a.pk))) for a in accounts],
        "error": error,
        "min_days": compliance.MIN_RETENTION_DAYS,
        "max_days": compliance.MAX_RETENTION_DAYS,
    }
    return render(request, "compliance/settings.html", context, status=status)


def _date(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


@require_GET
@member_required(Capability.READ_AUDIT)
def audit_log(request: HttpRequest) -> HttpResponse:
    filters = audit.AuditFilters(
        action=request.GET.get("action", "")[:64],
        actor=request.GET.get("actor", "")[:32],
        since=_date(request.GET.get("since")),
        until=_date(request.GET.get("until")),
    )
    page = Paginator(audit.audit_entry_list(filters), AUDIT_PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "section": "settings",
        "page": page,
        "filters": filters,
        "actions": sorted(audit.Action.LABELS.items(), key=lambda item: item[1]),
        "labels": audit.Action.LABELS,
        "actors": audit.audit_actor_choices(),
        "query": query.urlencode(),
    }
    return render(request, "compliance/audit_log.html", context)


@require_http_methods(["GET", "POST"])
@member_required(Capability.DELETE_TENANT)
def tenant_delete(request: HttpRequest) -> HttpResponse:
    acting = _acting(request)
    error = ""
    if request.method == "POST":
        try:
            job = compliance.tenant_deletion_request(
                tenant=acting.tenant,
                requested_by=request.user,  # type: ignore[arg-type]
                confirm_name=request.POST.get("confirm", ""),
            )
        except compliance.ComplianceError as exc:
            error = exc.message
        else:
            return redirect("frontend:compliance_tenant_deletion", job_id=job.pk)
    context = {"section": "settings", "error": error}
    return render(request, "compliance/tenant_delete.html", context, status=400 if error else 200)


@never_cache
@require_GET
def tenant_deletion_progress(request: HttpRequest, job_id: int) -> HttpResponse:
    """The person who asked follows the deletion here, even once the workspace is gone."""
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    job = compliance.tenant_deletion_job_for_user(job_id=job_id, user=request.user)  # type: ignore[arg-type]
    if job is None:
        raise Http404
    done = set((job.progress or {}).get("done") or [])
    steps = [(label, name in done) for name, label in compliance.TENANT_DELETION_STEPS]
    context = {"section": "settings", "job": job, "steps": steps}
    template = "compliance/tenant_deletion.html"
    if request.headers.get("HX-Request"):
        template = "compliance/_tenant_deletion_steps.html"
    return render(request, template, context)


@never_cache
@require_GET
def data_deletion_status(request: HttpRequest, code: str) -> HttpResponse:
    deletion = compliance.data_deletion_request_by_code(code)
    if deletion is None:
        raise Http404
    context = {
        "deletion": deletion,
        "done": deletion.status == DataDeletionRequest.Status.DONE,
    }
    response = render(request, "compliance/data_deletion_status.html", context)
    response["Referrer-Policy"] = "no-referrer"
    response["X-Robots-Tag"] = "noindex"
    return response
