"""Handover: whether automation or a person answers a conversation.

A conversation is in ``automation`` mode until a person answers it (an agent in the inbox, a
partner relaying a person, someone replying from the Instagram app) or a rule hands it to a
person; automation then stays quiet there. Resolving can hand it back (per account, see
``automation.models.AccountAutomation.resolve_returns_to_automation``), and an agent can hand
it back or take it over by hand. Meta's own conversation routing (another app owning the
thread) is separate: ``Conversation.owned_by_other_app``.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from messaging.models import Conversation
from webhooks import partner_events

logger = logging.getLogger("messaging.handover")

Mode = Conversation.Mode


def conversation_mode_set(
    *,
    conversation: Conversation,
    mode: str,
    actor: User | None = None,
    reason: str = "",
) -> Conversation:
    """Put the conversation in ``mode``; the locked, updated row.

    ``reason`` is a short word for the log and the partner event (``agent_reply``, ``rule``,
    ``resolved``, ``manual``). Setting the mode it already has changes nothing and emits nothing.
    """
    if mode not in Mode.values:
        raise ValueError(f"unknown conversation mode {mode!r}")
    with transaction.atomic():
        locked = Conversation.objects.select_for_update().get(pk=conversation.pk)
        if locked.mode != mode:
            locked.mode = mode
            locked.mode_changed_at = timezone.now()
            locked.save(update_fields=["mode", "mode_changed_at", "updated_at"])
            logger.info(
                "handover %s",
                mode,
                extra={
                    "conversation_id": locked.pk,
                    "mode": mode,
                    "reason": reason,
                    "actor_id": actor.pk if actor else None,
                },
            )
            partner_events.conversation_updated(conversation=locked, changes=["mode"])
    conversation.mode = locked.mode
    conversation.mode_changed_at = locked.mode_changed_at
    conversation.updated_at = locked.updated_at
    return locked
