from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django_scopes import scope

from accounts.models import AccountAccess, InstagramAccount, Membership, Role, Tenant
from tests.inbox.seed import World, seed_world


@pytest.fixture
def world(db: Any) -> World:
    return seed_world()


@pytest.fixture
def as_member(login: Callable[..., Client]) -> Callable[[Membership], Client]:
    def make(membership: Membership) -> Client:
        return login(membership.user)

    return make


@pytest.fixture
def limited_agent(
    world: World, make_member: Callable[..., Membership]
) -> Callable[[list[InstagramAccount]], Membership]:
    """An agent who sees only the given accounts."""

    def make(accounts: list[InstagramAccount], tenant: Tenant | None = None) -> Membership:
        tenant = tenant or world.tenant
        membership = make_member(tenant, Role.AGENT)
        membership.accounts_limited = True
        with scope(tenant=tenant):
            membership.save(update_fields=["accounts_limited"])
            for account in accounts:
                AccountAccess.objects.create(tenant=tenant, membership=membership, account=account)
        return membership

    return make
