"""Factories. A child's tenant always comes from its parent, so fixtures never mix tenants."""

from __future__ import annotations

from typing import TypeVar

import factory
from django.db import models
from django_scopes import scopes_disabled

from accounts.models import InstagramAccount, Invitation, Membership, Role, Tenant, User

T = TypeVar("T", bound=models.Model)


class UserFactory(factory.django.DjangoModelFactory[User]):
    class Meta:
        model = User

    email = factory.Sequence(lambda n: f"person{n}@example.com")
    password = factory.django.Password("correct horse battery staple")


class TenantFactory(factory.django.DjangoModelFactory[Tenant]):
    class Meta:
        model = Tenant

    name = factory.Sequence(lambda n: f"Agency {n}")


class ScopedFactory(factory.django.DjangoModelFactory[T]):
    """Creates tenant-owned rows; the scope guard stays on for everything else."""

    class Meta:
        abstract = True

    @classmethod
    def _create(cls, model_class, *args, **kwargs):  # type: ignore[no-untyped-def]
        with scopes_disabled():
            return super()._create(model_class, *args, **kwargs)


class MembershipFactory(ScopedFactory[Membership]):
    class Meta:
        model = Membership

    tenant = factory.SubFactory(TenantFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.AGENT


class InvitationFactory(ScopedFactory[Invitation]):
    class Meta:
        model = Invitation

    tenant = factory.SubFactory(TenantFactory)
    email = factory.Sequence(lambda n: f"invitee{n}@example.com")
    role = Role.AGENT
    token_hash = factory.Sequence(lambda n: f"{n:064d}")
    expires_at = factory.Faker("future_datetime", tzinfo=__import__("datetime").UTC)


class InstagramAccountFactory(ScopedFactory[InstagramAccount]):
    class Meta:
        model = InstagramAccount

    tenant = factory.SubFactory(TenantFactory)
    ig_user_id = factory.Sequence(lambda n: f"178414{n:011d}")
    username = factory.Sequence(lambda n: f"client_brand_{n}")
    login_kind = InstagramAccount.LoginKind.FACEBOOK
    access_token = factory.Sequence(lambda n: f"EAAG-sample-page-token-{n}")
