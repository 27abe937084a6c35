from __future__ import annotations

from typing import ClassVar, Self

from django.db import models
from django_scopes import ScopedManager

from accounts.crypto import EncryptedTextField
from accounts.models import InstagramAccount, Tenant


class WebhookEvent(models.Model):
    """One delivery from Meta, stored raw before it is acknowledged: the inbound outbox.

    Not tenant-owned: which tenant an event belongs to is decided when it is processed, by the
    webhook router. Identical bodies (Meta's retries, duplicate deliveries) are stored once.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting to be processed"
        PROCESSED = "processed", "Processed"
        QUARANTINED = "quarantined", "Quarantined for inspection"

    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    raw_body = models.BinaryField()
    body_sha256 = models.CharField(max_length=64, unique=True)
    # Which configured secret signed it: "meta" (Facebook Login app) or "instagram".
    signed_with = models.CharField(max_length=16)
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    # The ids the delivery names (business accounts, customers, messages, comments), recorded
    # when it is processed: erasures find the deliveries naming an id through an index on this
    # (GIN on PostgreSQL, created by migration 0003) instead of reading every body. NULL until
    # the body has been read (waiting, or not JSON); ``[]`` once the body is blanked.
    named_ids = models.JSONField(null=True, blank=True)

    class Meta:
        indexes: ClassVar = [
            models.Index(
                fields=["id"],
                name="webhook_event_pending",
                condition=models.Q(status="pending"),
            ),
            # Handled deliveries whose ids were never recorded: erasures read these bodies.
            models.Index(
                fields=["id"],
                name="webhook_event_unindexed",
                condition=models.Q(named_ids__isnull=True, status__in=["processed", "quarantined"]),
            ),
        ]

    def __str__(self) -> str:
        return f"webhook event {self.pk} ({self.status})"


class ErasedCustomer(models.Model):
    """A customer whose data was erased from an account, and when.

    Deliveries received (or events that happened) before ``erased_at`` are not applied for
    this customer, so a delivery stored before the erasure and processed after it cannot bring
    the contact back. The customer is known by a keyed hash of the account and their Instagram
    id, never by the id itself.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    account = models.ForeignKey(InstagramAccount, on_delete=models.CASCADE, related_name="+")
    igsid_hash = models.CharField(max_length=64)
    erased_at = models.DateTimeField()

    objects: ClassVar[models.Manager[Self]] = ScopedManager(tenant="tenant")

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["account", "igsid_hash"], name="erased_customer_once_per_account"
            )
        ]

    def __str__(self) -> str:
        return f"erased customer {self.pk}"


# -- Partner event callbacks -------------------------------------------------------------------


class CallbackEventType(models.TextChoices):
    MESSAGE_RECEIVED = "message.received", "A customer's message arrived"
    MESSAGE_SENT = "message.sent", "A business message was sent"
    MESSAGE_FAILED = "message.failed", "A business message could not be sent"
    MESSAGE_READ = "message.read", "The customer read the conversation"
    MESSAGE_DELETED = "message.deleted", "A message was unsent"
    MESSAGE_EDITED = "message.edited", "A message was edited"
    CONVERSATION_CREATED = "conversation.created", "A conversation started"
    CONVERSATION_UPDATED = "conversation.updated", "A conversation changed"
    COMMENT_RECEIVED = "comment.received", "A comment arrived"
    ACCOUNT_HEALTH_CHANGED = "account.health_changed", "An Instagram account's health changed"


class CallbackEndpoint(models.Model):
    """A partner's URL that receives the workspace's events, signed with its own key.

    During a rotation the previous key keeps signing too (a second ``v1``) until
    ``previous_secret_expires_at``, so the partner can switch without dropping a delivery.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    url = models.URLField(max_length=2000)
    description = models.CharField(max_length=200, blank=True)
    events = models.JSONField(default=list)  # CallbackEventType values
    secret = EncryptedTextField()
    previous_secret = EncryptedTextField(blank=True)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    secret_rotated_at = models.DateTimeField(null=True, blank=True)
    enabled = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=300, blank=True)
    # The first failure since the last success: an endpoint failing for a day is disabled.
    failing_since = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects: ClassVar[models.Manager[Self]] = ScopedManager(tenant="tenant")

    def __str__(self) -> str:
        return f"callback endpoint {self.pk}"

    def wants(self, event_type: str) -> bool:
        return event_type in self.events


class CallbackEvent(models.Model):
    """One event of the workspace, as its subscribers receive it (the callback outbox).

    ``sequence`` numbers a conversation's events from 1, so a partner can order them and see
    gaps; events without a conversation have none.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    type = models.CharField(max_length=40, choices=CallbackEventType.choices)
    payload = models.JSONField(default=dict)
    conversation_id = models.BigIntegerField(null=True, blank=True)
    sequence = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects: ClassVar[models.Manager[Self]] = ScopedManager(tenant="tenant")

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["conversation_id", "sequence"],
                condition=models.Q(conversation_id__isnull=False),
                name="callback_event_sequence_once",
            )
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.pk}"


class CallbackDelivery(models.Model):
    """One event for one endpoint: tried, retried with backoff, logged.

    ``pending`` waits for its first try, ``failed`` for its next one; both are open and keep
    the conversation's later events waiting behind them. ``delivered`` and ``dead`` are final.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting"
        FAILED = "failed", "Failed, will retry"
        DELIVERED = "delivered", "Delivered"
        DEAD = "dead", "Gave up"

    OPEN = ("pending", "failed")

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    endpoint = models.ForeignKey(
        CallbackEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    event = models.ForeignKey(CallbackEvent, on_delete=models.CASCADE, related_name="deliveries")
    # Copied from the event: the relay orders a conversation's deliveries without a join.
    conversation_id = models.BigIntegerField(null=True, blank=True)
    sequence = models.PositiveIntegerField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_latency_ms = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    response_excerpt = models.CharField(max_length=500, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    # Set on a copy made by hand from an earlier delivery of the same event.
    redelivery_of = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects: ClassVar[models.Manager[Self]] = ScopedManager(tenant="tenant")

    class Meta:
        indexes: ClassVar = [
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(status__in=["pending", "failed"]),
                name="callback_delivery_due",
            ),
            models.Index(
                fields=["endpoint", "conversation_id", "sequence"],
                condition=models.Q(status__in=["pending", "failed"]),
                name="callback_delivery_open_thread",
            ),
            models.Index(fields=["endpoint", "-id"], name="callback_delivery_log"),
        ]

    def __str__(self) -> str:
        return f"delivery {self.pk} ({self.status})"


# -- Partner API requests ----------------------------------------------------------------------


class IdempotencyRecord(models.Model):
    """A partner POST made with an ``Idempotency-Key``: a repeat answers with the first result.

    ``response_status`` is empty while the first request is still running.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=2000)
    request_hash = models.CharField(max_length=64)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    objects: ClassVar[models.Manager[Self]] = ScopedManager(tenant="tenant")

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["tenant", "key"], name="idempotency_record_once")
        ]

    def __str__(self) -> str:
        return f"idempotency record {self.pk}"
