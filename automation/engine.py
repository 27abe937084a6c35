"""The rules engine: which of an account's rules a customer's message or comment triggers, and
what they do.

It runs inline while a live webhook event is processed, inside the tenant scope and the
transaction that stored the message or comment, each rule in a savepoint of its own: a rule
that breaks is logged and recorded as a ``failed`` run, and never costs the stored message.

- Only a customer's newly arrived message or comment triggers rules: redeliveries, echoes of
  any send (ours or the Instagram app's) and history imports never do, so automations cannot
  answer themselves or loop.
- Rules run in ``position`` order; one that fired stops the rest when ``stop_after`` is set.
- A rule fires at most once per event (``RuleRun.source`` is unique per rule) and once per
  person within its cooldown (fired and pending runs count).
- Conversation rules stay quiet in human mode and when another app owns the thread (Meta's
  conversation routing); comment rules still run, as a private reply is not part of the thread.
- Every send goes through ``messaging.services.outbound`` and so through the policy; a refusal
  is recorded with the policy's code and sentence.
- A rule that matched but did not act is recorded with a reason (``cooldown``, ``human_mode``,
  ``thread_owned_by_other_app``, ``pattern_timeout``); rules that did not match leave no row.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from functools import partial
from typing import Any

import regex
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import InstagramAccount, Membership
from automation import hours as business_hours
from automation import selectors
from automation.models import ActionType, MatchMode, Rule, RuleRun, Trigger
from messaging.models import Comment, Conversation, Message
from messaging.policy import SendRefused
from messaging.services import handover, teamwork
from messaging.services.outbound import (
    OutboundContent,
    OutboundContentInvalid,
    QuickReplyOption,
    Sender,
    TemplateButton,
    TemplateCard,
    message_send,
    private_reply_send,
)

logger = logging.getLogger(__name__)

# A customer's pattern gets this long (seconds) against one text; longer is a skip.
REGEX_TIMEOUT = 0.05
MAX_MATCH_TEXT = 4000

Outcome = RuleRun.Outcome
CONVERSATION_TRIGGERS = frozenset(
    {
        Trigger.NEW_CONVERSATION,
        Trigger.KEYWORD,
        Trigger.STORY_MENTION,
        Trigger.STORY_REPLY,
        Trigger.PAYLOAD,
        Trigger.OUTSIDE_HOURS,
    }
)
REPLY_ACTIONS = frozenset(
    {ActionType.REPLY_TEXT, ActionType.REPLY_QUICK_REPLIES, ActionType.REPLY_TEMPLATE}
)
THREAD_ACTIONS = REPLY_ACTIONS | {ActionType.ASSIGN, ActionType.LABEL, ActionType.HANDOVER}


class Match(Enum):
    NO = "no"
    YES = "yes"
    TIMEOUT = "timeout"


class RuleFailed(Exception):
    """A rule that cannot do what it says (bad content, a teammate who can't be assigned)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Event:
    """What triggered the rules: a customer's message or a comment, with what rules look at."""

    account: InstagramAccount
    source: str
    customer_igsid: str
    text: str
    at: datetime
    message: Message | None = None
    comment: Comment | None = None
    conversation: Conversation | None = None
    is_standby: bool = False
    _cache: dict[str, Any] = field(default_factory=dict)

    @property
    def contact_id(self) -> int | None:
        return self.conversation.contact_id if self.conversation is not None else None


# -- entry points ------------------------------------------------------------------------------


def message_received(*, message: Message) -> None:
    """A customer's message newly arrived from a live webhook: run the rules it triggers.

    Never raises: whatever goes wrong is logged (and recorded on the rule's history).
    """
    try:
        _run_for_message(message)
    except Exception:
        logger.exception("automation failed for message %s", message.pk)


def comment_received(*, comment: Comment) -> None:
    """A comment newly arrived from a live webhook: run the account's comment rules."""
    try:
        _run_for_comment(comment)
    except Exception:
        logger.exception("automation failed for comment %s", comment.pk)


def message_triggers(message: Message) -> list[str]:
    """The triggers a message could fire; which rules of them match is decided per rule."""
    triggers: list[str] = [Trigger.NEW_CONVERSATION, Trigger.OUTSIDE_HOURS]
    payload = _payload_of(message)
    if payload:
        triggers.append(Trigger.PAYLOAD)
    if message.kind == Message.Kind.STORY_MENTION:
        triggers.append(Trigger.STORY_MENTION)
    elif message.kind == Message.Kind.STORY_REPLY:
        triggers.append(Trigger.STORY_REPLY)
    if (
        not payload
        and message.text.strip()
        and message.kind in (Message.Kind.TEXT, Message.Kind.STORY_REPLY)
    ):
        triggers.append(Trigger.KEYWORD)
    return triggers


def _account_has_no_rules(message: Message) -> bool:
    """Known without a query: inbound processing read the conversation, in this transaction,
    with whether its account has any enabled rule (``account_has_enabled_rules``)."""
    if not Message._meta.get_field("conversation").is_cached(message):
        return False
    return getattr(message.conversation, "account_has_enabled_rules", None) is False


def _run_for_message(message: Message) -> None:
    if (
        message.direction != Message.Direction.INBOUND
        or message.sender_kind != Message.SenderKind.CUSTOMER
        or message.is_unsent
    ):
        return
    if _account_has_no_rules(message):
        return
    rules = selectors.rules_enabled_for(account=message.account, triggers=message_triggers(message))
    if not rules:
        return
    conversation = message.conversation
    event = Event(
        account=message.account,
        source=f"message:{message.pk}",
        customer_igsid=conversation.contact.igsid,
        text=message.text,
        at=message.sent_at,
        message=message,
        conversation=conversation,
        is_standby=message.is_standby,
    )
    _run_rules(rules, event)


def _run_for_comment(comment: Comment) -> None:
    rules = selectors.rules_enabled_for(account=comment.account, triggers=[Trigger.COMMENT])
    if not rules:
        return
    event = Event(
        account=comment.account,
        source=f"comment:{comment.pk}",
        customer_igsid=comment.from_id,
        text=comment.text,
        at=comment.commented_at,
        comment=comment,
    )
    _run_rules(rules, event)


def _run_rules(rules: list[Rule], event: Event) -> None:
    for rule in rules:
        match = rule_matches(rule, event)
        if match is Match.NO:
            continue
        if match is Match.TIMEOUT:
            _record(
                rule,
                event,
                Outcome.SKIPPED,
                "pattern_timeout",
                "The pattern took too long on this text and was skipped.",
            )
            continue
        outcome = _run_rule(rule, event)
        if outcome in (Outcome.FIRED, Outcome.PENDING) and rule.stop_after:
            break


# -- matching ----------------------------------------------------------------------------------


def _payload_of(message: Message) -> str:
    if message.quick_reply_payload:
        return message.quick_reply_payload
    postback = message.postback if isinstance(message.postback, dict) else {}
    payload = postback.get("payload")
    return payload if isinstance(payload, str) else ""


def _normalise(text: str) -> str:
    return " ".join(text.casefold().split())


def text_matches(rule: Rule, text: str) -> Match:
    """Whether ``text`` matches the rule's keywords or pattern (case-insensitive).

    ``contains`` looks for whole words or phrases, ``exact`` compares the trimmed text, and a
    pattern is a regular expression given ``REGEX_TIMEOUT`` seconds.
    """
    text = text[:MAX_MATCH_TEXT]
    if rule.match_mode == MatchMode.REGEX:
        if not rule.pattern:
            return Match.NO
        try:
            found = regex.search(rule.pattern, text, flags=regex.IGNORECASE, timeout=REGEX_TIMEOUT)
        except TimeoutError:
            logger.warning("rule %s: pattern timed out", rule.pk)
            return Match.TIMEOUT
        except regex.error:
            logger.warning("rule %s: pattern does not compile", rule.pk)
            return Match.NO
        return Match.YES if found is not None else Match.NO
    keywords = [_normalise(k) for k in rule.keywords or [] if isinstance(k, str) and _normalise(k)]
    folded = _normalise(text)
    if rule.match_mode == MatchMode.EXACT:
        return Match.YES if folded in keywords else Match.NO
    for keyword in keywords:
        if re.search(rf"(?<!\w){re.escape(keyword)}(?!\w)", folded):
            return Match.YES
    return Match.NO


def _has_text_condition(rule: Rule) -> bool:
    if rule.match_mode == MatchMode.REGEX:
        return bool(rule.pattern)
    return any(isinstance(k, str) and k.strip() for k in rule.keywords or [])


def rule_matches(rule: Rule, event: Event) -> Match:
    trigger = rule.trigger
    if trigger == Trigger.COMMENT:
        comment = event.comment
        if comment is None or (rule.media_id and rule.media_id != comment.media_id):
            return Match.NO
        return text_matches(rule, event.text) if _has_text_condition(rule) else Match.YES
    message = event.message
    if message is None:
        return Match.NO
    if trigger == Trigger.KEYWORD:
        return text_matches(rule, event.text)
    if trigger == Trigger.PAYLOAD:
        payload = _payload_of(message)
        return Match.YES if payload and payload == rule.payload else Match.NO
    if trigger == Trigger.STORY_MENTION:
        return Match.YES if message.kind == Message.Kind.STORY_MENTION else Match.NO
    if trigger == Trigger.STORY_REPLY:
        return Match.YES if message.kind == Message.Kind.STORY_REPLY else Match.NO
    if trigger == Trigger.NEW_CONVERSATION:
        return Match.YES if _is_first_customer_message(event) else Match.NO
    if trigger == Trigger.OUTSIDE_HOURS:
        return Match.YES if _is_outside_hours(event) else Match.NO
    return Match.NO


def _is_first_customer_message(event: Event) -> bool:
    message = event.message
    if message is None:
        return False
    if "first" not in event._cache:
        event._cache["first"] = not (
            Message.objects.filter(
                conversation_id=message.conversation_id, direction=Message.Direction.INBOUND
            )
            .exclude(pk=message.pk)
            .exists()
        )
    return bool(event._cache["first"])


def _is_outside_hours(event: Event) -> bool:
    if "outside" not in event._cache:
        settings = selectors.account_automation_get(account_id=event.account.pk)
        event._cache["outside"] = settings is not None and business_hours.is_outside(
            hours=settings.hours, timezone_name=settings.timezone, at=event.at
        )
    return bool(event._cache["outside"])


# -- running one rule --------------------------------------------------------------------------


def _skip_reason(rule: Rule, event: Event) -> tuple[str, str] | None:
    conversation = event.conversation
    if rule.trigger in CONVERSATION_TRIGGERS and conversation is not None:
        if event.is_standby or conversation.owned_by_other_app:
            return (
                "thread_owned_by_other_app",
                "Another app is handling this conversation; automation stays quiet.",
            )
        if conversation.mode == Conversation.Mode.HUMAN:
            return "human_mode", "A person is handling this conversation."
    if selectors.rule_in_cooldown(
        rule=rule, customer_igsid=event.customer_igsid, now=timezone.now()
    ):
        return "cooldown", "This rule already answered this person within its cooldown."
    return None


def _run_fields(rule: Rule, event: Event) -> dict[str, Any]:
    return {
        "tenant_id": rule.tenant_id,
        "rule": rule,
        "account_id": rule.account_id,
        "contact_id": event.contact_id,
        "conversation": event.conversation,
        "comment": event.comment,
        "customer_igsid": event.customer_igsid[:64],
        "source": event.source,
    }


def _record(rule: Rule, event: Event, outcome: str, code: str = "", reason: str = "") -> None:
    """Write a finished run (a skip or a failure) unless this event already has one."""
    try:
        with transaction.atomic():
            RuleRun.objects.create(
                **_run_fields(rule, event),
                outcome=outcome,
                reason_code=code,
                reason=reason[:500],
                finished_at=timezone.now(),
            )
    except IntegrityError:
        logger.info("rule %s already ran for %s", rule.pk, event.source)


def _run_rule(rule: Rule, event: Event) -> str | None:
    """Run one matching rule; its outcome (None when the event had already run it)."""
    skip = _skip_reason(rule, event)
    if skip is not None:
        _record(rule, event, Outcome.SKIPPED, *skip)
        return Outcome.SKIPPED
    try:
        with transaction.atomic():
            try:
                with transaction.atomic():
                    run = RuleRun.objects.create(
                        **_run_fields(rule, event), outcome=Outcome.PENDING
                    )
            except IntegrityError:
                logger.info("rule %s already ran for %s", rule.pk, event.source)
                return None
            _perform(rule, event, run)
            return run.outcome
    except RuleFailed as exc:
        _record(rule, event, Outcome.FAILED, exc.code, exc.message)
    except Exception:
        logger.exception("rule %s failed on %s", rule.pk, event.source)
        _record(rule, event, Outcome.FAILED, "error", "Something went wrong running this rule.")
    return Outcome.FAILED


def _perform(rule: Rule, event: Event, run: RuleRun) -> None:
    done: list[dict[str, Any]] = []
    refusal: SendRefused | None = None
    bot_url = ""
    for action in rule.actions or []:
        kind = action.get("type") if isinstance(action, dict) else None
        if kind == ActionType.PARTNER_BOT:
            if event.conversation is None:
                done.append({"action": kind, "skipped": "no_conversation"})
            else:
                bot_url = str(action.get("url") or "")
            continue
        try:
            done.append(_act(rule, event, action))
        except SendRefused as exc:
            refusal = refusal or exc
            done.append({"action": kind, "refused": exc.code})
    run.done = done
    if refusal is not None:
        run.outcome = Outcome.REFUSED
        run.reason_code = refusal.code
        run.reason = refusal.message[:500]
    elif bot_url:
        run.outcome = Outcome.PENDING
        transaction.on_commit(partial(bot_call_enqueue, run.tenant_id, run.pk))
    else:
        run.outcome = Outcome.FIRED
    if run.outcome != Outcome.PENDING:
        run.finished_at = timezone.now()
    run.save(update_fields=["outcome", "reason_code", "reason", "done", "finished_at"])


def bot_call_enqueue(tenant_id: int, run_id: int) -> None:
    """Ask the partner's bot after commit; a broker problem leaves the run to the sweep."""
    from automation import tasks

    try:
        tasks.rule_bot_call.apply_async(args=(tenant_id, run_id), retry=False)
    except Exception:
        logger.warning("bot call of rule run %s not queued: left to the sweep", run_id)


def _text(action: dict[str, Any]) -> str:
    value = action.get("text")
    return value if isinstance(value, str) else ""


def content_of(action: dict[str, Any]) -> OutboundContent:
    """The message a reply action sends."""
    kind = action.get("type")
    if kind == ActionType.REPLY_QUICK_REPLIES:
        options = tuple(
            QuickReplyOption(title=str(q.get("title", "")), payload=str(q.get("payload", "")))
            for q in action.get("quick_replies") or []
            if isinstance(q, dict)
        )
        return OutboundContent(kind="text", text=_text(action), quick_replies=options)
    if kind == ActionType.REPLY_TEMPLATE:
        cards = tuple(
            TemplateCard(
                title=str(card.get("title", "")),
                subtitle=str(card.get("subtitle", "")),
                image_url=str(card.get("image_url", "")),
                default_action_url=str(card.get("default_action_url", "")),
                buttons=tuple(
                    TemplateButton(
                        type=str(b.get("type", "")),
                        title=str(b.get("title", "")),
                        url=str(b.get("url", "")),
                        payload=str(b.get("payload", "")),
                    )
                    for b in card.get("buttons") or []
                    if isinstance(b, dict)
                ),
            )
            for card in action.get("elements") or []
            if isinstance(card, dict)
        )
        return OutboundContent(kind="generic_template", elements=cards)
    return OutboundContent(kind="text", text=_text(action))


def _act(rule: Rule, event: Event, action: dict[str, Any]) -> dict[str, Any]:
    kind = action.get("type")
    try:
        if kind == ActionType.PRIVATE_REPLY:
            if event.comment is None:
                return {"action": kind, "skipped": "no_comment"}
            job = private_reply_send(
                comment=event.comment, sender=Sender.automation(rule.name), text=_text(action)
            )
            return {"action": kind, "job_id": job.pk}
        if kind in THREAD_ACTIONS:
            if event.conversation is None:
                return {"action": kind, "skipped": "no_conversation"}
            return _act_in_thread(rule, event.conversation, action)
    except OutboundContentInvalid as exc:
        raise RuleFailed(exc.code, exc.message) from exc
    except teamwork.TeamworkError as exc:
        raise RuleFailed(exc.code, exc.message) from exc
    return {"action": kind, "skipped": "unknown_action"}


def _act_in_thread(
    rule: Rule, conversation: Conversation, action: dict[str, Any]
) -> dict[str, Any]:
    kind = action.get("type")
    if kind in REPLY_ACTIONS:
        message = message_send(
            conversation=conversation,
            sender=Sender.automation(rule.name),
            content=content_of(action),
        )
        return {"action": kind, "message_id": message.pk}
    if kind == ActionType.ASSIGN:
        member_id = action.get("membership_id")
        member = (
            Membership.objects.filter(pk=member_id).first() if isinstance(member_id, int) else None
        )
        if member is None:
            raise RuleFailed("assignee_gone", "The teammate to assign is no longer a member.")
        teamwork.conversation_assign(conversation=conversation, assignee=member, actor=None)
        return {"action": kind, "membership_id": member.pk}
    if kind == ActionType.LABEL:
        label = teamwork.label_apply_by_name(
            conversation=conversation, name=str(action.get("label", "")), actor=None
        )
        return {"action": kind, "label_id": label.pk}
    handover.conversation_mode_set(
        conversation=conversation, mode=Conversation.Mode.HUMAN, reason="rule"
    )
    return {"action": kind, "conversation_id": conversation.pk}
