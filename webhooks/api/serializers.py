"""Shapes of the callback endpoints API. The signing key is shown on creation and rotation only."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from webhooks.models import CallbackDelivery, CallbackEndpoint, CallbackEventType
from webhooks.partner_events import envelope

EVENT_REF = {"$ref": "#/components/schemas/CallbackEvent"}


class CallbackEndpointOutputSerializer(serializers.ModelSerializer[CallbackEndpoint]):
    events = serializers.ListField(child=serializers.ChoiceField(choices=CallbackEventType.choices))
    key_rotated_at = serializers.DateTimeField(source="secret_rotated_at", allow_null=True)
    previous_key_expires_at = serializers.DateTimeField(
        source="previous_secret_expires_at",
        allow_null=True,
        help_text="Until then deliveries also carry a signature with the previous key.",
    )
    failing_since = serializers.DateTimeField(
        allow_null=True, help_text="Every delivery has failed since; a day of this turns it off."
    )

    class Meta:
        model = CallbackEndpoint
        fields: tuple[str, ...] = (
            "id",
            "url",
            "description",
            "events",
            "enabled",
            "disabled_reason",
            "failing_since",
            "key_rotated_at",
            "previous_key_expires_at",
            "created_at",
            "updated_at",
        )


class CallbackEndpointKeySerializer(CallbackEndpointOutputSerializer):
    signing_key = serializers.SerializerMethodField(
        help_text="The key that signs deliveries: shown in this answer only, never again."
    )

    class Meta(CallbackEndpointOutputSerializer.Meta):
        fields = (*CallbackEndpointOutputSerializer.Meta.fields, "signing_key")

    def get_signing_key(self, endpoint: CallbackEndpoint) -> str:
        return endpoint.secret


class CallbackEndpointCreateInputSerializer(serializers.Serializer):  # type: ignore[type-arg]
    url = serializers.URLField(max_length=2000)
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=CallbackEventType.choices),
        min_length=1,
        max_length=len(CallbackEventType.values),
    )
    description = serializers.CharField(
        max_length=200, required=False, allow_blank=True, default=""
    )
    enabled = serializers.BooleanField(required=False, default=True)


class CallbackEndpointUpdateInputSerializer(serializers.Serializer):  # type: ignore[type-arg]
    url = serializers.URLField(max_length=2000, required=False)
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=CallbackEventType.choices),
        min_length=1,
        max_length=len(CallbackEventType.values),
        required=False,
    )
    description = serializers.CharField(max_length=200, required=False, allow_blank=True)
    enabled = serializers.BooleanField(
        required=False, help_text="Turning an endpoint on again forgets its failures."
    )


class RotateKeyInputSerializer(serializers.Serializer):  # type: ignore[type-arg]
    overlap_hours = serializers.IntegerField(
        min_value=0,
        max_value=168,
        default=24,
        help_text="How long the current key keeps signing too (a second `v1`).",
    )


class DeliveryFilterInputSerializer(serializers.Serializer):  # type: ignore[type-arg]
    status = serializers.ChoiceField(choices=CallbackDelivery.Status.choices, required=False)


class CallbackDeliveryOutputSerializer(serializers.ModelSerializer[CallbackDelivery]):
    endpoint = serializers.IntegerField(source="endpoint_id", read_only=True)
    event = serializers.SerializerMethodField()
    redelivery_of = serializers.IntegerField(
        source="redelivery_of_id", allow_null=True, read_only=True
    )
    next_attempt_at = serializers.SerializerMethodField()

    class Meta:
        model = CallbackDelivery
        fields = (
            "id",
            "endpoint",
            "event",
            "status",
            "attempts",
            "next_attempt_at",
            "last_attempt_at",
            "last_status_code",
            "last_latency_ms",
            "last_error",
            "response_excerpt",
            "delivered_at",
            "redelivery_of",
            "created_at",
        )

    @extend_schema_field(EVENT_REF)
    def get_event(self, delivery: CallbackDelivery) -> dict[str, Any]:
        return envelope(delivery.event)

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_next_attempt_at(self, delivery: CallbackDelivery) -> str | None:
        if delivery.status not in CallbackDelivery.OPEN:
            return None
        return serializers.DateTimeField().to_representation(delivery.next_attempt_at)
