from __future__ import annotations

from datetime import datetime
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
    # An agent or viewer limited to chosen Instagram accounts sees only those, everywhere.
    accounts_limited = models.BooleanField(default=False)
    allowed_accounts: models.ManyToManyField[InstagramAccount, AccountAccess] = (
        models.ManyToManyField(
            "InstagramAccount",
            through="AccountAccess",
            through_fields=("membership", "account"),
            related_name="+",
            blank=True,
        )
    )

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
    COMPLIANCE_MANAGE = "compliance:manage", "Export and erase contacts' data"
    AUDIT_READ = "audit:read", "Read the audit log"
    AUTOMATION_READ = "automation:read", "Read automation rules, their history and settings"
    AUTOMATION_MANAGE = "automation:manage", "Manage automation rules and settings"


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


class MessagingStatus(models.TextChoices):
    UNKNOWN = "unknown", "Not checked yet"
    AVAILABLE = "available", "Available"
    NOT_ELIGIBLE = "not_eligible", "Messaging not available for this account yet"
    MESSAGE_ACCESS_OFF = "message_access_off", "Message access turned off"
    MISSING_PERMISSION = "missing_permission", "Permission missing"


class AccountHealth(models.TextChoices):
    """An account's state as its health page shows it."""

    ACTIVE = "active", "Active"
    NEEDS_REAUTH = "needs_reauth", "Needs reconnect"
    NOT_ELIGIBLE = "not_eligible", "Not eligible"
    MESSAGE_ACCESS_OFF = "message_access_off", "Message access off"
    DISCONNECTED = "disconnected", "Disconnected"


HEALTH_LABELS = dict(AccountHealth.choices)


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
    # Meta's Instagram professional account id: connected to one tenant at a time (a
    # disconnected row keeps its history and no longer holds the id).
    ig_user_id = models.CharField(max_length=64, db_index=True)
    username = models.CharField(max_length=64, blank=True)
    name = models.CharField(max_length=120, blank=True)
    login_kind = models.CharField(max_length=16, choices=LoginKind.choices)
    page_id = models.CharField(max_length=64, blank=True)
    access_token = EncryptedTextField(blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    connected_at = models.DateTimeField(auto_now_add=True)

    # Who connected it, as Meta knows them: the Facebook user (Facebook Login) or the
    # app-scoped Instagram id (Instagram Login). The deauthorize callback names one of them.
    connected_by = models.ForeignKey(
        User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    meta_user_id = models.CharField(max_length=64, blank=True, db_index=True)
    account_type = models.CharField(max_length=32, blank=True)  # Business or Media_Creator
    page_name = models.CharField(max_length=200, blank=True)

    # The token: when it expires (None: it does not), when it was issued or last refreshed,
    # when its health was last checked.
    token_expires_at = models.DateTimeField(null=True, blank=True)
    token_issued_at = models.DateTimeField(null=True, blank=True)
    token_checked_at = models.DateTimeField(null=True, blank=True)
    granted_permissions = models.JSONField(default=list, blank=True)
    missing_permissions = models.JSONField(default=list, blank=True)

    # Webhooks: whether the account is subscribed to the app, as last checked with Meta.
    webhook_subscribed = models.BooleanField(default=False)
    subscribed_fields = models.JSONField(default=list, blank=True)
    subscription_checked_at = models.DateTimeField(null=True, blank=True)

    messaging_status = models.CharField(
        max_length=24, choices=MessagingStatus.choices, default=MessagingStatus.UNKNOWN
    )
    messaging_checked_at = models.DateTimeField(null=True, blank=True)

    # Filled by the inbound pipeline, the sender and every Graph call that fails.
    last_webhook_at = models.DateTimeField(null=True, blank=True)
    last_send_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    needs_reauth_since = models.DateTimeField(null=True, blank=True)
    disconnected_at = models.DateTimeField(null=True, blank=True)

    objects: ClassVar[models.Manager[Self]] = ScopedManager(tenant="tenant")

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["ig_user_id"],
                condition=~models.Q(status="disconnected"),
                name="instagram_account_connected_once",
            ),
            models.UniqueConstraint(
                fields=["tenant", "ig_user_id"], name="instagram_account_once_per_tenant"
            ),
        ]

    def __str__(self) -> str:
        return f"@{self.username or self.ig_user_id}"

    @property
    def health(self) -> str:
        """One word for the account's state, as the health page shows it."""
        if self.status != self.Status.ACTIVE:
            return self.status
        if self.messaging_status in (
            MessagingStatus.NOT_ELIGIBLE,
            MessagingStatus.MESSAGE_ACCESS_OFF,
        ):
            return self.messaging_status
        return self.status

    @property
    def health_label(self) -> str:
        return HEALTH_LABELS[self.health]

    @property
    def is_creator(self) -> bool:
        return self.account_type.lower() in ("media_creator", "creator")


class AccountAccess(models.Model):
    """One Instagram account an agent limited to chosen accounts may see."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    membership = models.ForeignKey(
        Membership, on_delete=models.CASCADE, related_name="account_access"
    )
    account = models.ForeignKey(InstagramAccount, on_delete=models.CASCADE, related_name="+")

    objects: ClassVar[models.Manager[Self]] = ScopedManager(tenant="tenant")

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["membership", "account"], name="account_access_unique")
        ]

    def __str__(self) -> str:
        return f"{self.membership_id} may see {self.account_id}"


class OnboardingLink(models.Model):
    """A link an agency sends a client so they connect their accounts themselves.

    Single use, with an expiry. Only the token's hash is stored. A reconnect link names the
    account it is for.
    """

    class State(models.TextChoices):
        PENDING = "pending", "Not opened yet"
        OPENED = "opened", "Opened"
        COMPLETED = "completed", "Completed"
        EXPIRED = "expired", "Expired"
        REVOKED = "revoked", "Withdrawn"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="onboarding_links")
    token_hash = models.CharField(max_length=64, unique=True)
    note = models.CharField(max_length=500, blank=True)
    account = models.ForeignKey(
        InstagramAccount, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_by = models.ForeignKey(
        User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    opened_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    connected_usernames = models.JSONField(default=list, blank=True)
    sent_to = models.EmailField(blank=True)

    objects: ClassVar[models.Manager[Self]] = ScopedManager(tenant="tenant")

    def __str__(self) -> str:
        return f"onboarding link {self.pk} of {self.tenant_id}"

    def state_at(self, now: datetime) -> str:
        if self.completed_at is not None:
            return self.State.COMPLETED
        if self.revoked_at is not None:
            return self.State.REVOKED
        if self.expires_at <= now:
            return self.State.EXPIRED
        if self.opened_at is not None:
            return self.State.OPENED
        return self.State.PENDING


class OnboardingAttempt(models.Model):
    """One Meta login in progress: what it can reach, until the person picks accounts.

    The tokens it obtained are kept encrypted and only until the attempt is completed or
    expires; the browser session that started it holds its id and the OAuth state.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    login_kind = models.CharField(max_length=16, choices=InstagramAccount.LoginKind.choices)
    link = models.ForeignKey(
        OnboardingLink, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    started_by = models.ForeignKey(
        User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    meta_user_id = models.CharField(max_length=64, blank=True)
    # Candidates without secrets (shown to the person), and their tokens (encrypted JSON).
    candidates = models.JSONField(default=list, blank=True)
    secrets = EncryptedTextField(blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    objects: ClassVar[models.Manager[Self]] = ScopedManager(tenant="tenant")

    def __str__(self) -> str:
        return f"onboarding attempt {self.pk} of {self.tenant_id}"


# -- Compliance: the audit log, deletion requests, retention, tenant deletion ---------------


class AuditEntryQuerySet(models.QuerySet["AuditEntry"]):
    """The audit log is append-only: rows are written once and never changed or removed here.

    A workspace's entries go only with the workspace itself (tenant deletion), which the
    database allows only to the tenant-deletion service (see the migration's trigger).
    """

    def update(self, **kwargs: Any) -> int:
        raise PermissionError("Audit entries cannot be changed.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise PermissionError("Audit entries cannot be deleted.")


class AuditEntryManager(models.Manager["AuditEntry"]):
    def get_queryset(self) -> AuditEntryQuerySet:
        return AuditEntryQuerySet(self.model, using=self._db)


class AuditEntry(models.Model):
    """Who did what, when: never any message content or personal data of customers."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # The actor, kept even after the person or the key is gone (no database constraint).
    actor_user = models.ForeignKey(
        User,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        blank=True,
        related_name="+",
    )
    actor_api_key = models.ForeignKey(
        ApiKey,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        blank=True,
        related_name="+",
    )
    # How the actor was shown when it acted: an email, a key's name and prefix, "Meta", "system".
    actor_label = models.CharField(max_length=200, blank=True)
    action = models.CharField(max_length=64, db_index=True)
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    detail = models.JSONField(default=dict, blank=True)

    objects: ClassVar[models.Manager[Self]] = ScopedManager(
        _manager_class=AuditEntryManager, tenant="tenant"
    )

    class Meta:
        indexes: ClassVar = [
            models.Index(fields=["tenant", "-created_at", "-id"], name="audit_by_tenant_recent"),
        ]

    def __str__(self) -> str:
        return f"{self.action} by {self.actor_label or 'system'} at {self.created_at:%Y-%m-%d}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None and not self._state.adding:
            raise PermissionError("Audit entries cannot be changed.")
        super().save(*args, **kwargs)


class DataDeletionRequest(models.Model):
    """A person's request, through Meta, that we delete their data.

    Not tenant-owned: one person may have connected accounts in several workspaces. The person
    is kept only as a keyed hash of Meta's app-scoped id, so the row itself names nobody; the
    confirmation code is the only way to its public status page.
    """

    class Status(models.TextChoices):
        RECEIVED = "received", "Received"
        RUNNING = "running", "In progress"
        DONE = "done", "Completed"
        FAILED = "failed", "Interrupted, will be retried"

    confirmation_code = models.CharField(max_length=64, unique=True)
    subject_hash = models.CharField(max_length=64, db_index=True)
    # Meta's id of the person, encrypted, needed only until the erasure is done: then emptied.
    subject = EncryptedTextField(blank=True)
    # Which app's secret signed the request: "meta" (Facebook Login) or "instagram".
    source = models.CharField(max_length=16, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RECEIVED)
    # Counts only: {"workspaces": n, "accounts_disconnected": n, "tokens_deleted": n, ...}
    progress = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["subject_hash"],
                condition=models.Q(status__in=["received", "running", "failed"]),
                name="data_deletion_one_open_per_person",
            )
        ]

    def __str__(self) -> str:
        return f"data deletion request {self.pk} ({self.status})"


class TenantCompliance(models.Model):
    """A workspace's retention policy and what its last nightly run erased."""

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="+")
    # Message content older than this many days is erased; None keeps it.
    message_retention_days = models.PositiveIntegerField(null=True, blank=True)
    # {"<instagram account id>": days}: an account's own period, overriding the workspace's.
    account_retention_days = models.JSONField(default=dict, blank=True)
    last_retention_run_at = models.DateTimeField(null=True, blank=True)
    # {"messages": n, "comments": n, "batches": n, "seconds": s}
    last_retention_erased = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects: ClassVar[models.Manager[Self]] = ScopedManager(tenant="tenant")

    def __str__(self) -> str:
        return f"compliance settings of {self.tenant_id}"


class TenantDeletionJob(models.Model):
    """The erasure of a whole workspace, step by step.

    Not tenant-owned on purpose: it outlives the workspace it erases, so the person who asked
    can follow its progress to the end, and it stays as the record that the erasure happened.
    It names the workspace only by id and a hash of its name.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "In progress"
        DONE = "done", "Completed"
        FAILED = "failed", "Interrupted, will be retried"

    tenant_id = models.BigIntegerField(db_index=True)
    tenant_name_hash = models.CharField(max_length=64)
    requested_by_user_id = models.BigIntegerField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    # {"step": name, "done": [names], "counts": {name: n}}
    progress = models.JSONField(default=dict, blank=True)
    error = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["tenant_id"],
                condition=models.Q(status__in=["queued", "running", "failed"]),
                name="tenant_deletion_one_active",
            )
        ]

    def __str__(self) -> str:
        return f"deletion of workspace {self.tenant_id} ({self.status})"
