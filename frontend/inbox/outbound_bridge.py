"""The inbox's view of sending: the reply window as agents read it, and the calls that send.

Sending and its rules belong to ``messaging.policy`` and ``messaging.services.outbound``; this
module only adapts them for the pages. When they are not installed, the window is worked out
from the conversation's own fields (the same 24-hour and 7-day rules) and sending answers
``SendUnavailable``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import ModuleType
from typing import Any

from django.utils import timezone

from messaging.models import Conversation, Message


class SendUnavailable(RuntimeError):
    """Sending from the inbox is not available in this installation."""


@dataclass(frozen=True)
class Window:
    """What may be sent now, in words an agent reads before typing."""

    state: str  # open | human_agent | closed | other_app | never
    can_send: bool
    title: str
    detail: str
    closes_at: datetime | None = None
    quick_replies: bool = False

    @property
    def tone(self) -> str:
        return {"open": "ok", "human_agent": "warn"}.get(self.state, "off")


def _module(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def policy() -> ModuleType | None:
    return _module("messaging.policy")


def outbound() -> ModuleType | None:
    return _module("messaging.services.outbound")


def left(delta: timedelta) -> str:
    """ "3 h 12 min", "5 days", "12 min": the time left, as a person says it."""
    seconds = max(int(delta.total_seconds()), 0)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days >= 1:
        return f"{days} day{'s' if days != 1 else ''}" + (
            f" {hours} h" if days < 2 and hours else ""
        )
    if hours:
        return f"{hours} h {minutes} min"
    return f"{max(minutes, 1)} min"


def window_for(conversation: Conversation, now: datetime | None = None) -> Window:
    """The reply window of a conversation for a person answering from the inbox."""
    now = now or timezone.now()
    module = policy()
    if module is not None and hasattr(module, "window_state"):
        state = module.window_state(conversation, module.SenderKind.HUMAN_AGENT, now=now)
        return _from_policy(state, now)
    return window_from_fields(conversation, now)


def window_from_fields(conversation: Conversation, now: datetime) -> Window:
    if conversation.owned_by_other_app:
        return Window(
            "other_app",
            False,
            "Another app is handling this conversation",
            "Replies are paused until the thread is passed back to this inbox.",
        )
    closes = conversation.window_closes_at
    human = conversation.human_agent_window_closes_at
    if closes is None or human is None:
        return Window(
            "never",
            False,
            "The customer hasn't written yet",
            "Instagram lets businesses reply only after the customer writes first.",
        )
    if now < closes:
        return Window(
            "open",
            True,
            f"Window closes in {left(closes - now)}",
            "Reply freely until 24 hours after the customer's last message.",
            closes,
            quick_replies=True,
        )
    if now < human:
        return Window(
            "human_agent",
            True,
            f"Human-agent reply, {left(human - now)} left",
            "The 24-hour window has closed. A person may still answer within 7 days of the "
            "customer's last message; automated messages can't be sent.",
            human,
        )
    return Window(
        "closed",
        False,
        "Replies are closed",
        f"The customer last wrote {left(now - conversation.customer_last_message_at)} ago "  # type: ignore[operator]
        "(over 7 days). Instagram allows no reply until they write again.",
        human,
    )


def _from_policy(state: Any, now: datetime) -> Window:
    """Translate the policy's ``WindowState`` into what the composer shows."""
    mode = str(state.mode)
    if mode == "response":
        closes = state.closes_at
        detail = "Reply freely until 24 hours after the customer's last message."
        if state.take_control:
            detail = "Another app holds this thread; sending takes it back to this inbox."
        return Window(
            "open",
            True,
            f"Window closes in {left(closes - now)}" if closes else "Window open",
            detail,
            closes,
            quick_replies=True,
        )
    if mode == "human_agent":
        until = state.human_agent_until
        return Window(
            "human_agent",
            True,
            f"Human-agent reply, {left(until - now)} left" if until else "Human-agent reply",
            "The 24-hour window has closed. A person may still answer within 7 days of the "
            "customer's last message; quick replies and automation can't be used.",
            until,
        )
    code = str(state.code)
    titles = {
        "thread_owned_by_other_app": ("other_app", "Another app is handling this conversation"),
        "no_customer_message": ("never", "The customer hasn't written yet"),
        "awaiting_customer_reply": ("closed", "Waiting for the customer to answer"),
        "human_agent_disabled": ("closed", "The 24-hour window has closed"),
        "account_disconnected": ("closed", "This account is disconnected"),
    }
    state_name, title = titles.get(code, ("closed", "Replies are closed"))
    return Window(
        state_name,
        False,
        title,
        str(state.message) or "Instagram allows no reply until the customer writes again.",
        state.window_closed_at,
    )


# -- sending -----------------------------------------------------------------------------------


def refusal_types() -> tuple[type[BaseException], ...]:
    """Errors whose message tells the agent why nothing was sent."""
    types: list[type[BaseException]] = []
    refused = getattr(policy(), "SendRefused", None)
    if isinstance(refused, type):
        types.append(refused)
    module = outbound()
    for name in ("OutboundContentInvalid", "IdempotencyKeyReused"):
        error = getattr(module, name, None)
        if isinstance(error, type):
            types.append(error)
    return tuple(types)


def _sender(user: Any) -> Any:
    return outbound().Sender.agent(user)  # type: ignore[union-attr]


def send(
    *,
    conversation: Conversation,
    user: Any,
    text: str,
    attachment: dict[str, str] | None,
    quick_replies: list[str],
    idempotency_key: str,
) -> list[Message]:
    """Queue the composer's content: the attachment (if any) first, then the text."""
    module = outbound()
    if module is None or not hasattr(module, "message_send"):
        raise SendUnavailable("Sending from the inbox is not available yet.")
    sent: list[Message] = []
    if attachment:
        content = module.OutboundContent(kind=attachment["type"], url=attachment["url"])
        sent.append(
            module.message_send(
                conversation=conversation,
                sender=_sender(user),
                content=content,
                idempotency_key=f"{idempotency_key}:a",
            )
        )
    if text:
        options = tuple(
            module.QuickReplyOption(title=title[:20], payload=title[:20])
            for title in quick_replies[:13]
        )
        content = module.OutboundContent(kind="text", text=text, quick_replies=options)
        sent.append(
            module.message_send(
                conversation=conversation,
                sender=_sender(user),
                content=content,
                idempotency_key=idempotency_key,
            )
        )
    return sent


def can_retry() -> bool:
    return hasattr(outbound(), "job_replay")


def retry(*, message: Message) -> None:
    """Send a failed message again through its outbox row."""
    module = outbound()
    if module is None or not hasattr(module, "job_replay"):
        raise SendUnavailable("Retrying is not available yet.")
    job = message.outbound_jobs.order_by("-id").first()
    if job is None:
        raise SendUnavailable("This message can't be sent again from here.")
    module.job_replay(job=job)


def private_reply(*, comment: Any, user: Any, text: str) -> Any:
    module = outbound()
    if module is None or not hasattr(module, "private_reply_send"):
        raise SendUnavailable("Private replies are not available yet.")
    return module.private_reply_send(comment=comment, sender=_sender(user), text=text)
