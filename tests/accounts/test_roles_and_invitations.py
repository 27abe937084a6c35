"""Roles and invitations at the service level: who may grant what, and how a link is used once."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from unittest import mock

import pytest
import time_machine
from django.utils import timezone
from django_scopes import scope

from accounts import services, tenancy
from accounts.exceptions import AccountsError, InvitationInvalid, LastOwner, PermissionDenied
from accounts.models import Invitation, Membership, Role, Tenant, User
from accounts.roles import Capability, membership_can, role_can, roles_assignable_by
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

MakeMember = Callable[..., Membership]


# -- capabilities ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "capabilities"),
    [
        (Role.VIEWER, {Capability.READ}),
        (Role.AGENT, {Capability.READ, Capability.REPLY}),
        (Role.ADMIN, set(Capability) - {Capability.DELETE_TENANT}),
        (Role.OWNER, set(Capability)),
        ("intruder", set()),
    ],
)
def test_each_role_has_exactly_its_capabilities(role: str, capabilities: set[Capability]) -> None:
    assert {c for c in Capability if role_can(role, c)} == capabilities


def test_no_membership_can_do_nothing() -> None:
    assert not any(membership_can(None, c) for c in Capability)


@pytest.mark.parametrize(
    ("acting", "assignable"),
    [
        (Role.OWNER, {Role.OWNER, Role.ADMIN, Role.AGENT, Role.VIEWER}),
        (Role.ADMIN, {Role.ADMIN, Role.AGENT, Role.VIEWER}),
        (Role.AGENT, set()),
        (Role.VIEWER, set()),
    ],
)
def test_roles_a_role_may_grant(acting: str, assignable: set[str]) -> None:
    assert set(roles_assignable_by(acting)) == assignable


# -- role changes and removal ------------------------------------------------------------------


def test_admin_cannot_make_an_owner(tenant: Tenant, make_member: MakeMember) -> None:
    agent = make_member(tenant, Role.AGENT)
    with scope(tenant=tenant), pytest.raises(PermissionDenied):
        services.membership_change_role(membership=agent, role=Role.OWNER, acting_role=Role.ADMIN)


def test_admin_cannot_demote_or_remove_an_owner(tenant: Tenant, make_member: MakeMember) -> None:
    make_member(tenant, Role.OWNER)
    owner = make_member(tenant, Role.OWNER)
    with scope(tenant=tenant):
        with pytest.raises(PermissionDenied):
            services.membership_change_role(
                membership=owner, role=Role.AGENT, acting_role=Role.ADMIN
            )
        with pytest.raises(PermissionDenied):
            services.membership_remove(membership=owner, acting_role=Role.ADMIN)
        owner.refresh_from_db()
    assert owner.role == Role.OWNER


@pytest.mark.parametrize("acting", [Role.AGENT, Role.VIEWER])
def test_agents_and_viewers_cannot_change_roles(
    tenant: Tenant, make_member: MakeMember, acting: str
) -> None:
    viewer = make_member(tenant, Role.VIEWER)
    with scope(tenant=tenant), pytest.raises(PermissionDenied):
        services.membership_change_role(membership=viewer, role=Role.AGENT, acting_role=acting)


def test_owner_can_promote_and_admin_can_demote_an_admin(
    tenant: Tenant, make_member: MakeMember
) -> None:
    member = make_member(tenant, Role.AGENT)
    with scope(tenant=tenant):
        services.membership_change_role(membership=member, role=Role.OWNER, acting_role=Role.OWNER)
        assert Membership.objects.get(pk=member.pk).role == Role.OWNER
        admin = make_member(tenant, Role.ADMIN)
        services.membership_change_role(membership=admin, role=Role.VIEWER, acting_role=Role.ADMIN)
        assert Membership.objects.get(pk=admin.pk).role == Role.VIEWER


def test_unknown_role_is_refused(tenant: Tenant, make_member: MakeMember) -> None:
    member = make_member(tenant, Role.AGENT)
    with scope(tenant=tenant), pytest.raises(AccountsError):
        services.membership_change_role(membership=member, role="root", acting_role=Role.OWNER)


def test_last_owner_cannot_be_demoted_or_removed(tenant: Tenant, make_member: MakeMember) -> None:
    owner = make_member(tenant, Role.OWNER)
    make_member(tenant, Role.ADMIN)
    with scope(tenant=tenant):
        with pytest.raises(LastOwner):
            services.membership_change_role(
                membership=owner, role=Role.ADMIN, acting_role=Role.OWNER
            )
        with pytest.raises(LastOwner):
            services.membership_remove(membership=owner, acting_role=Role.OWNER)
        assert Membership.objects.filter(role=Role.OWNER).count() == 1


def test_an_owner_can_step_down_when_another_owner_remains(
    tenant: Tenant, make_member: MakeMember
) -> None:
    first = make_member(tenant, Role.OWNER)
    second = make_member(tenant, Role.OWNER)
    with scope(tenant=tenant):
        services.membership_change_role(membership=first, role=Role.ADMIN, acting_role=Role.OWNER)
        with pytest.raises(LastOwner):
            services.membership_remove(membership=second, acting_role=Role.OWNER)


def test_owners_of_another_tenant_do_not_count(
    tenant: Tenant, other_tenant: Tenant, make_member: MakeMember
) -> None:
    owner = make_member(tenant, Role.OWNER)
    make_member(other_tenant, Role.OWNER, user=owner.user)
    with scope(tenant=tenant), pytest.raises(LastOwner):
        services.membership_remove(membership=owner, acting_role=Role.OWNER)


# -- invitations -------------------------------------------------------------------------------


def _invite(tenant: Tenant, role: str = Role.AGENT, acting_role: str = Role.OWNER) -> str:
    with scope(tenant=tenant):
        _, token = services.invitation_create(
            tenant=tenant,
            email="Invitee@Example.com ",
            role=role,
            invited_by=UserFactory(),
            acting_role=acting_role,
        )
    return token


def _invitation(token: str) -> Invitation:
    found = tenancy.invitation_by_token(token)
    assert found is not None
    return found


def test_only_roles_the_inviter_may_grant_can_be_invited(tenant: Tenant) -> None:
    with pytest.raises(PermissionDenied):
        _invite(tenant, Role.OWNER, acting_role=Role.ADMIN)
    with pytest.raises(PermissionDenied):
        _invite(tenant, Role.VIEWER, acting_role=Role.AGENT)


def test_invitation_stores_only_the_token_hash(tenant: Tenant) -> None:
    token = _invite(tenant)
    invitation = _invitation(token)
    assert invitation.token_hash == tenancy.secret_hash(token)
    assert token not in invitation.token_hash
    assert invitation.email == "invitee@example.com"


def test_valid_invitation_makes_a_member_with_its_role(tenant: Tenant) -> None:
    token = _invite(tenant, Role.VIEWER)
    person = UserFactory()

    membership = services.invitation_accept(token=token, user=person)

    assert (membership.tenant_id, membership.user_id, membership.role) == (
        tenant.pk,
        person.pk,
        Role.VIEWER,
    )
    invitation = _invitation(token)
    assert invitation.accepted_by_id == person.pk
    assert invitation.accepted_at is not None


def test_invitation_cannot_be_used_twice(tenant: Tenant) -> None:
    token = _invite(tenant)
    services.invitation_accept(token=token, user=UserFactory())
    second = UserFactory()
    with pytest.raises(InvitationInvalid, match="already used"):
        services.invitation_accept(token=token, user=second)
    assert tenancy.memberships_of_user(second) == []


def test_expired_invitation_is_refused(tenant: Tenant) -> None:
    token = _invite(tenant)
    person = UserFactory()
    with (
        time_machine.travel(timezone.now() + services.INVITATION_TTL + timedelta(seconds=1)),
        pytest.raises(InvitationInvalid, match="expired"),
    ):
        services.invitation_accept(token=token, user=person)
    assert tenancy.memberships_of_user(person) == []


def test_revoked_invitation_is_refused(tenant: Tenant) -> None:
    token = _invite(tenant)
    with scope(tenant=tenant):
        services.invitation_revoke(invitation=_invitation(token))
    with pytest.raises(InvitationInvalid, match="withdrawn"):
        services.invitation_accept(token=token, user=UserFactory())


def test_unknown_token_is_refused(tenant: Tenant) -> None:
    _invite(tenant)
    with pytest.raises(InvitationInvalid):
        services.invitation_accept(token="not-a-real-token", user=UserFactory())


def test_accepting_inside_another_tenants_scope_joins_only_the_invitations_tenant(
    tenant: Tenant, other_tenant: Tenant, make_member: MakeMember
) -> None:
    # A member of A, browsing inside A's scope, follows an invitation link to B.
    person: User = make_member(tenant, Role.AGENT).user
    token = _invite(other_tenant, Role.VIEWER)

    with scope(tenant=tenant):
        membership = services.invitation_accept(token=token, user=person)
        # The scope of A is intact afterwards and still sees only A.
        assert list(Membership.objects.values_list("tenant_id", flat=True)) == [tenant.pk]

    assert membership.tenant_id == other_tenant.pk
    roles = {m.tenant_id: m.role for m in tenancy.memberships_of_user(person)}
    assert roles == {tenant.pk: Role.AGENT, other_tenant.pk: Role.VIEWER}


def test_invitation_of_another_tenant_is_invisible_in_a_scope(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    token = _invite(other_tenant)
    with scope(tenant=tenant):
        assert not Invitation.objects.filter(token_hash=tenancy.secret_hash(token)).exists()


def test_welcome_task_is_queued_after_commit_with_ids_only(
    tenant: Tenant, django_capture_on_commit_callbacks: Callable[..., object]
) -> None:
    token = _invite(tenant)
    person = UserFactory()
    with (
        mock.patch("accounts.tasks.membership_welcome_email.delay") as delay,
        django_capture_on_commit_callbacks(execute=True),  # type: ignore[attr-defined]
    ):
        membership = services.invitation_accept(token=token, user=person)
    delay.assert_called_once_with(tenant.pk, membership.pk)
