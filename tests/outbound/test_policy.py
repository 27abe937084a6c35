"""The one policy function, over every combination of its inputs."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from messaging.models import WindowOpener
from messaging.policy import (
    AUTOMATED_CONSTRUCTS,
    SENDER_ACTIONS,
    Decision,
    MessageKind,
    Mode,
    PolicySettings,
    Refusal,
    SendContext,
    SenderKind,
    decide,
)

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
ELAPSED = {
    "1h": timedelta(hours=1),
    "23h59": timedelta(hours=23, minutes=59),
    "25h": timedelta(hours=25),
    "6d": timedelta(days=6),
    "8d": timedelta(days=8),
    "never": None,
}
OPENERS = [*WindowOpener.values]
THREAD_KINDS = [k for k in MessageKind if k != MessageKind.PRIVATE_REPLY]


def expected(
    sender: SenderKind,
    kind: MessageKind,
    opener: str,
    elapsed: timedelta | None,
    human_agent_enabled: bool,
    owned: bool,
    take_control: bool,
) -> tuple[Mode, str]:
    """The rules, written out plainly, independent of the implementation."""
    if elapsed is None:
        return Mode.REFUSE, Refusal.NO_CUSTOMER_MESSAGE
    if opener == WindowOpener.COMMENT:
        return Mode.REFUSE, Refusal.AWAITING_CUSTOMER_REPLY
    if elapsed <= timedelta(hours=24):
        outcome = (Mode.RESPONSE, "")
    elif kind in SENDER_ACTIONS:
        return Mode.REFUSE, Refusal.WINDOW_CLOSED
    elif sender not in (SenderKind.HUMAN_AGENT, SenderKind.PARTNER_HUMAN):
        return Mode.REFUSE, Refusal.AUTOMATION_WINDOW_CLOSED
    elif elapsed > timedelta(days=7):
        return Mode.REFUSE, Refusal.WINDOW_CLOSED
    elif not human_agent_enabled:
        return Mode.REFUSE, Refusal.HUMAN_AGENT_DISABLED
    elif kind in AUTOMATED_CONSTRUCTS:
        return Mode.REFUSE, Refusal.KIND_NEEDS_OPEN_WINDOW
    else:
        outcome = (Mode.HUMAN_AGENT, "")
    if owned and not take_control:
        return Mode.REFUSE, Refusal.THREAD_OWNED_BY_OTHER_APP
    return outcome


CASES = list(
    itertools.product(
        list(SenderKind),
        THREAD_KINDS,
        OPENERS,
        list(ELAPSED),
        [False, True],  # human agent enabled
        [False, True],  # another app owns the thread
        [False, True],  # take control allowed
    )
)


def test_the_table_covers_every_combination() -> None:
    assert len(CASES) == 4 * len(THREAD_KINDS) * len(OPENERS) * 6 * 8


def _decide(case: tuple) -> tuple[Decision, tuple[Mode, str]]:  # type: ignore[type-arg]
    sender, kind, opener, elapsed_name, ha, owned, take = case
    elapsed = ELAPSED[elapsed_name]
    ctx = SendContext(
        sender=sender,
        kind=kind,
        now=NOW,
        customer_last_message_at=NOW - elapsed if elapsed is not None else None,
        opener=opener,
        settings=PolicySettings(human_agent_enabled=ha, take_control_allowed=take),
        owned_by_other_app=owned,
        automation_last_at=NOW - timedelta(minutes=5),
    )
    return decide(ctx), expected(sender, kind, opener, elapsed, ha, owned, take)


def test_every_combination_of_sender_opener_time_and_settings() -> None:
    wrong = []
    for case in CASES:
        decision, (mode, code) = _decide(case)
        if (decision.mode, decision.code) != (mode, code):
            wrong.append((case, decision.mode, decision.code, mode, code))
            continue
        elapsed = ELAPSED[case[3]]
        if mode == Mode.REFUSE:
            assert decision.message.endswith("."), case
        if decision.human_agent:
            assert case[0].is_human
            assert timedelta(hours=24) < elapsed <= timedelta(days=7)
            assert decision.human_agent_until == NOW - elapsed + timedelta(days=7)
        if mode != Mode.REFUSE:
            assert decision.take_control == case[5]
    assert wrong == []


@pytest.mark.parametrize(
    ("elapsed", "closed_after", "enabled"),
    [
        (timedelta(hours=25), timedelta(hours=24), False),
        (timedelta(days=8), timedelta(days=7), True),
    ],
)
def test_a_refusal_says_when_the_window_closed(
    elapsed: timedelta, closed_after: timedelta, enabled: bool
) -> None:
    last = NOW - elapsed
    decision = decide(
        SendContext(
            sender=SenderKind.HUMAN_AGENT,
            kind=MessageKind.TEXT,
            now=NOW,
            customer_last_message_at=last,
            settings=PolicySettings(human_agent_enabled=enabled),
        )
    )
    assert decision.mode == Mode.REFUSE
    assert decision.window_closed_at == last + closed_after


def _auto(**kw: object) -> Decision:
    values: dict[str, object] = {
        "sender": SenderKind.AUTOMATION,
        "kind": MessageKind.TEXT,
        "now": NOW,
        "customer_last_message_at": NOW - timedelta(minutes=1),
        **kw,
    }
    return decide(SendContext(**values))  # type: ignore[arg-type]


def test_automation_discloses_at_the_start_after_silence_and_after_a_human() -> None:
    settings = PolicySettings(
        disclosure_text="I'm the Acme bot.", disclosure_silence=timedelta(hours=6)
    )
    start = _auto(settings=settings)
    assert (start.disclosure, start.disclosure_reason) == ("I'm the Acme bot.", "start")
    recent = _auto(settings=settings, automation_last_at=NOW - timedelta(hours=1))
    assert recent.disclosure == ""
    silent = _auto(settings=settings, automation_last_at=NOW - timedelta(hours=7))
    assert silent.disclosure_reason == "silence"
    handback = _auto(
        settings=settings,
        automation_last_at=NOW - timedelta(minutes=10),
        human_since_automation=True,
    )
    assert handback.disclosure_reason == "handback"


@pytest.mark.parametrize("sender", [SenderKind.AUTOMATION, SenderKind.PARTNER_BOT])
def test_the_never_setting_and_humans_carry_no_disclosure(sender: SenderKind) -> None:
    assert _auto(sender=sender).disclosure
    assert _auto(sender=sender, settings=PolicySettings(disclosure_mode="never")).disclosure == ""
    assert _auto(sender=SenderKind.HUMAN_AGENT).disclosure == ""
    assert _auto(sender=sender, kind=MessageKind.TYPING).disclosure == ""


@pytest.mark.parametrize(
    ("age", "answered", "code"),
    [
        (timedelta(hours=1), False, ""),
        (timedelta(days=6, hours=23), False, ""),
        (timedelta(days=7, minutes=1), False, Refusal.COMMENT_TOO_OLD),
        (timedelta(hours=1), True, Refusal.ALREADY_REPLIED),
    ],
)
@pytest.mark.parametrize("sender", list(SenderKind))
def test_private_replies_once_within_seven_days(
    sender: SenderKind, age: timedelta, answered: bool, code: str
) -> None:
    decision = decide(
        SendContext(
            sender=sender,
            kind=MessageKind.PRIVATE_REPLY,
            now=NOW,
            customer_last_message_at=None,
            opener=WindowOpener.COMMENT,
            commented_at=NOW - age,
            comment_answered=answered,
        )
    )
    assert decision.code == code
    assert decision.mode == (Mode.REFUSE if code else Mode.RESPONSE)


def test_a_disconnected_account_sends_nothing() -> None:
    decision = decide(
        SendContext(
            sender=SenderKind.HUMAN_AGENT,
            kind=MessageKind.TEXT,
            now=NOW,
            customer_last_message_at=NOW,
            account_connected=False,
        )
    )
    assert decision.code == Refusal.ACCOUNT_DISCONNECTED
