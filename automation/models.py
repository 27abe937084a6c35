"""Automation: rules that answer customers inside Meta's rules, per Instagram account.

A ``Rule`` pairs one trigger (what a customer did) with a list of actions (what we do about
it). Every automated send goes through the outbound policy (``messaging.policy``), so windows,
disclosure and the one-private-reply rule hold for rules exactly as for people. ``RuleRun`` is
a rule's history: one row per triggering event, what it sent, or why it did not.
``AccountAutomation`` holds what is set once per account: business hours, the away message,
the handover default, ice breakers and the persistent menu (synced to Meta's
``messenger_profile``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar, Self

from django.db import models
from django_scopes import ScopedManager

from accounts.models import InstagramAccount, Tenant


class Trigger(models.TextChoices):
    NEW_CONVERSATION = "new_conversation", "A new conversation starts"
    KEYWORD = "keyword", "A message contains a keyword or pattern"
    COMMENT = "comment", "Someone comments on a post"
    STORY_MENTION = "story_mention", "Someone mentions the account in their story"
    STORY_REPLY = "story_reply", "Someone replies to a story"
    PAYLOAD = "payload", "A quick reply, ice breaker or menu button is tapped"
    OUTSIDE_HOURS = "outside_hours", "A message arrives outside business hours"


class MatchMode(models.TextChoices):
    CONTAINS = "contains", "Contains any keyword"
    EXACT = "exact", "Is exactly a keyword"
    REGEX = "regex", "Matches a pattern"


class ActionType(models.TextChoices):
    REPLY_TEXT = "reply_text", "Reply with text"
    REPLY_QUICK_REPLIES = "reply_quick_replies", "Reply with quick replies"
    REPLY_TEMPLATE = "reply_template", "Reply with a card (generic template)"
    PRIVATE_REPLY = "private_reply", "Private reply to the comment"
    ASSIGN = "assign", "Assign to a teammate"
    LABEL = "label", "Add a label"
    HANDOVER = "handover", "Hand the conversation to a person"
    PARTNER_BOT = "partner_bot", "Ask a partner's bot and send its answer"


class Rule(models.Model):
    """One trigger and its actions on one account.

    ``actions`` is a list of ``{"type": ActionType, ...}`` objects; the fields each type takes
    are checked by ``automation.services.actions_clean``:

    - ``reply_text``: ``text``
    - ``reply_quick_replies``: ``text``, ``quick_replies`` (``[{"title", "payload"}]``)
    - ``reply_template``: ``elements`` (the generic template's cards)
    - ``private_reply``: ``text``
    - ``assign``: ``membership_id``
    - ``label``: ``label`` (a name; created if missing)
    - ``handover``: nothing
    - ``partner_bot``: ``url``; the secret is ``Rule.bot_secret``
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    account = models.ForeignKey(
        InstagramAccount, on_delete=models.CASCADE, related_name="automation_rules"
    )
    name = models.CharField(max_length=120)
    enabled = models.BooleanField(default=True)
    # Lower runs first; a rule that fired stops the rest when ``stop_after`` is set.
    position = models.PositiveIntegerField(default=0)
    stop_after = models.BooleanField(default=True)

    trigger = models.CharField(max_length=32, choices=Trigger.choices)
    match_mode = models.CharField(
        max_length=16, choices=MatchMode.choices, default=MatchMode.CONTAINS
    )
    keywords = models.JSONField(default=list, blank=True)  # ["price", "how much"]
    pattern = models.CharField(max_length=500, blank=True)  # a regular expression
    media_id = models.CharField(max_length=64, blank=True)  # comment rules: one post, or any
    payload = models.CharField(max_length=1000, blank=True)  # payload rules: the exact payload

    actions = models.JSONField(default=list)
    # The same contact does not trigger this rule again within the cooldown.
    cooldown = models.DurationField(default=timedelta(hours=24))
    # The partner bot action signs its calls with this (shown once, like callback secrets).
    bot_secret = models.CharField(max_length=128, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects: ClassVar[models.Manager[Self]] = ScopedManager(tenant="tenant")

    class Meta:
        ordering: ClassVar = ["position", "id"]
        indexes: ClassVar = [
            models.Index(fields=["account", "trigger", "enabled"], name="rule_by_trigger"),
        ]

    def __str__(self) -> str:
        return self.name


class RuleRun(models.Model):
    """A rule's history: one row per event that triggered it (or was stopped from doing so).

    ``source`` names the triggering event (``message:<id>`` or ``comment:<id>``); it is unique
    per rule, so a webhook delivered twice never fires a rule twice.
    """

    class Outcome(models.TextChoices):
        PENDING = "pending", "Waiting for the partner's bot"
        FIRED = "fired", "Fired"
        SKIPPED = "skipped", "Skipped"  # cooldown, human mode, thread owned by another app
        REFUSED = "refused", "Refused by Meta's rules"  # the policy said no
        FAILED = "failed", "Failed"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    rule = models.ForeignKey(Rule, on_delete=models.CASCADE, related_name="runs")
    account = models.ForeignKey(InstagramAccount, on_delete=models.CASCADE, related_name="+")
    contact = models.ForeignKey(
        "messaging.Contact", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    conversation = models.ForeignKey(
        "messaging.Conversation",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    comment = models.ForeignKey(
        "messaging.Comment", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # The commenter of a comment rule has no contact row yet: their Instagram id keeps the
    # cooldown per person.
    customer_igsid = models.CharField(max_length=64, blank=True)
    source = models.CharField(max_length=80)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    reason_code = models.CharField(max_length=64, blank=True)
    reason = models.CharField(max_length=500, blank=True)
    # What was done: [{"action": "reply_text", "message_id": 12}, {"action": "label", ...}]
    done = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects: ClassVar[models.Manager[Self]] = ScopedManager(tenant="tenant")

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["rule", "source"], name="rule_run_once_per_event"),
        ]
        indexes: ClassVar = [
            models.Index(fields=["rule", "customer_igsid", "-created_at"], name="run_cooldown"),
            models.Index(fields=["rule", "-created_at"], name="run_history"),
        ]

    def __str__(self) -> str:
        return f"{self.rule_id} {self.source} {self.outcome}"


class AccountAutomation(models.Model):
    """What an account's automation sets once: hours, away message, handover, Meta profile."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    account = models.OneToOneField(
        InstagramAccount, on_delete=models.CASCADE, related_name="automation"
    )
    # Business hours: an IANA zone and, per weekday ("mon".."sun"), a list of ["09:00",
    # "17:30"] spans. No spans on any day means no business hours (never "outside").
    timezone = models.CharField(max_length=64, default="UTC")
    hours = models.JSONField(default=dict, blank=True)
    # Resolving a conversation hands it back to automation.
    resolve_returns_to_automation = models.BooleanField(default=True)
    # messenger_profile: [{"question", "payload"}] (at most 4) and
    # [{"type": "postback"|"web_url", "title", "payload"|"url"}] (at most 20).
    ice_breakers = models.JSONField(default=list, blank=True)
    persistent_menu = models.JSONField(default=list, blank=True)
    profile_synced_at = models.DateTimeField(null=True, blank=True)
    profile_sync_error = models.CharField(max_length=500, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects: ClassVar[models.Manager[Self]] = ScopedManager(tenant="tenant")

    def __str__(self) -> str:
        return f"automation of account {self.account_id}"
