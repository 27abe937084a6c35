"""Partner API: a contact's data export and erasure, and the workspace's audit log."""

from __future__ import annotations

from datetime import date
from typing import Any

from django.db.models import QuerySet
from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response

from accounts import audit, compliance
from accounts.api.base import TenantAPIView, TenantGenericAPIView
from accounts.models import ApiScope, AuditEntry
from messaging import selectors as messaging_selectors
from messaging.models import Contact


class AuditEntryOutputSerializer(serializers.ModelSerializer[AuditEntry]):
    actor = serializers.SerializerMethodField()

    class Meta:
        model = AuditEntry
        fields = ("id", "created_at", "action", "actor", "target_type", "target_id", "detail")

    def get_actor(self, entry: AuditEntry) -> dict[str, Any]:
        if entry.actor_user_id is not None:
            return {"type": "user", "id": entry.actor_user_id, "label": entry.actor_label}
        if entry.actor_api_key_id is not None:
            return {"type": "api_key", "id": entry.actor_api_key_id, "label": entry.actor_label}
        return {"type": "system", "id": None, "label": entry.actor_label}


class AuditCursorPagination(CursorPagination):
    ordering = ("-created_at", "-id")
    page_size = 50


def _contact(contact_id: int) -> Contact:
    try:
        return messaging_selectors.contact_get(contact_id=contact_id)
    except Contact.DoesNotExist as exc:
        raise Http404 from exc


class ContactExportView(TenantAPIView):
    """Everything held about a contact, as JSON (a data-subject access request)."""

    required_scopes = [ApiScope.COMPLIANCE_MANAGE]

    @extend_schema(
        operation_id="contacts_export",
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request: Request, contact_id: int) -> Response:
        data = compliance.contact_export(contact=_contact(contact_id), actor_api_key=self.api_key)
        return Response(data)


class ContactEraseView(TenantAPIView):
    """Erase a contact and everything held about them; the erasure runs in the background."""

    required_scopes = [ApiScope.COMPLIANCE_MANAGE]

    @extend_schema(
        operation_id="contacts_erase",
        request=None,
        responses={
            202: inline_serializer("ContactErasureAccepted", {"status": serializers.CharField()})
        },
    )
    def post(self, request: Request, contact_id: int) -> Response:
        compliance.contact_erasure_request(contact=_contact(contact_id), actor_api_key=self.api_key)
        return Response({"status": "erasing"}, status=status.HTTP_202_ACCEPTED)


def _date(value: str | None, name: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise serializers.ValidationError({name: ["Use YYYY-MM-DD."]}) from None


class AuditLogView(mixins.ListModelMixin, TenantGenericAPIView):
    """The workspace's audit log, newest first: who did what, never any content."""

    required_scopes = [ApiScope.AUDIT_READ]
    serializer_class = AuditEntryOutputSerializer
    pagination_class = AuditCursorPagination
    queryset = AuditEntry.objects.none()

    def get_queryset(self) -> QuerySet[AuditEntry]:
        params = self.request.query_params
        filters = audit.AuditFilters(
            action=params.get("action", "")[:64],
            actor=params.get("actor", "")[:32],
            since=_date(params.get("since"), "since"),
            until=_date(params.get("until"), "until"),
        )
        return audit.audit_entry_list(filters)

    @extend_schema(
        operation_id="audit_log_list",
        parameters=[
            OpenApiParameter("action", str, description="An action, or a prefix ending in '.'"),
            OpenApiParameter("actor", str, description="A person's id, key:<id>, or system"),
            OpenApiParameter("since", OpenApiTypes.DATE),
            OpenApiParameter("until", OpenApiTypes.DATE),
        ],
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.list(request, *args, **kwargs)
