"""Automation rules against the Meta sandbox: what the customer actually receives."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from automation import tasks
from automation.models import RuleRun
from messaging.models import Conversation, Message, OutboundJob
from messaging.policy import DEFAULT_DISCLOSURE
from messaging.services import teamwork
from messaging.services.outbound import OutboundContent, Sender, message_send
from tests.factories import MembershipFactory
from webhooks.partner_delivery import signature_verify

from .conftest import ACME_POST, ACME_REEL, Bot, Meta, closed_now_hours, make_rule, set_hours

Drive = Any


def _runs(**filters: Any) -> list[RuleRun]:
    return list(RuleRun.objects.filter(**filters).order_by("id"))


def _alice(meta: Meta) -> Conversation:
    return Conversation.objects.get(account=meta.world.acme, contact__igsid="6000000000100001")


def test_keyword_comment_gets_exactly_one_private_reply_with_disclosure(
    meta: Meta, drive: Drive
) -> None:
    rule = make_rule(
        meta.world.acme,
        name="Price list",
        trigger="comment",
        media_id=ACME_POST,
        keywords=["price"],
        actions=[{"type": "private_reply", "text": "Here is our price list!"}],
    )
    meta.comments("bob", ACME_POST, "What's the PRICE of this?")
    meta.comments("carla", ACME_POST, "Love it")  # no keyword: nothing
    meta.comments("dmitri", ACME_REEL, "price please")  # another post: nothing
    drive(meta.world.acme)
    meta.deliver()  # whatever Meta sends back about our reply triggers nothing
    drive(meta.world.acme)

    assert [m["text"] for m in meta.received("bob")] == [
        f"{DEFAULT_DISCLOSURE}\n\nHere is our price list!"
    ]
    assert meta.received("carla") == []
    assert meta.received("dmitri") == []
    [run] = _runs(rule=rule)
    assert run.outcome == RuleRun.Outcome.FIRED
    assert run.comment is not None
    assert run.customer_igsid == run.comment.from_id != ""
    assert run.done == [{"action": "private_reply", "job_id": run.done[0]["job_id"]}]
    job = OutboundJob.objects.get(pk=run.done[0]["job_id"])
    assert job.status == OutboundJob.Status.SENT


def test_story_mention_gets_its_greeting_once_per_cooldown(meta: Meta, drive: Drive) -> None:
    rule = make_rule(
        meta.world.acme,
        name="Mention thanks",
        trigger="story_mention",
        cooldown=timedelta(hours=1),
        actions=[{"type": "reply_text", "text": "Thanks for the mention!"}],
    )
    meta.says("alice", kind="story_mention")
    meta.says("alice", kind="story_mention")
    drive(meta.world.acme)
    greetings = [m["text"] for m in meta.received("alice")]
    assert greetings == [f"{DEFAULT_DISCLOSURE}\n\nThanks for the mention!"]
    runs = _runs(rule=rule)
    assert [(r.outcome, r.reason_code) for r in runs] == [
        (RuleRun.Outcome.FIRED, ""),
        (RuleRun.Outcome.SKIPPED, "cooldown"),
    ]

    # The cooldown is over: the next mention is greeted again.
    RuleRun.objects.filter(pk=runs[0].pk).update(created_at=timezone.now() - timedelta(hours=2))
    meta.says("alice", kind="story_mention")
    drive(meta.world.acme)
    assert [m["text"] for m in meta.received("alice")][1:] == ["Thanks for the mention!"]


def test_message_out_of_hours_gets_the_away_message(meta: Meta, drive: Drive) -> None:
    set_hours(meta.world.acme, closed_now_hours(), tz="Europe/Lisbon")
    make_rule(
        meta.world.acme,
        name="Away",
        trigger="outside_hours",
        actions=[{"type": "reply_text", "text": "We're closed now; we answer from 9:00."}],
    )
    meta.says("alice", text="Are you open?")
    drive(meta.world.acme)
    assert [m["text"] for m in meta.received("alice")] == [
        f"{DEFAULT_DISCLOSURE}\n\nWe're closed now; we answer from 9:00."
    ]


def test_message_within_hours_gets_no_away_message(meta: Meta, drive: Drive) -> None:
    every_day = {d: [["00:00", "24:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat")}
    set_hours(meta.world.acme, {**every_day, "sun": [["00:00", "24:00"]]})
    rule = make_rule(meta.world.acme, trigger="outside_hours")
    meta.says("alice", text="Are you open?")
    drive(meta.world.acme)
    assert meta.received("alice") == []
    assert _runs(rule=rule) == []


def test_partner_bot_answers_through_its_callback_and_the_reply_is_sent(
    meta: Meta,
    drive: Drive,
    bot: Bot,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    rule = make_rule(
        meta.world.acme,
        name="Order bot",
        trigger="keyword",
        keywords=["order"],
        actions=[{"type": "partner_bot", "url": bot.url}],
        bot_secret="bot-secret-1",
    )
    bot.answers.append(
        (
            200,
            {
                "messages": [
                    {
                        "text": "Your order ships tomorrow.",
                        "quick_replies": [{"title": "Thanks", "payload": "THANKS"}],
                    }
                ],
                "handover": False,
            },
        )
    )
    queued: list[tuple[Any, ...]] = []
    monkeypatch.setattr(
        tasks.rule_bot_call, "apply_async", lambda args, **_: queued.append(tuple(args))
    )
    with django_capture_on_commit_callbacks(execute=True):
        meta.says("alice", text="Where is my order?")
    [run] = _runs(rule=rule)
    assert run.outcome == RuleRun.Outcome.PENDING
    assert queued == [(meta.world.tenant.pk, run.pk)]

    tasks.rule_bot_call(*queued[0])
    drive(meta.world.acme)

    [(headers, raw)] = bot.requests
    assert signature_verify(secret="bot-secret-1", header=headers["x-relay-signature"], body=raw)
    asked = bot.bodies()[0]
    assert asked["rule"] == {"id": rule.pk, "name": "Order bot"}
    assert asked["message"]["text"] == "Where is my order?"
    assert asked["contact"]["igsid"] == "6000000000100001"
    [reply] = meta.received("alice")
    assert reply["text"] == f"{DEFAULT_DISCLOSURE}\n\nYour order ships tomorrow."
    run.refresh_from_db()
    assert run.outcome == RuleRun.Outcome.FIRED
    sent = Message.objects.get(pk=run.done[0]["message_id"])
    assert (sent.sender_kind, sent.sender_label) == (Message.SenderKind.PARTNER, "Order bot")


def test_agent_reply_stops_the_automation_for_that_conversation(meta: Meta, drive: Drive) -> None:
    rule = make_rule(
        meta.world.acme,
        name="Hello",
        keywords=["hello"],
        cooldown=timedelta(0),
        actions=[{"type": "reply_text", "text": "Hi! How can we help?"}],
    )
    meta.says("alice", text="hello")
    drive(meta.world.acme)
    agent = MembershipFactory(tenant=meta.world.tenant)
    message_send(
        conversation=_alice(meta),
        sender=Sender.agent(agent.user),
        content=OutboundContent(kind="text", text="Dana here, I'll take it from here."),
    )
    assert _alice(meta).mode == Conversation.Mode.HUMAN
    meta.says("alice", text="hello again")
    drive(meta.world.acme)
    assert [m["text"] for m in meta.received("alice")] == [
        f"{DEFAULT_DISCLOSURE}\n\nHi! How can we help?",
        "Dana here, I'll take it from here.",
    ]
    assert [(r.outcome, r.reason_code) for r in _runs(rule=rule)] == [
        (RuleRun.Outcome.FIRED, ""),
        (RuleRun.Outcome.SKIPPED, "human_mode"),
    ]

    # Resolving hands the conversation back: automation answers again, disclosing itself.
    teamwork.conversation_resolve(conversation=_alice(meta), actor=agent.user)
    assert _alice(meta).mode == Conversation.Mode.AUTOMATION
    meta.says("alice", text="hello, me again")
    drive(meta.world.acme)
    assert [m["text"] for m in meta.received("alice")][2:] == [
        f"{DEFAULT_DISCLOSURE}\n\nHi! How can we help?"
    ]


def test_automation_never_answers_its_own_messages(meta: Meta, drive: Drive) -> None:
    # The reply itself says "order": if its echo triggered rules, this would loop.
    rule = make_rule(
        meta.world.acme,
        keywords=["order"],
        cooldown=timedelta(0),
        actions=[{"type": "reply_text", "text": "About your order: it is on its way."}],
    )
    meta.says("alice", text="my order?")
    for _ in range(3):
        drive(meta.world.acme)
        meta.deliver()  # echoes of our own sends
    assert len(meta.received("alice")) == 1
    assert len(_runs(rule=rule)) == 1
    assert _alice(meta).mode == Conversation.Mode.AUTOMATION


def test_nothing_fires_while_another_app_owns_the_thread(meta: Meta, drive: Drive) -> None:
    rule = make_rule(meta.world.acme, keywords=["hello"])
    meta.sandbox.control("POST", "threads/owner", {"account": "acme.store", "customer": "alice"})
    meta.deliver()
    meta.says("alice", text="hello")
    drive(meta.world.acme)
    assert meta.received("alice") == []
    [run] = _runs(rule=rule)
    assert (run.outcome, run.reason_code) == (
        RuleRun.Outcome.SKIPPED,
        "thread_owned_by_other_app",
    )
