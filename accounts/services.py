"""Every write in the accounts domain. One transaction each."""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone
from django_scopes import scope

from accounts import tenancy
from accounts.audit import Action, audit_record
from accounts.exceptions import AccountsError, InvitationInvalid, LastOwner, PermissionDenied
from accounts.models import ApiKey, ApiScope, Invitation, Membership, Role, Tenant, User
from accounts.roles import roles_assignable_by

INVITATION_TTL = timedelta(days=7)
API_KEY_TOUCH_INTERVAL = timedelta(minutes=1)


@transaction.atomic
def tenant_create_with_owner(*, name: str, owner: User) -> Tenant:
    tenant = Tenant.objects.create(name=name.strip() or "My workspace")
    with scope(tenant=tenant):
        Membership.objects.create(tenant=tenant, user=owner, role=Role.OWNER)
    return tenant


@transaction.atomic
def tenant_rename(*, tenant: Tenant, name: str, actor_user: User | None = None) -> Tenant:
    cleaned = " ".join(name.split())
    if not cleaned:
        raise AccountsError("Give the workspace a name.", code="no_name")
    max_length = Tenant._meta.get_field("name").max_length or 120
    if len(cleaned) > max_length:
        raise AccountsError(f"Keep the name under {max_length} characters.", code="name_too_long")
    if cleaned != tenant.name:
        audit_record(
            tenant=tenant,
            action=Action.SETTINGS_CHANGED,
            actor_user=actor_user,
            target_type="tenant",
            target_id=tenant.pk,
            detail={"setting": "workspace name"},
        )
    tenant.name = cleaned
    tenant.save(update_fields=["name"])
    return tenant


@transaction.atomic
def invitation_create(
    *, tenant: Tenant, email: str, role: str, invited_by: User, acting_role: str
) -> tuple[Invitation, str]:
    """A new invitation and its one-time token (only the hash is stored)."""
    if role not in roles_assignable_by(acting_role):
        raise PermissionDenied("Your role cannot invite people with that role.")
    token = secrets.token_urlsafe(32)
    invitation = Invitation.objects.create(
        tenant=tenant,
        email=email.strip().lower(),
        role=role,
        token_hash=tenancy.secret_hash(token),
        invited_by=invited_by,
        expires_at=timezone.now() + INVITATION_TTL,
    )
    audit_record(
        tenant=tenant,
        action=Action.MEMBER_INVITED,
        actor_user=invited_by,
        target_type="invitation",
        target_id=invitation.pk,
        detail={"role": role},
    )
    return invitation, token


def invitation_check(invitation: Invitation | None) -> Invitation:
    if invitation is None:
        raise InvitationInvalid("This invitation link is not valid.")
    if invitation.revoked_at is not None:
        raise InvitationInvalid("This invitation was withdrawn.")
    if invitation.accepted_at is not None:
        raise InvitationInvalid("This invitation was already used.")
    if invitation.expires_at <= timezone.now():
        raise InvitationInvalid("This invitation has expired. Ask for a new one.")
    return invitation


@transaction.atomic
def invitation_accept(*, token: str, user: User) -> Membership:
    """Join the invitation's tenant. Runs before any scope exists: the token is the key."""
    found = tenancy.invitation_by_token(token)
    invitation = invitation_check(found)
    with scope(tenant=invitation.tenant):
        invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
        invitation_check(invitation)
        membership, created = Membership.objects.get_or_create(
            tenant=invitation.tenant, user=user, defaults={"role": invitation.role}
        )
        invitation.accepted_at = timezone.now()
        invitation.accepted_by = user
        invitation.save(update_fields=["accepted_at", "accepted_by"])
        if created:
            audit_record(
                tenant=invitation.tenant,
                action=Action.MEMBER_JOINED,
                actor_user=user,
                target_type="membership",
                target_id=membership.pk,
                detail={"role": membership.role},
            )
    if created:
        tenant_id, membership_id = membership.tenant_id, membership.pk
        transaction.on_commit(lambda: _enqueue_welcome(tenant_id, membership_id))
    return membership


def _enqueue_welcome(tenant_id: int, membership_id: int) -> None:
    from accounts import tasks

    tasks.membership_welcome_email.delay(tenant_id, membership_id)


def membership_send_welcome(*, membership: Membership) -> None:
    """Tell a person who just joined which workspace and role they now have."""
    site = settings.SITE_URL.rstrip("/")
    send_mail(
        subject=f"You joined {membership.tenant.name}",
        message=(
            f"You are now a member of {membership.tenant.name} with the role "
            f"{membership.get_role_display()}.\n\nOpen the inbox: {site}/\n"
        ),
        from_email=None,
        recipient_list=[membership.user.email],
    )


@transaction.atomic
def invitation_revoke(*, invitation: Invitation) -> None:
    if invitation.accepted_at is None and invitation.revoked_at is None:
        invitation.revoked_at = timezone.now()
        invitation.save(update_fields=["revoked_at"])


def _owners_left_without(membership: Membership) -> int:
    return (
        Membership.objects.filter(tenant=membership.tenant, role=Role.OWNER)
        .exclude(pk=membership.pk)
        .count()
    )


@transaction.atomic
def membership_change_role(
    *, membership: Membership, role: str, acting_role: str, actor_user: User | None = None
) -> Membership:
    if role not in Role.values:
        raise AccountsError("Unknown role.")
    allowed = roles_assignable_by(acting_role)
    if role not in allowed or (membership.role == Role.OWNER and acting_role != Role.OWNER):
        raise PermissionDenied("Your role cannot make that change.")
    if (
        membership.role == Role.OWNER
        and role != Role.OWNER
        and not _owners_left_without(membership)
    ):
        raise LastOwner("A workspace needs at least one owner.")
    if role != membership.role:
        audit_record(
            tenant=membership.tenant_id,
            action=Action.MEMBER_ROLE_CHANGED,
            actor_user=actor_user,
            target_type="membership",
            target_id=membership.pk,
            detail={"from": membership.role, "to": role},
        )
    membership.role = role
    membership.save(update_fields=["role"])
    return membership


@transaction.atomic
def membership_remove(
    *, membership: Membership, acting_role: str, actor_user: User | None = None
) -> None:
    if membership.role == Role.OWNER and acting_role != Role.OWNER:
        raise PermissionDenied("Only an owner can remove an owner.")
    if membership.role == Role.OWNER and not _owners_left_without(membership):
        raise LastOwner("A workspace needs at least one owner.")
    audit_record(
        tenant=membership.tenant_id,
        action=Action.MEMBER_REMOVED,
        actor_user=actor_user,
        target_type="membership",
        target_id=membership.pk,
        detail={"role": membership.role, "user": membership.user_id},
    )
    membership.delete()


def _new_key_material() -> tuple[str, str]:
    prefix = "igk_" + secrets.token_hex(6)
    return prefix, f"{prefix}_{secrets.token_urlsafe(32)}"


@transaction.atomic
def api_key_create(
    *, tenant: Tenant, name: str, scopes: list[str], created_by: User | None
) -> tuple[ApiKey, str]:
    """A new key and its full secret, which is shown once and never stored."""
    unknown = sorted(set(scopes) - set(ApiScope.values))
    if unknown:
        raise AccountsError(f"Unknown scope: {', '.join(unknown)}.", code="unknown_scope")
    if not scopes:
        raise AccountsError("Choose at least one scope.", code="no_scope")
    if not name.strip():
        raise AccountsError("Give the key a name.", code="no_name")
    prefix, full = _new_key_material()
    key = ApiKey.objects.create(
        tenant=tenant,
        name=name.strip(),
        prefix=prefix,
        key_hash=tenancy.secret_hash(full),
        scopes=sorted(set(scopes)),
        created_by=created_by,
    )
    audit_record(
        tenant=tenant,
        action=Action.API_KEY_CREATED,
        actor_user=created_by,
        target_type="api_key",
        target_id=key.pk,
        detail={"prefix": prefix, "scopes": key.scopes},
    )
    return key, full


@transaction.atomic
def api_key_revoke(*, api_key: ApiKey, actor_user: User | None = None) -> ApiKey:
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
        audit_record(
            tenant=api_key.tenant_id,
            action=Action.API_KEY_REVOKED,
            actor_user=actor_user,
            target_type="api_key",
            target_id=api_key.pk,
            detail={"prefix": api_key.prefix},
        )
    return api_key


def api_key_touch(*, api_key: ApiKey) -> None:
    """Record use, at most once a minute per key, so busy keys do not write on every call."""
    now = timezone.now()
    if api_key.last_used_at and now - api_key.last_used_at < API_KEY_TOUCH_INTERVAL:
        return
    with scope(tenant=api_key.tenant_id):
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
    api_key.last_used_at = now
