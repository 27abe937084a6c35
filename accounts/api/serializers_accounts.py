"""Serializers of the partner API's Instagram accounts and client onboarding links."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.models import AccountHealth, InstagramAccount, MessagingStatus, OnboardingLink


class AccountHealthSerializer(serializers.Serializer):  # type: ignore[type-arg]
    status = serializers.ChoiceField(choices=AccountHealth.choices, source="health")
    status_label = serializers.CharField(source="health_label")
    messaging = serializers.ChoiceField(choices=MessagingStatus.choices, source="messaging_status")
    access_expires_at = serializers.DateTimeField(
        allow_null=True,
        source="token_expires_at",
        help_text="When Meta's access for this account ends; null when it does not expire.",
    )
    access_checked_at = serializers.DateTimeField(
        allow_null=True, source="token_checked_at", help_text="Last check with Meta."
    )
    granted_permissions = serializers.ListField(child=serializers.CharField())
    missing_permissions = serializers.ListField(child=serializers.CharField())
    webhook_subscribed = serializers.BooleanField()
    subscribed_fields = serializers.ListField(child=serializers.CharField())
    last_webhook_at = serializers.DateTimeField(allow_null=True)
    last_send_at = serializers.DateTimeField(allow_null=True)
    last_error = serializers.CharField(allow_blank=True)
    last_error_at = serializers.DateTimeField(allow_null=True)


class InstagramAccountOutputSerializer(serializers.ModelSerializer[InstagramAccount]):
    class Meta:
        model = InstagramAccount
        fields: tuple[str, ...] = (
            "id",
            "ig_user_id",
            "username",
            "name",
            "account_type",
            "login_kind",
            "page_id",
            "status",
            "connected_at",
        )


class InstagramAccountDetailSerializer(InstagramAccountOutputSerializer):
    health = serializers.SerializerMethodField()

    class Meta(InstagramAccountOutputSerializer.Meta):
        fields: tuple[str, ...] = (*InstagramAccountOutputSerializer.Meta.fields, "health")

    @extend_schema_field(AccountHealthSerializer)
    def get_health(self, account: InstagramAccount) -> dict[str, Any]:
        return dict(AccountHealthSerializer(account).data)


class OnboardingLinkOutputSerializer(serializers.ModelSerializer[OnboardingLink]):
    state = serializers.SerializerMethodField()
    account_id = serializers.IntegerField(allow_null=True, read_only=True)

    class Meta:
        model = OnboardingLink
        fields: tuple[str, ...] = (
            "id",
            "state",
            "note",
            "account_id",
            "sent_to",
            "created_at",
            "expires_at",
            "opened_at",
            "completed_at",
            "revoked_at",
            "connected_usernames",
        )

    @extend_schema_field(serializers.ChoiceField(choices=OnboardingLink.State.choices))
    def get_state(self, link: OnboardingLink) -> str:
        return link.state_at(timezone.now())


class OnboardingLinkCreatedSerializer(OnboardingLinkOutputSerializer):
    url = serializers.SerializerMethodField()

    class Meta(OnboardingLinkOutputSerializer.Meta):
        fields: tuple[str, ...] = (*OnboardingLinkOutputSerializer.Meta.fields, "url")

    def get_url(self, link: OnboardingLink) -> str:
        """The link to send the client: shown in this answer only, never again."""
        return str(self.context.get("url", ""))


class OnboardingLinkCreateInputSerializer(serializers.Serializer):  # type: ignore[type-arg]
    note = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    expires_in_days = serializers.IntegerField(min_value=1, max_value=30, default=7)
    account_id = serializers.IntegerField(
        required=False, allow_null=True, default=None, help_text="For a reconnect link."
    )
    email = serializers.EmailField(required=False, help_text="Send the link to this address.")
