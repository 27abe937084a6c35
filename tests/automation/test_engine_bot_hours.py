"""The partner bot call (retries, failures, the sweep) and business hours."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone
from django_scopes import scope

from accounts.models import InstagramAccount, Tenant
from automation import bot as bot_calls
from automation import hours, tasks
from automation.models import Rule, RuleRun
from messaging.models import Conversation, Message
from tests.factories import InstagramAccountFactory
from tests.outbound.conftest import add_conversation

from .conftest import Bot, make_rule

# -- the partner bot ---------------------------------------------------------------------------


@pytest.fixture
def pending(tenant: Tenant, bot: Bot) -> RuleRun:
    account: InstagramAccount = InstagramAccountFactory(tenant=tenant)
    with scope(tenant=tenant):
        conversation = add_conversation(account, "6000000000100001", timedelta(minutes=1))
        message = Message.objects.create(
            tenant=tenant,
            account=account,
            conversation=conversation,
            mid="m1",
            direction=Message.Direction.INBOUND,
            sender_kind=Message.SenderKind.CUSTOMER,
            text="order status?",
            sent_at=timezone.now(),
        )
        rule: Rule = make_rule(
            account,
            name="Bot",
            actions=[{"type": "partner_bot", "url": bot.url}],
            bot_secret="s",
        )
        return RuleRun.objects.create(
            tenant=tenant,
            rule=rule,
            account=account,
            conversation=conversation,
            contact=conversation.contact,
            customer_igsid="6000000000100001",
            source=f"message:{message.pk}",
            outcome=RuleRun.Outcome.PENDING,
        )


@pytest.fixture
def retries(monkeypatch: pytest.MonkeyPatch, settings: Any) -> list[tuple[Any, ...]]:
    settings.AUTOMATION_BOT_RETRY_DELAYS = (0.01, 0.01)
    queued: list[tuple[Any, ...]] = []
    monkeypatch.setattr(
        tasks.rule_bot_call, "apply_async", lambda args, **_: queued.append(tuple(args))
    )
    return queued


@pytest.mark.django_db
def test_an_unreachable_bot_is_retried_then_the_run_fails_with_a_reason(
    tenant: Tenant, pending: RuleRun, bot: Bot, retries: list[tuple[Any, ...]]
) -> None:
    bot.answers.extend([(503, {}), (503, {}), (500, {})])
    tasks.rule_bot_call(tenant.pk, pending.pk)
    while retries:
        tasks.rule_bot_call(*retries.pop(0))
    assert len(bot.requests) == 3
    with scope(tenant=tenant):
        pending.refresh_from_db()
    assert (pending.outcome, pending.reason_code) == ("failed", "bot_unavailable")
    assert pending.reason == "The bot answered HTTP 500."


@pytest.mark.django_db
def test_a_bot_that_recovers_is_answered_on_retry_and_can_hand_over(
    tenant: Tenant, pending: RuleRun, bot: Bot, retries: list[tuple[Any, ...]]
) -> None:
    bot.answers.extend(
        [(502, {}), (200, {"messages": [{"text": "A person will help"}], "handover": True})]
    )
    tasks.rule_bot_call(tenant.pk, pending.pk)
    tasks.rule_bot_call(*retries.pop(0))
    with scope(tenant=tenant):
        pending.refresh_from_db()
        assert pending.outcome == "fired"
        assert Conversation.objects.get().mode == Conversation.Mode.HUMAN
        assert [d["action"] for d in pending.done] == ["partner_bot", "handover"]


@pytest.mark.django_db
def test_a_run_whose_source_is_not_a_message_id_asks_the_bot_without_a_message(
    tenant: Tenant, pending: RuleRun, bot: Bot, retries: list[tuple[Any, ...]]
) -> None:
    # "²" passes str.isdigit() but not int().
    with scope(tenant=tenant):
        RuleRun.objects.filter(pk=pending.pk).update(source="message:\u00b2")
    tasks.rule_bot_call(tenant.pk, pending.pk)
    (body,) = bot.bodies()
    assert body["message"] is None
    assert body["conversation"] == {"id": pending.conversation_id}
    with scope(tenant=tenant):
        pending.refresh_from_db()
    assert pending.outcome == "fired"


@pytest.mark.django_db
def test_an_invalid_bot_answer_fails_without_retry(
    tenant: Tenant, pending: RuleRun, bot: Bot, retries: list[tuple[Any, ...]]
) -> None:
    bot.answers.append((200, {"messages": [{"text": ""}]}))
    tasks.rule_bot_call(tenant.pk, pending.pk)
    assert retries == []
    with scope(tenant=tenant):
        pending.refresh_from_db()
    assert (pending.outcome, pending.reason_code) == ("failed", "bot_answer_invalid")


@pytest.mark.django_db
def test_the_bot_is_not_asked_once_a_person_took_the_conversation(
    tenant: Tenant, pending: RuleRun, bot: Bot
) -> None:
    with scope(tenant=tenant):
        Conversation.objects.update(mode=Conversation.Mode.HUMAN)
    tasks.rule_bot_call(tenant.pk, pending.pk)
    assert bot.requests == []
    with scope(tenant=tenant):
        pending.refresh_from_db()
    assert (pending.outcome, pending.reason_code) == ("skipped", "human_mode")


@pytest.mark.django_db
def test_the_sweep_asks_again_for_runs_whose_task_was_lost(
    tenant: Tenant, pending: RuleRun, retries: list[tuple[Any, ...]]
) -> None:
    assert tasks.sweep_pending_runs() == 0  # just created: its task may still be on its way
    with scope(tenant=tenant):
        RuleRun.objects.filter(pk=pending.pk).update(
            created_at=timezone.now() - timedelta(minutes=10)
        )
    assert tasks.sweep_pending_runs() == 1
    assert retries == [(tenant.pk, pending.pk)]
    with scope(tenant=tenant):
        RuleRun.objects.filter(pk=pending.pk).update(created_at=timezone.now() - timedelta(days=2))
    assert tasks.sweep_pending_runs() == 0
    with scope(tenant=tenant):
        pending.refresh_from_db()
    assert (pending.outcome, pending.reason_code) == ("failed", "bot_unavailable")


def test_the_bot_answer_is_checked() -> None:
    answer = bot_calls.answer_parse(
        b'{"messages": [{"text": "Hi", "quick_replies": [{"title": "Yes", "payload": "Y"}]}]}'
    )
    assert answer.messages[0].quick_replies[0].payload == "Y"
    assert answer.handover is False
    for raw in (b"nope", b"[]", b'{"messages": [{"x": 1}]}', b'{"messages": "hi"}'):
        with pytest.raises(bot_calls.BotAnswerInvalid):
            bot_calls.answer_parse(raw)


# -- business hours ----------------------------------------------------------------------------

WEEKDAYS = {"mon": [["09:00", "17:30"]], "fri": [["22:00", "02:00"]]}


@pytest.mark.parametrize(
    ("moment", "tz", "is_open"),
    [
        (datetime(2026, 6, 1, 8, 0, tzinfo=UTC), "Europe/Lisbon", True),  # Mon 09:00 Lisbon
        (datetime(2026, 6, 1, 7, 59, tzinfo=UTC), "Europe/Lisbon", False),
        (datetime(2026, 6, 1, 16, 30, tzinfo=UTC), "Europe/Lisbon", False),  # 17:30 is closed
        (datetime(2026, 6, 5, 23, 0, tzinfo=UTC), "UTC", True),  # Fri late
        (datetime(2026, 6, 6, 1, 59, tzinfo=UTC), "UTC", True),  # past midnight into Sat
        (datetime(2026, 6, 6, 2, 0, tzinfo=UTC), "UTC", False),
        (datetime(2026, 6, 2, 12, 0, tzinfo=UTC), "Not/AZone", False),  # read in UTC
    ],
)
def test_business_hours_in_the_accounts_time_zone(moment: datetime, tz: str, is_open: bool) -> None:
    assert hours.is_open(hours=WEEKDAYS, timezone_name=tz, at=moment) is is_open
    assert hours.is_outside(hours=WEEKDAYS, timezone_name=tz, at=moment) is not is_open


def test_a_stored_time_that_is_not_ascii_digits_is_no_span() -> None:
    # "²" passes str.isdigit() but not int(); rows written before hours were checked may hold it.
    stored = {"mon": [["\u00b29:00", "17:00"], ["09:00", "1\u2460:00"], ["12:00", "13:00"]]}
    assert hours.spans_of(stored, "mon") == [(12 * 60, 13 * 60)]


def test_no_hours_is_never_outside_them() -> None:
    moment = datetime(2026, 6, 1, 3, 0, tzinfo=UTC)
    empties: list[Any] = [{}, {"mon": []}, {"mon": [["bad", "x"]]}, None]
    for empty in empties:
        assert hours.is_outside(hours=empty, timezone_name="UTC", at=moment) is False
