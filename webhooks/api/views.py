"""Partner API: callback endpoints, their delivery log, key rotation and redelivery.

Scope ``webhooks:manage``. Rows come from ``webhooks.partner_endpoints`` inside the key's
tenant scope: another tenant's id is not found (404), the same as an id that never existed.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db.models import QuerySet
from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.base import TenantGenericViewSet
from accounts.models import ApiScope
from config.api import ApiError, CursorPagination
from webhooks import partner_endpoints
from webhooks.api.serializers import (
    CallbackDeliveryOutputSerializer,
    CallbackEndpointCreateInputSerializer,
    CallbackEndpointKeySerializer,
    CallbackEndpointOutputSerializer,
    CallbackEndpointUpdateInputSerializer,
    DeliveryFilterInputSerializer,
    RotateKeyInputSerializer,
)
from webhooks.models import CallbackDelivery, CallbackEndpoint

PAGE_PARAMETERS = [
    OpenApiParameter("cursor", OpenApiTypes.STR, description="The `next` or `previous` cursor."),
    OpenApiParameter("page_size", OpenApiTypes.INT, description="1 to 200, 50 by default."),
]


class DeliveryCursorPagination(CursorPagination):
    ordering = "-id"


def _refused(exc: partner_endpoints.CallbackError) -> ApiError:
    return ApiError(exc.code, exc.message, exc.status)


@extend_schema(tags=["webhook endpoints"])
class CallbackEndpointViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantGenericViewSet
):
    """URLs that receive the workspace's events, each with its own signing key."""

    required_scopes = [ApiScope.WEBHOOKS_MANAGE]
    serializer_class = CallbackEndpointOutputSerializer
    lookup_value_regex = r"[0-9]+"
    queryset = CallbackEndpoint.objects.none()

    def get_queryset(self) -> QuerySet[CallbackEndpoint]:
        return partner_endpoints.endpoint_list()

    def get_object(self) -> CallbackEndpoint:
        try:
            return partner_endpoints.endpoint_get(endpoint_id=int(self.kwargs["pk"]))
        except (CallbackEndpoint.DoesNotExist, ValueError) as exc:
            raise Http404 from exc

    @extend_schema(operation_id="webhook_endpoints_list", parameters=PAGE_PARAMETERS)
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(operation_id="webhook_endpoints_retrieve")
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(
        operation_id="webhook_endpoints_create",
        request=CallbackEndpointCreateInputSerializer,
        responses={201: CallbackEndpointKeySerializer},
    )
    def create(self, request: Request) -> Response:
        data = CallbackEndpointCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            endpoint = partner_endpoints.endpoint_create(
                tenant_id=self.tenant.pk, **data.validated_data
            )
        except partner_endpoints.CallbackError as exc:
            raise _refused(exc) from exc
        return Response(
            CallbackEndpointKeySerializer(endpoint).data, status=status.HTTP_201_CREATED
        )

    @extend_schema(
        operation_id="webhook_endpoints_update",
        request=CallbackEndpointUpdateInputSerializer,
        responses=CallbackEndpointOutputSerializer,
    )
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        endpoint = self.get_object()
        data = CallbackEndpointUpdateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            endpoint = partner_endpoints.endpoint_update(
                endpoint=endpoint, changes=dict(data.validated_data)
            )
        except partner_endpoints.CallbackError as exc:
            raise _refused(exc) from exc
        return Response(CallbackEndpointOutputSerializer(endpoint).data)

    @extend_schema(operation_id="webhook_endpoints_destroy", responses={204: None})
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        partner_endpoints.endpoint_delete(endpoint=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        operation_id="webhook_endpoints_rotate_key",
        request=RotateKeyInputSerializer,
        responses=CallbackEndpointKeySerializer,
        description=(
            "A new signing key, shown once. The current key keeps signing too (a second `v1` "
            "in `X-Relay-Signature`) for `overlap_hours`, so receivers can switch keys "
            "without refusing a delivery."
        ),
    )
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request: Request, pk: str) -> Response:
        endpoint = self.get_object()
        data = RotateKeyInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            endpoint = partner_endpoints.endpoint_rotate_key(
                endpoint=endpoint, overlap=timedelta(hours=data.validated_data["overlap_hours"])
            )
        except partner_endpoints.CallbackError as exc:
            raise _refused(exc) from exc
        return Response(CallbackEndpointKeySerializer(endpoint).data)

    @extend_schema(
        operation_id="webhook_endpoints_deliveries_list",
        parameters=[
            OpenApiParameter("status", OpenApiTypes.STR, enum=CallbackDelivery.Status.values),
            *PAGE_PARAMETERS,
        ],
        responses=CallbackDeliveryOutputSerializer(many=True),
        description="The endpoint's delivery log, newest first, with each event's body.",
    )
    @action(
        detail=True,
        methods=["get"],
        serializer_class=CallbackDeliveryOutputSerializer,
        pagination_class=DeliveryCursorPagination,
    )
    def deliveries(self, request: Request, pk: str) -> Response:
        endpoint = self.get_object()
        filters = DeliveryFilterInputSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        rows = partner_endpoints.delivery_list(
            endpoint=endpoint, status=filters.validated_data.get("status")
        )
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(CallbackDeliveryOutputSerializer(page, many=True).data)


@extend_schema(tags=["webhook endpoints"])
class CallbackDeliveryViewSet(mixins.RetrieveModelMixin, TenantGenericViewSet):
    """One delivery of an event to an endpoint, and sending it again by hand."""

    required_scopes = [ApiScope.WEBHOOKS_MANAGE]
    serializer_class = CallbackDeliveryOutputSerializer
    lookup_value_regex = r"[0-9]+"
    queryset = CallbackDelivery.objects.none()

    def get_object(self) -> CallbackDelivery:
        try:
            return partner_endpoints.delivery_get(delivery_id=int(self.kwargs["pk"]))
        except (CallbackDelivery.DoesNotExist, ValueError) as exc:
            raise Http404 from exc

    @extend_schema(operation_id="webhook_deliveries_retrieve")
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(
        operation_id="webhook_deliveries_redeliver",
        request=None,
        responses={202: CallbackDeliveryOutputSerializer},
        description=(
            "Send the event again. A delivered or dead delivery is copied into a new one (the "
            "answer), sent in its conversation's order; a waiting one is tried at once."
        ),
    )
    @action(detail=True, methods=["post"])
    def redeliver(self, request: Request, pk: str) -> Response:
        delivery = partner_endpoints.delivery_redeliver(delivery=self.get_object())
        return Response(
            CallbackDeliveryOutputSerializer(delivery).data, status=status.HTTP_202_ACCEPTED
        )
