from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django_scopes import scope
from rest_framework.test import APIClient

from accounts import services
from accounts.models import ApiKey, ApiScope, Membership, Role, Tenant, User
from tests.factories import MembershipFactory, TenantFactory, UserFactory


@pytest.fixture(autouse=True)
def _clear_cache() -> None:
    """Forget this run's cached values (rate limits, heartbeats) before each test.

    Only this run's keys go: the Redis database is shared with the broker and with other
    test runs on the machine, which a FLUSHDB would break.
    """
    import redis
    from django.conf import settings

    prefix = settings.CACHES["default"].get("KEY_PREFIX", "")
    client = redis.Redis.from_url(settings.REDIS_URL)
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)


@pytest.fixture
def tenant(db: Any) -> Tenant:
    return TenantFactory(name="Agency A")


@pytest.fixture
def other_tenant(db: Any) -> Tenant:
    return TenantFactory(name="Agency B")


@pytest.fixture
def make_member(db: Any) -> Callable[..., Membership]:
    def make(tenant: Tenant, role: str = Role.AGENT, user: User | None = None) -> Membership:
        return MembershipFactory(tenant=tenant, role=role, user=user or UserFactory())

    return make


@pytest.fixture
def owner(tenant: Tenant, make_member: Callable[..., Membership]) -> Membership:
    return make_member(tenant, Role.OWNER)


def _logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def login() -> Callable[[User], Client]:
    return _logged_in


@pytest.fixture
def owner_client(owner: Membership) -> Client:
    return _logged_in(owner.user)


@pytest.fixture
def agent_client(tenant: Tenant, make_member: Callable[..., Membership]) -> Client:
    return _logged_in(make_member(tenant, Role.AGENT).user)


@pytest.fixture
def make_api_key(db: Any) -> Callable[..., tuple[ApiKey, str]]:
    def make(tenant: Tenant, scopes: list[str] | None = None) -> tuple[ApiKey, str]:
        with scope(tenant=tenant):
            return services.api_key_create(
                tenant=tenant,
                name="partner",
                scopes=scopes if scopes is not None else list(ApiScope.values),
                created_by=None,
            )

    return make


@pytest.fixture
def api_client(tenant: Tenant, make_api_key: Callable[..., tuple[ApiKey, str]]) -> APIClient:
    _, secret = make_api_key(tenant)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client
