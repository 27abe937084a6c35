from __future__ import annotations

from typing import Any, ClassVar, Self

from django.contrib.auth.models import AbstractUser, BaseUserManager
from django.db import models
from django_scopes import ScopedManager

from accounts.crypto import EncryptedTextField


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def _create(self, email: str, password: str | None, **extra: Any) -> User:
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra: Any) -> User:
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create(email, password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra: Any) -> User:
        extra.update(is_staff=True, is_superuser=True)
        return self._create(email, password, **extra)


class User(AbstractUser):
    """A person who logs in. People are global; what they may see comes from memberships."""

    username = None  # type: ignore[assignment]
    email = models.EmailField("email address", unique=True)

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    objects: ClassVar[UserManager] = UserManager()  # type: ignore[assignment]

    def __str__(self) -> str:
        return self.email

    @property
    def display_name(self) -> str:
        return self.get_full_name() or self.email


class Tenant(models.Model):
    """An agency's workspace: the unit of isolation for every other row."""

    name = models.CharField(max_length=120)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    AGENT = "agent", "Agent"
    VIEWER = "viewer", "Viewer"


class Membership(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.AGENT)
    created_at = models.DateTimeField(auto_now_add=True)

    objects: ClassVar[models.Manager[Self]] = ScopedManager(tenant="tenant")

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["tenant", "user"], name="membership_unique_per_tenant")
        ]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.tenant_id} as {self.role}"


class Invitation(models.Model):
    """A link that lets one person join a tenant with a role. Only the token's hash is stored."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.AGENT)
    token_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects: ClassVar[models.Manager[Self]] = ScopedManager(tenant="tenant")

    def __str__(self) -> str:
        return f"invitation of {self.email} to {self.tenant_id}"


class ApiScope(models.TextChoices):
    ACCOUNTS_READ = "accounts:read", "Read connected accounts"
    ACCOUNTS_WRITE = "accounts:write", "Manage connected accounts"
    CONVERSATIONS_READ = "conversations:read", "Read conversations and messages"
    CONVERSATIONS_WRITE = "conversations:write", "Assign, label and resolve conversations"
    MESSAGES_SEND = "messages:send", "Send messages"
    MEMBERS_READ = "members:read", "Read members"
    WEBHOOKS_MANAGE = "webhooks:manage", "Manage event callbacks"
    TENANT_READ = "tenant:read", "Read the workspace"


class ApiKey(models.Model):
    """A partner's key: shown once, stored as a SHA-256 hash with a visible prefix."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=120)
    prefix = models.CharField(max_length=24, unique=True)
    key_hash = models.CharField(max_length=64)
    scopes = models.JSONField(default=list)
    created_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects: ClassVar[models.Manager[Self]] = ScopedManager(tenant="tenant")

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class InstagramAccount(models.Model):
    """A client's Instagram Professional account connected to one tenant."""

    class LoginKind(models.TextChoices):
        FACEBOOK = "facebook", "Facebook Login for Business"
        INSTAGRAM = "instagram", "Instagram Login"

    class Status(models.TextChoices):
        ACTIVE = "active", "Connected"
        NEEDS_REAUTH = "needs_reauth", "Needs reconnecting"
        DISCONNECTED = "disconnected", "Disconnected"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="instagram_accounts")
    # Meta's Instagram professional account id: unique across the platform.
    ig_user_id = models.CharField(max_length=64, unique=True)
    username = models.CharField(max_length=64, blank=True)
    name = models.CharField(max_length=120, blank=True)
    login_kind = models.CharField(max_length=16, choices=LoginKind.choices)
    page_id = models.CharField(max_length=64, blank=True)
    access_token = EncryptedTextField(blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    connected_at = models.DateTimeField(auto_now_add=True)

    objects: ClassVar[models.Manager[Self]] = ScopedManager(tenant="tenant")

    def __str__(self) -> str:
        return f"@{self.username or self.ig_user_id}"
