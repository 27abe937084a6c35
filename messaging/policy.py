"""Meta's messaging policy, decided in one place before anything is sent.

``decide`` is the one policy function: a pure function of who sends, what, what opened the
customer's window, how long ago the customer last wrote, and the workspace's settings. Every
sender (the inbox, the partner API, automations) reaches it through ``check``, which gathers
those inputs from the database, and the outbound worker asks it again right before calling
Meta (a queued message may have waited past a window).

The rules (Meta's Instagram messaging windows, REFERENCE.md §4.6, §4.7, §10):

- within 24 hours of the customer's last message, anyone may send anything: ``RESPONSE``;
- from 24 hours to 7 days, only people may answer, with the ``HUMAN_AGENT`` tag, and only where
  the workspace turned that on; automations, bots, typing indicators, reactions, quick replies
  and templates are refused;
- after 7 days nothing can be sent until the customer writes again;
- a comment allows exactly one private reply, within 7 days of the comment; a thread opened only
  by a comment takes nothing else until the customer answers;
- another app owning the thread (conversation routing) means taking control first, where the
  workspace allows it, or a refusal;
- automated messages carry the account's disclosure at the start of a conversation, after a
  configurable silence and when a conversation comes back from a person to automation.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from django.db.models import Q
from django.utils import timezone

from accounts.models import InstagramAccount
from messaging.models import (
    Comment,
    Conversation,
    Message,
    MessagingSettings,
    OutboundJob,
    WindowOpener,
)

RESPONSE_WINDOW = timedelta(hours=24)
HUMAN_AGENT_WINDOW = timedelta(days=7)
PRIVATE_REPLY_WINDOW = timedelta(days=7)
DEFAULT_DISCLOSURE = "You're chatting with an automated assistant."


class SenderKind(StrEnum):
    """Who sends, as the policy tells them apart."""

    HUMAN_AGENT = "agent"  # a person in the inbox
    AUTOMATION = "automation"  # the product's own automations
    PARTNER_HUMAN = "partner_human"  # a partner app relaying a person's reply
    PARTNER_BOT = "partner_bot"  # a partner app's bot

    @property
    def is_human(self) -> bool:
        return self in (SenderKind.HUMAN_AGENT, SenderKind.PARTNER_HUMAN)


HUMAN_SENDERS = frozenset({SenderKind.HUMAN_AGENT, SenderKind.PARTNER_HUMAN})
AUTOMATED_SENDERS = frozenset({SenderKind.AUTOMATION, SenderKind.PARTNER_BOT})


class MessageKind(StrEnum):
    TEXT = "text"
    IMAGE = "image"
    VIDEO = "video"
    AUDIO = "audio"
    FILE = "file"
    LIKE_HEART = "like_heart"
    POST_SHARE = "post_share"
    QUICK_REPLIES = "quick_replies"
    GENERIC_TEMPLATE = "generic_template"
    REACTION = "reaction"
    TYPING = "typing"
    MARK_SEEN = "mark_seen"
    PRIVATE_REPLY = "private_reply"


# Not messages: they never carry a tag or a disclosure and need the 24-hour window.
SENDER_ACTIONS = frozenset({MessageKind.REACTION, MessageKind.TYPING, MessageKind.MARK_SEEN})
# Built for automated flows: Meta's HUMAN_AGENT tag is for replies a person writes.
AUTOMATED_CONSTRUCTS = frozenset({MessageKind.QUICK_REPLIES, MessageKind.GENERIC_TEMPLATE})


class Mode(StrEnum):
    RESPONSE = "response"
    HUMAN_AGENT = "human_agent"
    REFUSE = "refuse"


class Refusal(StrEnum):
    """Stable codes of a refused send (the partner API returns them as ``error.code``)."""

    WINDOW_CLOSED = "window_closed"
    AUTOMATION_WINDOW_CLOSED = "automation_window_closed"
    HUMAN_AGENT_DISABLED = "human_agent_disabled"
    KIND_NEEDS_OPEN_WINDOW = "kind_needs_open_window"
    NO_CUSTOMER_MESSAGE = "no_customer_message"
    AWAITING_CUSTOMER_REPLY = "awaiting_customer_reply"
    THREAD_OWNED_BY_OTHER_APP = "thread_owned_by_other_app"
    ALREADY_REPLIED = "already_replied"
    COMMENT_TOO_OLD = "comment_too_old"
    ACCOUNT_DISCONNECTED = "account_disconnected"


class DisclosureMode(StrEnum):
    ALWAYS = "always"
    NEVER = "never"


@dataclass(frozen=True)
class PolicySettings:
    """A workspace's and account's sending settings, already merged."""

    human_agent_enabled: bool = False
    disclosure_mode: str = DisclosureMode.ALWAYS
    disclosure_text: str = DEFAULT_DISCLOSURE
    disclosure_silence: timedelta = timedelta(hours=24)
    take_control_allowed: bool = False


DEFAULT_SETTINGS = PolicySettings()


@dataclass(frozen=True)
class SendContext:
    """Everything ``decide`` looks at. ``now`` is explicit so the function stays pure."""

    sender: SenderKind
    kind: MessageKind
    now: datetime
    customer_last_message_at: datetime | None
    opener: str = WindowOpener.MESSAGE
    settings: PolicySettings = DEFAULT_SETTINGS
    owned_by_other_app: bool = False
    account_connected: bool = True
    # Disclosure history: when automation last spoke here (None: never), and whether a person
    # has answered since.
    automation_last_at: datetime | None = None
    human_since_automation: bool = False
    # Private replies: the comment's time and whether it already has (or awaits) its reply.
    commented_at: datetime | None = None
    comment_answered: bool = False


@dataclass(frozen=True)
class Decision:
    mode: Mode
    code: str = ""
    message: str = ""
    # When the window this send needed closed (refusals), or closes (sends).
    window_closed_at: datetime | None = None
    window_closes_at: datetime | None = None
    human_agent_until: datetime | None = None
    disclosure: str = ""
    disclosure_reason: str = ""  # start, silence, handback
    take_control: bool = False

    @property
    def allowed(self) -> bool:
        return self.mode != Mode.REFUSE

    @property
    def human_agent(self) -> bool:
        return self.mode == Mode.HUMAN_AGENT


class SendRefused(Exception):
    """The policy refused a send; nothing was queued and Meta was not called."""

    def __init__(self, code: str, message: str, window_closed_at: datetime | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.window_closed_at = window_closed_at

    @classmethod
    def from_decision(cls, decision: Decision) -> SendRefused:
        return cls(decision.code, decision.message, decision.window_closed_at)


def _refuse(code: Refusal, message: str, closed_at: datetime | None = None) -> Decision:
    return Decision(mode=Mode.REFUSE, code=code, message=message, window_closed_at=closed_at)


def decide(ctx: SendContext) -> Decision:
    """The policy: send as a response, send with the HUMAN_AGENT tag, or refuse (and why)."""
    if not ctx.account_connected:
        return _refuse(
            Refusal.ACCOUNT_DISCONNECTED,
            "This Instagram account is disconnected. Connect it again to send messages.",
        )
    if ctx.kind == MessageKind.PRIVATE_REPLY:
        decision = _decide_private_reply(ctx)
    else:
        decision = _decide_in_thread(ctx)
        if decision.allowed and ctx.owned_by_other_app:
            if not ctx.settings.take_control_allowed:
                return _refuse(
                    Refusal.THREAD_OWNED_BY_OTHER_APP,
                    "Another app (such as Meta's Inbox) is handling this conversation. Take it "
                    "back there, or allow taking control in the workspace settings.",
                )
            decision = replace(decision, take_control=True)
    if decision.allowed:
        decision = _with_disclosure(ctx, decision)
    return decision


def _decide_private_reply(ctx: SendContext) -> Decision:
    if ctx.comment_answered:
        return _refuse(
            Refusal.ALREADY_REPLIED,
            "This comment already has its private reply: Instagram allows one per comment.",
        )
    if ctx.commented_at is None or ctx.now - ctx.commented_at > PRIVATE_REPLY_WINDOW:
        closed = ctx.commented_at + PRIVATE_REPLY_WINDOW if ctx.commented_at else None
        return _refuse(
            Refusal.COMMENT_TOO_OLD,
            "This comment is more than 7 days old: Instagram allows a private reply only "
            "within 7 days of the comment.",
            closed,
        )
    return Decision(mode=Mode.RESPONSE, window_closes_at=ctx.commented_at + PRIVATE_REPLY_WINDOW)


def _decide_in_thread(ctx: SendContext) -> Decision:
    last = ctx.customer_last_message_at
    if last is None:
        return _refuse(
            Refusal.NO_CUSTOMER_MESSAGE,
            "This customer hasn't written to the account: Instagram lets businesses message only "
            "people who wrote first.",
        )
    if ctx.opener == WindowOpener.COMMENT:
        return _refuse(
            Refusal.AWAITING_CUSTOMER_REPLY,
            "After a private reply to a comment, Instagram allows nothing more until the "
            "customer answers.",
        )
    closes_at = last + RESPONSE_WINDOW
    human_until = last + HUMAN_AGENT_WINDOW
    elapsed = ctx.now - last
    if elapsed <= RESPONSE_WINDOW:
        return Decision(mode=Mode.RESPONSE, window_closes_at=closes_at)
    if ctx.kind in SENDER_ACTIONS:
        return _refuse(
            Refusal.WINDOW_CLOSED,
            "Reactions, typing indicators and read marks can be sent only within 24 hours of "
            "the customer's last message.",
            closes_at,
        )
    if not ctx.sender.is_human:
        return _refuse(
            Refusal.AUTOMATION_WINDOW_CLOSED,
            "Automated messages can be sent only within 24 hours of the customer's last "
            "message. A person can still answer from the inbox.",
            closes_at,
        )
    if elapsed > HUMAN_AGENT_WINDOW:
        return _refuse(
            Refusal.WINDOW_CLOSED,
            "The customer last wrote more than 7 days ago: Instagram allows no reply until they "
            "write again.",
            human_until,
        )
    if not ctx.settings.human_agent_enabled:
        return _refuse(
            Refusal.HUMAN_AGENT_DISABLED,
            "The customer last wrote more than 24 hours ago. Turn on human agent replies in "
            "the workspace settings to answer for up to 7 days.",
            closes_at,
        )
    if ctx.kind in AUTOMATED_CONSTRUCTS:
        return _refuse(
            Refusal.KIND_NEEDS_OPEN_WINDOW,
            "Quick replies and templates can be sent only within 24 hours of the customer's "
            "last message; send a plain reply instead.",
            closes_at,
        )
    return Decision(
        mode=Mode.HUMAN_AGENT, window_closes_at=closes_at, human_agent_until=human_until
    )


def _with_disclosure(ctx: SendContext, decision: Decision) -> Decision:
    if (
        ctx.sender not in AUTOMATED_SENDERS
        or ctx.kind in SENDER_ACTIONS
        or ctx.settings.disclosure_mode != DisclosureMode.ALWAYS
    ):
        return decision
    reason = ""
    if ctx.automation_last_at is None:
        reason = "start"
    elif ctx.human_since_automation:
        reason = "handback"
    elif ctx.now - ctx.automation_last_at >= ctx.settings.disclosure_silence:
        reason = "silence"
    if not reason:
        return decision
    text = ctx.settings.disclosure_text.strip() or DEFAULT_DISCLOSURE
    return replace(decision, disclosure=text, disclosure_reason=reason)


# -- inputs from the database --------------------------------------------------------------


def settings_for(account: InstagramAccount) -> PolicySettings:
    """The account's settings merged over the workspace's, over the defaults."""
    rows = {
        row.account_id: row
        for row in MessagingSettings.objects.filter(tenant_id=account.tenant_id).filter(
            Q(account__isnull=True) | Q(account_id=account.pk)
        )
    }
    merged = DEFAULT_SETTINGS
    for row in (rows.get(None), rows.get(account.pk)):
        if row is None:
            continue
        if row.human_agent_enabled is not None:
            merged = replace(merged, human_agent_enabled=row.human_agent_enabled)
        if row.disclosure_mode:
            merged = replace(merged, disclosure_mode=row.disclosure_mode)
        if row.disclosure_text.strip():
            merged = replace(merged, disclosure_text=row.disclosure_text.strip())
        if row.disclosure_silence is not None:
            merged = replace(merged, disclosure_silence=row.disclosure_silence)
        if row.take_control_allowed is not None:
            merged = replace(merged, take_control_allowed=row.take_control_allowed)
    return merged


# Settings as the sending workers see them: read once per account every few seconds, not once
# per send. A change made in this process takes effect at once (``forget_settings``); one made
# elsewhere within ``SETTINGS_TTL`` seconds.
SETTINGS_TTL = 5.0
_settings_cache: dict[tuple[int, int], tuple[float, PolicySettings]] = {}
_settings_lock = threading.Lock()


def settings_for_sending(account: InstagramAccount) -> PolicySettings:
    """``settings_for``, remembered for ``SETTINGS_TTL`` seconds per account."""
    key = (account.tenant_id, account.pk)
    now = time.monotonic()
    cached = _settings_cache.get(key)
    if cached is not None and cached[0] > now:
        return cached[1]
    merged = settings_for(account)
    with _settings_lock:
        _settings_cache[key] = (now + SETTINGS_TTL, merged)
    return merged


def forget_settings(tenant_id: int | None = None) -> None:
    """Drop remembered settings (of one workspace, or all): the next send reads them again."""
    with _settings_lock:
        for key in list(_settings_cache):
            if tenant_id is None or key[0] == tenant_id:
                del _settings_cache[key]


_LIVE = [s for s in OutboundJob.Status.values if s not in ("failed", "dead")]


def _disclosure_history(conversation: Conversation) -> tuple[datetime | None, bool]:
    jobs = OutboundJob.objects.filter(
        conversation=conversation, action=OutboundJob.Action.MESSAGE, status__in=_LIVE
    )
    last_automated = jobs.filter(sender_kind__in=list(AUTOMATED_SENDERS)).order_by("-id").first()
    if last_automated is None:
        return None, False
    human_since = (
        jobs.filter(sender_kind__in=list(HUMAN_SENDERS), id__gt=last_automated.pk).exists()
        or Message.objects.filter(
            conversation=conversation,
            direction=Message.Direction.OUTBOUND,
            sender_kind=Message.SenderKind.EXTERNAL,
            sent_at__gt=last_automated.created_at,
        ).exists()
    )
    return last_automated.created_at, human_since


def check(
    *,
    conversation: Conversation | None,
    sender: SenderKind | str,
    kind: MessageKind | str,
    account: InstagramAccount | None = None,
    comment: Comment | None = None,
    comment_answered: bool = False,
    now: datetime | None = None,
    settings: PolicySettings | None = None,
    disclosure: bool = True,
) -> Decision:
    """Gather the inputs of one send from the database and ``decide`` it.

    ``settings`` given (already merged) saves reading them; ``disclosure=False`` skips the
    disclosure history, for a caller that settled the disclosure earlier (the worker re-asking
    at send time: the message was written with its disclosure when it was queued). The windows,
    the thread's owner and the account's state are always decided afresh.
    """
    sender = SenderKind(sender)
    kind = MessageKind(kind)
    now = now or timezone.now()
    if account is None:
        holder = conversation if conversation is not None else comment
        if holder is None:
            raise ValueError("a send needs a conversation or a comment")
        account = holder.account
    automation_last_at: datetime | None = None
    human_since = False
    if (
        disclosure
        and conversation is not None
        and sender in AUTOMATED_SENDERS
        and kind not in SENDER_ACTIONS
    ):
        automation_last_at, human_since = _disclosure_history(conversation)
    ctx = SendContext(
        sender=sender,
        kind=kind,
        now=now,
        customer_last_message_at=(
            conversation.customer_last_message_at if conversation is not None else None
        ),
        opener=(conversation.window_opened_by or WindowOpener.MESSAGE)
        if conversation is not None
        else WindowOpener.COMMENT,
        settings=settings if settings is not None else settings_for(account),
        owned_by_other_app=bool(conversation is not None and conversation.owned_by_other_app),
        account_connected=account.status != InstagramAccount.Status.DISCONNECTED,
        automation_last_at=automation_last_at,
        human_since_automation=human_since,
        commented_at=comment.commented_at if comment is not None else None,
        comment_answered=comment_answered
        or bool(comment is not None and comment.private_reply_at is not None),
    )
    return decide(ctx)


@dataclass(frozen=True)
class WindowState:
    """What the composer shows: can this sender answer now, how, and until when."""

    mode: Mode
    closes_at: datetime | None
    human_agent_until: datetime | None
    code: str = ""
    message: str = ""
    window_closed_at: datetime | None = None
    take_control: bool = False

    @property
    def can_send(self) -> bool:
        return self.mode != Mode.REFUSE


def window_state(
    conversation: Conversation, sender_kind: SenderKind | str, *, now: datetime | None = None
) -> WindowState:
    """The policy's answer for a plain text reply by ``sender_kind`` right now."""
    decision = check(conversation=conversation, sender=sender_kind, kind=MessageKind.TEXT, now=now)
    last = conversation.customer_last_message_at
    return WindowState(
        mode=decision.mode,
        closes_at=last + RESPONSE_WINDOW if last else None,
        human_agent_until=last + HUMAN_AGENT_WINDOW if last else None,
        code=decision.code,
        message=decision.message,
        window_closed_at=decision.window_closed_at,
        take_control=decision.take_control,
    )
