from __future__ import annotations

from typing import ClassVar

from django.db import models


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

    class Meta:
        indexes: ClassVar = [
            models.Index(
                fields=["id"],
                name="webhook_event_pending",
                condition=models.Q(status="pending"),
            )
        ]

    def __str__(self) -> str:
        return f"webhook event {self.pk} ({self.status})"
