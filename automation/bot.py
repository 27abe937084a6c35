"""Asking a partner's bot: a signed POST to the rule's URL, and sending what it answers.

The request is signed exactly like partner event callbacks (``X-Relay-Signature: t=<unix>,
v1=<hex>``, HMAC-SHA256 of ``f"{t}.{body}"``) with the rule's ``bot_secret``, and goes through
the same guarded session (no private addresses, no redirects). The bot answers::

    {"messages": [{"text": "...", "quick_replies": [{"title": "...", "payload": "..."}]}],
     "handover": false}

Each message is sent as the partner's bot through the outbound policy; ``handover: true`` hands
the conversation to a person. Network errors, timeouts and 5xx / 408 / 429 answers are worth
another try (the task retries with backoff); anything else fails the run with a reason a person
can read.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import requests
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from automation.models import ActionType, RuleRun
from config.input_guard import parse_digits
from messaging.models import Conversation, Message
from messaging.policy import SendRefused
from messaging.services import handover
from messaging.services.outbound import (
    OutboundContent,
    OutboundContentInvalid,
    QuickReplyOption,
    Sender,
    message_send,
)
from webhooks import partner_delivery

logger = logging.getLogger(__name__)

EVENT_TYPE = "automation.bot_request"
MAX_ANSWER_BYTES = 64 * 1024
MAX_MESSAGES = 5
RETRYABLE_STATUSES = frozenset({408, 425, 429})

Outcome = RuleRun.Outcome

# What ``rule_run_bot_call`` did.
DONE = "done"
RETRY = "retry"
GONE = "gone"


class BotUnavailable(Exception):
    """The bot could not be reached or answered with an error worth another try."""


class BotAnswerInvalid(Exception):
    """The bot answered something that can never be sent."""


@dataclass(frozen=True)
class BotAnswer:
    messages: tuple[OutboundContent, ...]
    handover: bool


def timeout() -> tuple[float, float]:
    return (
        float(getattr(settings, "CALLBACK_CONNECT_TIMEOUT_SECONDS", 3.0)),
        float(getattr(settings, "AUTOMATION_BOT_TIMEOUT_SECONDS", 5.0)),
    )


def bot_url_of(run: RuleRun) -> str:
    for action in run.rule.actions or []:
        if isinstance(action, dict) and action.get("type") == ActionType.PARTNER_BOT:
            return str(action.get("url") or "")
    return ""


def _message_of(run: RuleRun) -> Message | None:
    kind, _, pk = run.source.partition(":")
    message_id = parse_digits(pk)
    if kind != "message" or message_id is None:
        return None
    return Message.objects.filter(pk=message_id).first()


def request_body(run: RuleRun, message: Message | None) -> bytes:
    """What the bot is told: the rule, the conversation, the contact and the message."""
    conversation = run.conversation
    contact = conversation.contact if conversation is not None else None
    payload: dict[str, Any] = {
        "type": EVENT_TYPE,
        "run_id": run.pk,
        "rule": {"id": run.rule_id, "name": run.rule.name},
        "account": {"id": run.account_id, "ig_user_id": run.account.ig_user_id},
        "conversation": {"id": conversation.pk} if conversation is not None else None,
        "contact": (
            {
                "id": contact.pk,
                "igsid": contact.igsid,
                "username": contact.username,
                "name": contact.name,
            }
            if contact is not None
            else None
        ),
        "message": (
            {
                "id": message.pk,
                "mid": message.mid,
                "kind": message.kind,
                "text": message.text,
                "quick_reply_payload": message.quick_reply_payload,
                "postback": message.postback,
                "sent_at": message.sent_at.isoformat(),
            }
            if message is not None
            else None
        ),
    }
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def answer_parse(raw: bytes) -> BotAnswer:
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise BotAnswerInvalid("The bot's answer is not JSON.") from exc
    if not isinstance(data, dict):
        raise BotAnswerInvalid("The bot's answer is not a JSON object.")
    items = data.get("messages", [])
    if not isinstance(items, list) or len(items) > MAX_MESSAGES:
        raise BotAnswerInvalid(f"The bot's 'messages' must be a list of at most {MAX_MESSAGES}.")
    messages: list[OutboundContent] = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("text"), str):
            raise BotAnswerInvalid("Each of the bot's messages needs a 'text'.")
        options = item.get("quick_replies") or []
        if not isinstance(options, list) or not all(isinstance(o, dict) for o in options):
            raise BotAnswerInvalid("The bot's 'quick_replies' must be a list of objects.")
        content = OutboundContent(
            kind="text",
            text=item["text"],
            quick_replies=tuple(
                QuickReplyOption(title=str(o.get("title", "")), payload=str(o.get("payload", "")))
                for o in options
            ),
        )
        try:
            content.validate()
        except OutboundContentInvalid as exc:
            raise BotAnswerInvalid(f"The bot's message can't be sent: {exc.message}") from exc
        messages.append(content)
    return BotAnswer(messages=tuple(messages), handover=data.get("handover") is True)


def bot_ask(*, url: str, secret: str, body: bytes) -> BotAnswer:
    """POST the signed request; the parsed answer, or ``BotUnavailable``/``BotAnswerInvalid``."""
    stamp = int(time.time())
    signature = partner_delivery.sign(secret, stamp, body)
    headers = {
        "Content-Type": "application/json",
        partner_delivery.SIGNATURE_HEADER: f"t={stamp},v1={signature}",
        "X-Relay-Event-Type": EVENT_TYPE,
    }
    try:
        partner_delivery.url_check(url)
    except partner_delivery.UnsafeCallbackUrl as exc:
        raise BotAnswerInvalid(f"The bot's URL is refused: {exc}") from exc
    session = partner_delivery._session()
    try:
        response = session.post(
            url, data=body, headers=headers, timeout=timeout(), allow_redirects=False, stream=True
        )
        try:
            raw = response.raw.read(MAX_ANSWER_BYTES + 1, decode_content=True) or b""
        finally:
            response.close()
    except requests.RequestException as exc:
        if isinstance(exc.__context__, partner_delivery.UnsafeCallbackUrl):
            raise BotAnswerInvalid("The bot's URL is not a public address.") from exc
        raise BotUnavailable(f"The bot could not be reached ({type(exc).__name__}).") from exc
    finally:
        session.close()
    status = response.status_code
    if status >= 500 or status in RETRYABLE_STATUSES:
        raise BotUnavailable(f"The bot answered HTTP {status}.")
    if not 200 <= status < 300:
        raise BotAnswerInvalid(f"The bot answered HTTP {status}.")
    if len(raw) > MAX_ANSWER_BYTES:
        raise BotAnswerInvalid("The bot's answer is too large.")
    return answer_parse(raw)


def _finish(run: RuleRun, outcome: str, code: str = "", reason: str = "") -> str:
    run.outcome = outcome
    run.reason_code = code
    run.reason = reason[:500]
    run.finished_at = timezone.now()
    run.save(update_fields=["outcome", "reason_code", "reason", "done", "finished_at"])
    return DONE


def rule_run_bot_call(*, run_id: int, final_attempt: bool) -> str:
    """Ask the bot of a pending run and send its answer; ``DONE``, ``RETRY`` or ``GONE``.

    The run is claimed for the duration (``FOR UPDATE SKIP LOCKED``), so two workers never ask
    for the same run, and a run that is no longer pending is left alone.
    """
    with transaction.atomic():
        run = (
            RuleRun.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("rule", "account", "conversation__contact")
            .filter(pk=run_id, outcome=Outcome.PENDING)
            .first()
        )
        if run is None:
            return GONE
        conversation = run.conversation
        url = bot_url_of(run)
        if conversation is None or not url:
            return _finish(run, Outcome.FAILED, "bot_gone", "The conversation or bot is gone.")
        if conversation.owned_by_other_app:
            return _finish(
                run,
                Outcome.SKIPPED,
                "thread_owned_by_other_app",
                "Another app is handling this conversation; automation stays quiet.",
            )
        if conversation.mode == Conversation.Mode.HUMAN:
            return _finish(
                run, Outcome.SKIPPED, "human_mode", "A person is handling this conversation."
            )
        try:
            answer = bot_ask(
                url=url, secret=run.rule.bot_secret, body=request_body(run, _message_of(run))
            )
        except BotUnavailable as exc:
            if final_attempt:
                return _finish(run, Outcome.FAILED, "bot_unavailable", str(exc))
            run.reason_code, run.reason = "bot_retrying", str(exc)[:500]
            run.save(update_fields=["reason_code", "reason"])
            return RETRY
        except BotAnswerInvalid as exc:
            return _finish(run, Outcome.FAILED, "bot_answer_invalid", str(exc))
        done = list(run.done or [])
        sender = Sender.partner(run.rule.name, bot=True)
        for content in answer.messages:
            try:
                message = message_send(conversation=conversation, sender=sender, content=content)
            except SendRefused as exc:
                done.append({"action": ActionType.PARTNER_BOT, "refused": exc.code})
                run.done = done
                return _finish(run, Outcome.REFUSED, exc.code, exc.message)
            done.append({"action": ActionType.PARTNER_BOT, "message_id": message.pk})
        if answer.handover:
            handover.conversation_mode_set(
                conversation=conversation, mode=Conversation.Mode.HUMAN, reason="rule"
            )
            done.append({"action": ActionType.HANDOVER, "conversation_id": conversation.pk})
        run.done = done
        return _finish(run, Outcome.FIRED)


# Runs still pending this long after they were created lost their task (a broker outage): the
# sweep queues them again; after ``PENDING_GIVE_UP`` the customer's window is gone anyway.
PENDING_RESUME_AFTER = timedelta(minutes=5)
PENDING_GIVE_UP = timedelta(hours=24)


def rule_runs_pending_resume() -> list[int]:
    """In the caller's tenant scope: give up runs pending too long, list the ones to ask again."""
    from automation import selectors

    now = timezone.now()
    waiting = selectors.rule_runs_pending(created_before=now - PENDING_RESUME_AFTER)
    resume: list[int] = []
    for run_id, created_at in waiting.values_list("pk", "created_at"):
        if created_at < now - PENDING_GIVE_UP:
            RuleRun.objects.filter(pk=run_id, outcome=Outcome.PENDING).update(
                outcome=Outcome.FAILED,
                reason_code="bot_unavailable",
                reason="The partner's bot could not be asked in time.",
                finished_at=now,
            )
        else:
            resume.append(run_id)
    return resume
