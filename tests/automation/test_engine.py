"""The rules engine on signed webhook deliveries: what triggers a rule, and what never does."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django_scopes import scope

from accounts.models import InstagramAccount, Tenant
from automation import engine
from automation.models import Rule, RuleRun
from messaging.models import Conversation, ConversationLabel, Message, OutboundJob
from tests.factories import InstagramAccountFactory
from tests.messaging.inbound_support import (
    BUSINESS,
    CUSTOMER,
    deliver,
    envelope,
    item,
    text_message,
)

from .conftest import make_rule

pytestmark = pytest.mark.django_db


@pytest.fixture
def account(tenant: Tenant) -> InstagramAccount:
    return InstagramAccountFactory(tenant=tenant, ig_user_id=BUSINESS, username="acme")


def _now_ms(ago: timedelta = timedelta(0)) -> int:
    return int((time.time() - ago.total_seconds()) * 1000)


def _says(client: Client, mid: str, text: str, ago: timedelta = timedelta(0)) -> None:
    deliver(client, envelope({BUSINESS: [text_message(mid, text, ts=_now_ms(ago))]}))


def _runs(tenant: Tenant) -> list[tuple[str, str, str]]:
    with scope(tenant=tenant):
        return [
            (r.rule.name, r.outcome, r.reason_code)
            for r in RuleRun.objects.select_related("rule").order_by("id")
        ]


def _automated(tenant: Tenant) -> list[str]:
    with scope(tenant=tenant):
        return list(
            Message.objects.filter(sender_kind=Message.SenderKind.AUTOMATION)
            .order_by("id")
            .values_list("text", flat=True)
        )


def _rule(account: InstagramAccount, **values: Any) -> Rule:
    with scope(tenant=account.tenant_id):
        return make_rule(account, **values)


def test_a_keyword_message_fires_its_rule_once_even_when_delivered_twice(
    client: Client, tenant: Tenant, account: InstagramAccount
) -> None:
    _rule(
        account,
        name="Prices",
        keywords=["how much"],
        actions=[{"type": "reply_text", "text": "Prices are on our site."}],
    )
    _says(client, "m1", "Hi, HOW   much is it?")
    _says(client, "m1", "Hi, HOW   much is it?")
    assert _runs(tenant) == [("Prices", "fired", "")]
    assert len(_automated(tenant)) == 1
    assert _automated(tenant)[0].endswith("Prices are on our site.")


def test_no_automation_fires_past_the_window(
    client: Client, tenant: Tenant, account: InstagramAccount
) -> None:
    _rule(account, name="Prices", keywords=["price"])
    # A message Meta delivers only now, written 25 hours ago: the window is closed.
    _says(client, "late", "price?", ago=timedelta(hours=25))
    with scope(tenant=tenant):
        run = RuleRun.objects.get()
        assert (run.outcome, run.reason_code) == ("refused", "automation_window_closed")
        assert "24 hours" in run.reason
        assert not OutboundJob.objects.exists()
    assert _automated(tenant) == []


def test_no_automation_fires_on_echoes_from_the_instagram_app(
    client: Client, tenant: Tenant, account: InstagramAccount
) -> None:
    _rule(account, name="Any", keywords=["hello"], cooldown=timedelta(0))
    _says(client, "m1", "hello")
    echo = item(
        {"message": {"mid": "echo-1", "text": "hello from the shop", "is_echo": True}},
        ts=_now_ms(),
        from_business=True,
    )
    deliver(client, envelope({BUSINESS: [echo]}))
    assert _runs(tenant) == [("Any", "fired", "")]
    with scope(tenant=tenant):
        conversation = Conversation.objects.get()
        # Someone answered from the Instagram app: the conversation is a person's now.
        assert conversation.mode == Conversation.Mode.HUMAN
    _says(client, "m2", "hello?")
    assert _runs(tenant) == [("Any", "fired", ""), ("Any", "skipped", "human_mode")]


def test_an_unnamed_echo_while_our_automated_send_is_in_flight_is_taken_for_ours(
    client: Client, tenant: Tenant, account: InstagramAccount
) -> None:
    _rule(account, name="Any", keywords=["hello"], cooldown=timedelta(0))
    _says(client, "m1", "hello")
    with scope(tenant=tenant):
        # The reply is with Meta: the Send API has not answered with its id yet.
        OutboundJob.objects.update(status=OutboundJob.Status.SENDING)
    echo = item(
        {"message": {"mid": "echo-1", "text": "Thanks for writing!", "is_echo": True}},
        ts=_now_ms(),
        from_business=True,
    )
    deliver(client, envelope({BUSINESS: [echo]}))
    with scope(tenant=tenant):
        assert Conversation.objects.get().mode == Conversation.Mode.AUTOMATION
    _says(client, "m2", "hello again")
    assert _runs(tenant) == [("Any", "fired", ""), ("Any", "fired", "")]


def test_a_postback_or_quick_reply_payload_fires_its_rule(
    client: Client, tenant: Tenant, account: InstagramAccount
) -> None:
    _rule(account, name="Menu", trigger="payload", payload="MENU", cooldown=timedelta(0))
    _rule(account, name="Words", keywords=["menu"], cooldown=timedelta(0))
    tap = item({"postback": {"mid": "pb-1", "title": "Menu", "payload": "MENU"}}, ts=_now_ms())
    quick = item(
        {"message": {"mid": "qr-1", "text": "Menu", "quick_reply": {"payload": "MENU"}}},
        ts=_now_ms(),
    )
    other = item({"postback": {"mid": "pb-2", "title": "Menu", "payload": "OTHER"}}, ts=_now_ms())
    deliver(client, envelope({BUSINESS: [tap]}))
    deliver(client, envelope({BUSINESS: [quick]}))
    deliver(client, envelope({BUSINESS: [other]}))
    # A button's title is not something the customer typed: keyword rules stay out of it.
    assert _runs(tenant) == [("Menu", "fired", ""), ("Menu", "fired", "")]


def test_rules_run_in_position_order_and_stop_after_the_first_that_fired(
    client: Client, tenant: Tenant, account: InstagramAccount
) -> None:
    _rule(account, name="Second", position=2, keywords=["hello"])
    _rule(account, name="First", position=1, keywords=["hello"], stop_after=False)
    _rule(account, name="Welcome", position=0, trigger="new_conversation", stop_after=False)
    _rule(account, name="Never", position=3, keywords=["hello"])
    _says(client, "m1", "hello")
    assert _runs(tenant) == [
        ("Welcome", "fired", ""),
        ("First", "fired", ""),
        ("Second", "fired", ""),
    ]
    _says(client, "m2", "hello")  # not new any more; First and Second are cooling down
    assert _runs(tenant)[3:] == [
        ("First", "skipped", "cooldown"),
        ("Second", "skipped", "cooldown"),
        ("Never", "fired", ""),
    ]


def test_assign_label_and_handover_actions(
    client: Client, tenant: Tenant, account: InstagramAccount, make_member: Any
) -> None:
    member = make_member(tenant)
    _rule(
        account,
        name="Returns",
        keywords=["refund"],
        actions=[
            {"type": "assign", "membership_id": member.pk},
            {"type": "label", "label": "Returns"},
            {"type": "handover"},
        ],
    )
    _says(client, "m1", "I want a refund")
    with scope(tenant=tenant):
        conversation = Conversation.objects.get()
        assert conversation.assignee_id == member.user_id
        assert conversation.mode == Conversation.Mode.HUMAN
        labels = ConversationLabel.objects.filter(conversation=conversation)
        assert list(labels.values_list("label__name", flat=True)) == ["Returns"]
        run = RuleRun.objects.get()
        assert [d["action"] for d in run.done] == ["assign", "label", "handover"]


def test_a_broken_rule_is_recorded_and_never_loses_the_message(
    client: Client, tenant: Tenant, account: InstagramAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    _rule(account, name="Broken", keywords=["hello"], stop_after=False)
    _rule(account, name="Bad text", keywords=["hello"], actions=[{"type": "reply_text"}])

    def explode(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(engine, "message_send", explode)
    _says(client, "m1", "hello")
    with scope(tenant=tenant):
        assert Message.objects.filter(mid="m1").exists()
        runs = {r.rule.name: r for r in RuleRun.objects.select_related("rule")}
    assert (runs["Broken"].outcome, runs["Broken"].reason_code) == ("failed", "error")
    monkeypatch.undo()
    _says(client, "m2", "hello")
    assert _runs(tenant)[-1] == ("Bad text", "failed", "text_required")


def test_a_pattern_that_times_out_is_a_skip(
    client: Client, tenant: Tenant, account: InstagramAccount
) -> None:
    _rule(account, name="Slow", match_mode="regex", pattern=r"(x+x+)+y")
    _says(client, "m1", "x" * 3000)
    assert _runs(tenant) == [("Slow", "skipped", "pattern_timeout")]


def test_an_account_without_rules_costs_one_query(
    tenant: Tenant, account: InstagramAccount, django_assert_num_queries: Any
) -> None:
    with scope(tenant=tenant):
        from tests.outbound.conftest import add_conversation

        conversation = add_conversation(account, CUSTOMER, timedelta(minutes=1))
        message = Message.objects.create(
            tenant=tenant,
            account=account,
            conversation=conversation,
            mid="m1",
            direction=Message.Direction.INBOUND,
            sender_kind=Message.SenderKind.CUSTOMER,
            text="hello",
            sent_at=conversation.customer_last_message_at,
        )
        message = Message.objects.select_related("account", "conversation").get(pk=message.pk)
        with django_assert_num_queries(1):
            engine.message_received(message=message)


# -- matching ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "keywords", "text", "expected"),
    [
        ("contains", ["price"], "What's the PRICE?", True),
        ("contains", ["price"], "priceless", False),
        ("contains", ["how much"], "so, How  Much?", True),
        ("contains", ["straße"], "STRASSE please", True),
        ("contains", ["STRASSE"], "die straße", True),
        ("exact", ["yes"], "  YES ", True),
        ("exact", ["yes"], "yes please", False),
    ],
)
def test_keywords_match_whole_words_case_insensitively(
    mode: str, keywords: list[str], text: str, expected: bool
) -> None:
    rule = Rule(match_mode=mode, keywords=keywords)
    assert (engine.text_matches(rule, text) is engine.Match.YES) is expected


def test_a_pattern_matches_case_insensitively_and_a_bad_one_never_matches() -> None:
    assert (
        engine.text_matches(Rule(match_mode="regex", pattern=r"order\s*#?\d+"), "ORDER #123")
        is engine.Match.YES
    )
    assert engine.text_matches(Rule(match_mode="regex", pattern="(unclosed"), "x") is (
        engine.Match.NO
    )
