from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins
from rest_framework.request import Request
from rest_framework.response import Response

from accounts import selectors
from accounts.api.base import TenantAPIView, TenantGenericViewSet
from accounts.api.serializers import (
    ApiKeyOutputSerializer,
    MemberOutputSerializer,
    TenantOutputSerializer,
)
from accounts.models import ApiScope, Membership


class TenantView(TenantAPIView):
    """The workspace this key belongs to."""

    required_scopes = [ApiScope.TENANT_READ]

    @extend_schema(responses=TenantOutputSerializer, operation_id="tenant_retrieve")
    def get(self, request: Request) -> Response:
        return Response(TenantOutputSerializer(self.tenant).data)


class KeyView(TenantAPIView):
    """The key making the call: its workspace and scopes. Needs no scope."""

    required_scopes: list[str] = []

    @extend_schema(responses=ApiKeyOutputSerializer, operation_id="key_retrieve")
    def get(self, request: Request) -> Response:
        return Response(ApiKeyOutputSerializer(self.api_key).data)


class MemberViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantGenericViewSet):
    """The workspace's members and their roles."""

    required_scopes = [ApiScope.MEMBERS_READ]
    serializer_class = MemberOutputSerializer
    # Names the model for the schema (built outside any tenant scope); rows come from the selector.
    queryset = Membership.objects.none()

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return selectors.membership_list()
