from __future__ import annotations

from rest_framework import serializers

from accounts.models import ApiKey, Membership, Tenant


class TenantOutputSerializer(serializers.ModelSerializer[Tenant]):
    class Meta:
        model = Tenant
        fields = ("id", "name", "created_at")


class MemberUserSerializer(serializers.Serializer):  # type: ignore[type-arg]
    email = serializers.EmailField()
    name = serializers.CharField(source="display_name")


class MemberOutputSerializer(serializers.ModelSerializer[Membership]):
    user = MemberUserSerializer()

    class Meta:
        model = Membership
        fields = ("id", "role", "user", "created_at")


class ApiKeyOutputSerializer(serializers.ModelSerializer[ApiKey]):
    tenant = TenantOutputSerializer()

    class Meta:
        model = ApiKey
        fields = ("prefix", "name", "scopes", "tenant", "created_at", "last_used_at")
