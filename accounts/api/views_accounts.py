"""Partner API: connected Instagram accounts with their health, and client onboarding links."""

from __future__ import annotations

from datetime import timedelta

from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, mixins, status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts import onboarding, selectors
from accounts.api.base import TenantGenericViewSet
from accounts.api.serializers_accounts import (
    InstagramAccountDetailSerializer,
    InstagramAccountOutputSerializer,
    OnboardingLinkCreatedSerializer,
    OnboardingLinkCreateInputSerializer,
    OnboardingLinkOutputSerializer,
)
from accounts.models import ApiScope, InstagramAccount, OnboardingLink


class InstagramAccountViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantGenericViewSet
):
    """The workspace's Instagram accounts; one account includes its health."""

    required_scopes = [ApiScope.ACCOUNTS_READ]
    # Names the model for the schema (built outside any tenant scope); rows come from the selector.
    queryset = InstagramAccount.objects.none()

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return selectors.instagram_account_list()

    def get_serializer_class(self):  # type: ignore[no-untyped-def]
        if self.action == "retrieve":
            return InstagramAccountDetailSerializer
        return InstagramAccountOutputSerializer


class OnboardingLinkViewSet(mixins.ListModelMixin, TenantGenericViewSet):
    """Links a client opens to connect their accounts to this workspace themselves."""

    required_scopes = {"GET": [ApiScope.ACCOUNTS_READ], "POST": [ApiScope.ACCOUNTS_WRITE]}
    serializer_class = OnboardingLinkOutputSerializer
    queryset = OnboardingLink.objects.none()

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return selectors.onboarding_link_list()

    @extend_schema(
        request=OnboardingLinkCreateInputSerializer,
        responses={201: OnboardingLinkCreatedSerializer},
    )
    def create(self, request: Request) -> Response:
        data = OnboardingLinkCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        account = None
        if data.validated_data["account_id"] is not None:
            try:
                account = selectors.instagram_account_get(
                    account_id=data.validated_data["account_id"]
                )
            except InstagramAccount.DoesNotExist:
                raise exceptions.ValidationError({"account_id": ["No such account."]}) from None
        link, token = onboarding.onboarding_link_create(
            tenant=self.tenant,
            created_by=None,
            note=data.validated_data["note"],
            expires_in=timedelta(days=data.validated_data["expires_in_days"]),
            account=account,
            send_to=data.validated_data.get("email", ""),
        )
        url = request.build_absolute_uri(reverse("frontend:onboarding_client", args=[token]))
        body = OnboardingLinkCreatedSerializer(link, context={"url": url}).data
        return Response(body, status=status.HTTP_201_CREATED)
