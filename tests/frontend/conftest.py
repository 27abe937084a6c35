"""Fixtures for the web UI's tests: people with each role, and another workspace's objects."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from allauth.account.models import EmailAddress
from django.test import Client
from django_scopes import scope

from accounts import services
from accounts.models import ApiKey, Invitation, Membership, Role, Tenant, User
from tests.factories import UserFactory

PASSWORD = "correct horse battery staple"  # the factories' password


@pytest.fixture
def client_as(
    tenant: Tenant,
    make_member: Callable[..., Membership],
    login: Callable[[User], Client],
) -> Callable[[str], Client]:
    """A logged-in client for a new member of ``tenant`` with the given role."""

    def make(role: str) -> Client:
        return login(make_member(tenant, role).user)

    return make


@pytest.fixture
def viewer_client(client_as: Callable[[str], Client]) -> Client:
    return client_as(Role.VIEWER)


@pytest.fixture
def admin_client(client_as: Callable[[str], Client]) -> Client:
    return client_as(Role.ADMIN)


@pytest.fixture
def verified_user(db: Any) -> User:
    user = UserFactory()
    EmailAddress.objects.create(user=user, email=user.email, primary=True, verified=True)
    return user


@dataclass
class Foreign:
    """Objects that belong to another workspace."""

    membership: Membership
    invitation: Invitation
    api_key: ApiKey


@pytest.fixture
def foreign(other_tenant: Tenant, make_member: Callable[..., Membership]) -> Foreign:
    owner = make_member(other_tenant, Role.OWNER)
    member = make_member(other_tenant, Role.AGENT)
    with scope(tenant=other_tenant):
        invitation, _ = services.invitation_create(
            tenant=other_tenant,
            email="someone@example.com",
            role=Role.AGENT,
            invited_by=owner.user,
            acting_role=Role.OWNER,
        )
        key, _ = services.api_key_create(
            tenant=other_tenant, name="theirs", scopes=["tenant:read"], created_by=owner.user
        )
    return Foreign(membership=member, invitation=invitation, api_key=key)


def in_scope(tenant: Tenant, func: Callable[[], Any]) -> Any:
    with scope(tenant=tenant):
        return func()
