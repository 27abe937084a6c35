"""Every kind reaches the customer through the sandbox; the policy decides before Meta is called;
errors end where they should. The outbox runs in this process (``drive``)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from django.utils import timezone

from accounts.models import InstagramAccount
from integrations.meta.sandbox.testing import RunningSandbox
from messaging import outbox, policy
from messaging.models import Message, OutboundJob, Reaction, SendAttempt
from messaging.policy import Refusal, SenderKind, SendRefused
from messaging.services import outbound
from messaging.services.outbound import (
    OutboundContent,
    OutboundContentInvalid,
    QuickReplyOption,
    Sender,
    TemplateButton,
    TemplateCard,
)
from tests.factories import UserFactory
from tests.outbound.conftest import World, add_comment

Drive = Callable[..., dict[str, int]]


def _agent() -> Sender:
    return Sender.agent(UserFactory())


def _graph_calls(sandbox: RunningSandbox) -> list[str]:
    """Wrap the sandbox to count the Graph calls it answers."""
    calls: list[str] = []
    original = sandbox.service.handle

    def counting(req: Any) -> Any:
        if not req.path.startswith("/_sandbox"):
            calls.append(f"{req.method} {req.path}")
        return original(req)

    sandbox.service.handle = counting  # type: ignore[method-assign]
    return calls


KINDS = [
    OutboundContent(kind="text", text="Hi Alice, your order shipped."),
    OutboundContent(kind="image", url="https://cdn.example.com/a.png"),
    OutboundContent(kind="video", url="https://cdn.example.com/a.mp4"),
    OutboundContent(kind="audio", url="https://cdn.example.com/a.m4a"),
    OutboundContent(kind="file", url="https://cdn.example.com/invoice.pdf"),
    OutboundContent(kind="like_heart"),
    OutboundContent(kind="post_share", media_id="17900000000000001"),
    OutboundContent(
        kind="text",
        text="Pick a size",
        quick_replies=(QuickReplyOption("S", "SIZE_S"), QuickReplyOption("M", "SIZE_M")),
    ),
    OutboundContent(
        kind="generic_template",
        elements=(
            TemplateCard(
                title="Blue tee",
                subtitle="$20",
                buttons=(
                    TemplateButton(type="web_url", title="View", url="https://shop.example.com"),
                    TemplateButton(type="postback", title="Buy", payload="BUY"),
                ),
            ),
        ),
    ),
]


def test_every_kind_reaches_the_customer(
    world: World, sandbox: RunningSandbox, drive: Drive
) -> None:
    alice = world.conversation("alice")
    sender = _agent()
    messages = [outbound.message_send(conversation=alice, sender=sender, content=c) for c in KINDS]
    assert {m.status for m in messages} == {Message.Status.QUEUED}
    drive(world.acme)
    for m in messages:
        m.refresh_from_db()
        assert (m.status, m.error_message) == (Message.Status.SENT, "")
        assert m.mid.startswith("aWdf")
    got = [r for r in sandbox.received("alice", account="acme.store") if r.get("mid")]
    mids = [r["mid"] for r in got]
    assert mids[-len(messages) :] == [m.mid for m in messages]


def test_uploaded_attachment_reaches_the_customer(
    world: World, sandbox: RunningSandbox, drive: Drive
) -> None:
    attachment_id = outbound.attachment_upload(
        account=world.acme,
        kind="image",
        filename="photo.png",
        content=b"\x89PNG fake",
        content_type="image/png",
    )
    message = outbound.message_send(
        conversation=world.conversation("alice"),
        sender=_agent(),
        content=OutboundContent(kind="image", attachment_id=attachment_id),
    )
    drive(world.acme)
    message.refresh_from_db()
    assert message.status == Message.Status.SENT
    assert sandbox.received("alice", account="acme.store")[-1]["mid"] == message.mid


def test_reaction_typing_and_seen_reach_the_customer(
    world: World, sandbox: RunningSandbox, drive: Drive
) -> None:
    got = sandbox.customer("alice", "send", account="acme.store", text="Is this in stock?")
    alice = world.conversation("alice")
    theirs = Message.objects.create(
        tenant=world.tenant,
        account=world.acme,
        conversation=alice,
        mid=got["mid"],
        direction=Message.Direction.INBOUND,
        sender_kind=Message.SenderKind.CUSTOMER,
        text="Is this in stock?",
        sent_at=alice.customer_last_message_at,
    )
    sender = _agent()
    outbound.sender_action_send(conversation=alice, sender=sender, action="typing_on")
    outbound.sender_action_send(conversation=alice, sender=sender, action="mark_seen")
    outbound.reaction_send(message=theirs, sender=sender, reaction="love")
    drive(world.acme)
    kinds = [
        r.get("type") or r.get("kind") for r in sandbox.received("alice", account="acme.store")
    ]
    assert {"typing_on", "mark_seen", "react"} <= set(kinds), kinds
    reaction = Reaction.objects.get(message_mid=theirs.mid, actor=Reaction.Actor.BUSINESS)
    assert reaction.reaction == "love"


def test_closed_window_is_refused_before_meta_is_called(
    world: World, sandbox: RunningSandbox
) -> None:
    calls = _graph_calls(sandbox)
    carla = world.conversation("carla")
    with pytest.raises(SendRefused) as refused:
        outbound.message_send(
            conversation=carla, sender=_agent(), content=OutboundContent(kind="text", text="Hi")
        )
    assert refused.value.code == Refusal.WINDOW_CLOSED
    assert refused.value.window_closed_at == carla.customer_last_message_at + timedelta(days=7)
    assert calls == []
    assert not Message.objects.filter(conversation=carla).exists()
    assert not OutboundJob.objects.exists()


@pytest.mark.parametrize("enabled", [True, False])
def test_human_agent_tag_only_for_people_between_24_hours_and_7_days(
    world: World, sandbox: RunningSandbox, drive: Drive, enabled: bool
) -> None:
    outbound.messaging_settings_update(tenant_id=world.tenant.pk, human_agent_enabled=enabled)
    bob, alice = world.conversation("bob"), world.conversation("alice")
    text = OutboundContent(kind="text", text="Following up on your return.")
    with pytest.raises(SendRefused) as bot:
        outbound.message_send(
            conversation=bob, sender=Sender.automation("Returns bot"), content=text
        )
    assert bot.value.code == Refusal.AUTOMATION_WINDOW_CLOSED
    if not enabled:
        with pytest.raises(SendRefused) as off:
            outbound.message_send(conversation=bob, sender=_agent(), content=text)
        assert off.value.code == Refusal.HUMAN_AGENT_DISABLED
        return
    late = outbound.message_send(conversation=bob, sender=_agent(), content=text)
    fresh = outbound.message_send(
        conversation=alice, sender=_agent(), content=OutboundContent(kind="text", text="Hello")
    )
    drive(world.acme)
    tags = {m.mid: m.tag for m in sandbox.sandbox.world.messages.values()}
    late.refresh_from_db()
    fresh.refresh_from_db()
    assert tags[late.mid] == "HUMAN_AGENT"
    assert tags[fresh.mid] is None


def test_second_private_reply_is_refused_with_its_reason(
    world: World, sandbox: RunningSandbox, drive: Drive
) -> None:
    comment = add_comment(world.acme, "17950000000000001", timedelta(hours=1))
    outbound.private_reply_send(comment=comment, sender=_agent(), text="Thanks! Details in DM.")
    with pytest.raises(SendRefused) as queued_twice:
        outbound.private_reply_send(comment=comment, sender=_agent(), text="Again")
    assert queued_twice.value.code == Refusal.ALREADY_REPLIED
    drive(world.acme)
    comment.refresh_from_db()
    assert comment.private_reply_at is not None
    assert comment.private_reply is not None
    assert comment.private_reply.conversation.contact.igsid  # the commenter's thread
    assert sandbox.received("dmitri", account="acme.store")[-1]["text"] == "Thanks! Details in DM."
    with pytest.raises(SendRefused) as again:
        outbound.private_reply_send(comment=comment, sender=_agent(), text="Again")
    assert again.value.code == Refusal.ALREADY_REPLIED
    assert "one per comment" in again.value.message


def test_old_comment_is_refused(world: World) -> None:
    comment = add_comment(world.acme, "17950000000000002", timedelta(days=8))
    with pytest.raises(SendRefused) as refused:
        outbound.private_reply_send(comment=comment, sender=_agent(), text="Late")
    assert refused.value.code == Refusal.COMMENT_TOO_OLD


def test_text_over_1000_bytes_is_refused_clearly(world: World) -> None:
    with pytest.raises(OutboundContentInvalid) as invalid:
        outbound.message_send(
            conversation=world.conversation("alice"),
            sender=_agent(),
            content=OutboundContent(kind="text", text="é" * 501),
        )
    assert invalid.value.code == "text_too_long"
    assert "1002" in invalid.value.message


def test_automation_carries_the_disclosure_once(
    world: World, sandbox: RunningSandbox, drive: Drive
) -> None:
    outbound.messaging_settings_update(
        tenant_id=world.tenant.pk, account=world.acme, disclosure_text="I'm the Acme bot."
    )
    alice = world.conversation("alice")
    bot = Sender.automation("Order bot")
    first = outbound.message_send(
        conversation=alice, sender=bot, content=OutboundContent("text", "Your order shipped.")
    )
    second = outbound.message_send(
        conversation=alice, sender=bot, content=OutboundContent("text", "Anything else?")
    )
    outbound.message_send(
        conversation=alice, sender=_agent(), content=OutboundContent("text", "Hi, Dana here.")
    )
    back = outbound.message_send(
        conversation=alice, sender=bot, content=OutboundContent("text", "Bot again.")
    )
    assert first.text.startswith("I'm the Acme bot.\n\n")
    assert second.text == "Anything else?"
    assert back.text.startswith("I'm the Acme bot.")
    drive(world.acme)
    assert sandbox.received("alice", account="acme.store")[-4]["text"].startswith(
        "I'm the Acme bot."
    )


def test_person_unavailable_ends_failed_with_a_readable_reason(
    world: World, sandbox: RunningSandbox, drive: Drive, world_api: Any
) -> None:
    sandbox.customer("alice", "block", account="acme.store")
    message = outbound.message_send(
        conversation=world.conversation("alice"),
        sender=_agent(),
        content=OutboundContent("text", "Hi"),
    )
    drive(world.acme)
    message.refresh_from_db()
    assert message.status == Message.Status.FAILED
    assert (
        message.error_message == "This person isn't available right now and can't receive messages."
    )
    assert SendAttempt.objects.filter(job__message=message).count() == 1  # no retry


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "5xx", "count": 2, "status": 503},
        {"kind": "error", "count": 2, "code": 2},
        {"kind": "timeout", "count": 1, "delay": 3},
        {"kind": "rate_limit", "count": 2, "code": 613},
    ],
    ids=["5xx", "code2", "timeout", "rate_limit"],
)
def test_transient_errors_and_rate_limits_are_retried_to_success(
    world: World, sandbox: RunningSandbox, drive: Drive, fault: dict[str, Any]
) -> None:
    """D4: 5xx, code 2 and timeouts are retried; 613 pauses the account and gives the attempt
    back (no attempt burned). The backoff bounds are in tests/reliability/test_d4_backoff.py."""
    sandbox.fault(match="/messages", **fault)
    message = outbound.message_send(
        conversation=world.conversation("alice"),
        sender=_agent(),
        content=OutboundContent("text", "Retry me"),
    )
    drive(world.acme)
    message.refresh_from_db()
    job = OutboundJob.objects.get(message=message)
    assert message.status == Message.Status.SENT
    texts = [r.get("text") for r in sandbox.received("alice", account="acme.store")]
    assert texts.count("Retry me") == 1
    outcomes = list(job.send_attempts.order_by("id").values_list("outcome", flat=True))
    assert outcomes[-1] == "sent"
    if fault["kind"] == "rate_limit":
        # Rate limits pause the account and give the attempt back.
        assert outcomes.count("rate_limited") == 2
        assert job.attempts == 1


@pytest.mark.parametrize(
    ("code", "subcode", "reason"),
    [
        (551, None, "person_unavailable"),
        (10, 2018278, "window_closed"),
        (100, None, "invalid_parameter"),
    ],
)
def test_permanent_errors_fail_at_once(
    world: World, sandbox: RunningSandbox, drive: Drive, code: int, subcode: int | None, reason: str
) -> None:
    """D4: 551, 10/2018278 (outside the window) and 100 fail after 1 attempt with a reason."""
    sandbox.fault(match="/messages", kind="error", code=code, subcode=subcode, count=1)
    message = outbound.message_send(
        conversation=world.conversation("alice"),
        sender=_agent(),
        content=OutboundContent("text", "x"),
    )
    drive(world.acme)
    job = OutboundJob.objects.get(message=message)
    assert (job.status, job.error_code, job.attempts) == ("failed", reason, 1)
    assert job.error_message


def test_a_dead_token_holds_sends_until_the_account_is_reconnected(
    world: World, sandbox: RunningSandbox, drive: Drive
) -> None:
    """D4 and D10: a dead token (190) is not retried, the account needs reauth and its sends
    are held, not dropped; after reconnecting they go out in order."""
    sandbox.control(
        "POST", "tokens/revoke", {"token": "EAAGsbxPage200000000000001", "subcode": 460}
    )
    alice = world.conversation("alice")
    first = outbound.message_send(
        conversation=alice, sender=_agent(), content=OutboundContent("text", "one")
    )
    drive(world.acme)
    world.acme.refresh_from_db()
    assert world.acme.status == InstagramAccount.Status.NEEDS_REAUTH
    second = outbound.message_send(
        conversation=alice, sender=_agent(), content=OutboundContent("text", "two")
    )
    jobs = OutboundJob.objects.filter(message__in=[first, second])
    assert {j.status for j in jobs} == {OutboundJob.Status.HELD}
    assert SendAttempt.objects.filter(outcome="auth").count() == 1  # no retries
    sandbox.control("POST", "tokens/restore", {"token": "EAAGsbxPage200000000000001"})
    InstagramAccount.objects.filter(pk=world.acme.pk).update(status=InstagramAccount.Status.ACTIVE)
    drive(world.acme)
    texts = [r.get("text") for r in sandbox.received("alice", account="acme.store")]
    assert texts[-2:] == ["one", "two"]


def test_dead_rows_are_listed_with_their_error_and_replay_sends_each_once(
    world: World, sandbox: RunningSandbox, drive: Drive, world_api: Any, settings: Any
) -> None:
    """D9: 10 sends exhaust their attempts and are listed dead with their last error in the
    API; replaying each (twice) sends each exactly once."""
    settings.OUTBOUND_MAX_ATTEMPTS = 3
    alice = world.conversation("alice")
    sandbox.fault(match="/messages", kind="5xx", count=30, status=500)
    sent = [
        outbound.message_send(
            conversation=alice, sender=_agent(), content=OutboundContent("text", f"dead {i}")
        )
        for i in range(10)
    ]
    drive(world.acme)
    dead = world_api.get("/api/v1/outbound-jobs?status=dead").json()["results"]
    assert len(dead) == 10
    assert all(row["error"]["code"] == "temporary" for row in dead)
    shown = world_api.get(f"/api/v1/conversations/{alice.pk}/messages").json()["results"]
    assert {m["status"] for m in shown} == {"failed"}
    assert shown[0]["error"]["message"]
    sandbox.control("DELETE", "faults")
    for row in dead:
        assert world_api.post(f"/api/v1/outbound-jobs/{row['id']}/replay").status_code == 202
        world_api.post(f"/api/v1/outbound-jobs/{row['id']}/replay")  # twice: still once
    drive(world.acme)
    texts = [r.get("text") for r in sandbox.received("alice", account="acme.store")]
    assert sorted(t for t in texts if t and t.startswith("dead")) == sorted(m.text for m in sent)


def _left_sending_by_a_dead_worker(world: World) -> tuple[Message, OutboundJob]:
    """A reply whose worker died after calling Meta: its row is left ``sending``, uncertain."""
    message = outbound.message_send(
        conversation=world.conversation("alice"),
        sender=_agent(),
        content=OutboundContent("text", "echo me"),
    )
    job = OutboundJob.objects.get(message=message)
    OutboundJob.objects.filter(pk=job.pk).update(status="sending", uncertain=True)
    job.refresh_from_db()
    return message, job


def test_echo_metadata_settles_a_send_whose_worker_died(
    world: World, sandbox: RunningSandbox
) -> None:
    """D1 (reconciliation): the echo's metadata names the outbox row and settles it."""
    message, job = _left_sending_by_a_dead_worker(world)
    job.refresh_from_db()
    assert outbox.echo_received(
        account=world.acme, mid="aWdfechoed", metadata=outbox.metadata_for(job.pk)
    )
    job.refresh_from_db()
    message.refresh_from_db()
    assert (job.status, message.status, message.mid) == ("sent", "sent", "aWdfechoed")


@pytest.mark.parametrize(
    "metadata",
    [
        "outbox:\u00b2",  # SUPERSCRIPT TWO: str.isdigit() says yes, int() refuses it
        "outbox:\u2460",  # CIRCLED DIGIT ONE
        "outbox:\u0663",  # ARABIC-INDIC DIGIT THREE: int() reads it, but we never write it
        "outbox:" + "9" * 5000,
        "outbox:",
        "outbox:-1",
        "outbox: 1",
        "other:1",
        None,
    ],
)
def test_echo_metadata_that_is_not_ours_names_no_row(metadata: str | None) -> None:
    assert outbox.job_id_from_metadata(metadata) is None
    assert outbox.job_id_from_metadata(outbox.metadata_for(42)) == 42


def test_an_echo_naming_a_row_in_other_digits_settles_nothing(
    world: World, sandbox: RunningSandbox
) -> None:
    _, job = _left_sending_by_a_dead_worker(world)
    arabic_indic = "".join(chr(0x0660 + int(d)) for d in str(job.pk))  # int() reads these
    for metadata in ("outbox:\u00b2", f"outbox:{arabic_indic}"):
        assert not outbox.echo_received(account=world.acme, mid="aWdfechoed", metadata=metadata)
    job.refresh_from_db()
    assert (job.status, job.mid) == ("sending", "")


@pytest.mark.parametrize("pid", ["\u00b2", "1\u2460", "9" * 5000, "", "x"])
def test_a_claim_naming_no_process_here_is_held_until_its_lease_runs_out(pid: str) -> None:
    now = timezone.now()
    job = OutboundJob(
        claimed_by=f"{socket.gethostname()}:{pid}:1", lease_until=now + timedelta(minutes=1)
    )
    assert outbox._claim_orphaned(job, now) is False
    assert outbox._claim_orphaned(job, now + timedelta(minutes=2)) is True


def test_a_send_that_reached_meta_before_a_crash_is_found_not_resent(
    world: World, sandbox: RunningSandbox, drive: Drive
) -> None:
    """D1 (reconciliation): a send left "sending" by a dead worker is looked up, not resent."""
    message = outbound.message_send(
        conversation=world.conversation("alice"),
        sender=_agent(),
        content=OutboundContent("text", "only once"),
    )
    job = OutboundJob.objects.get(message=message)
    client = outbox._account_client(world.acme)
    client.send_text("6000000000100001", "only once", metadata=outbox.metadata_for(job.pk))
    # The worker died right after Meta answered: the row is left in "sending".
    OutboundJob.objects.filter(pk=job.pk).update(
        status="sending", claimed_by="gone:1:1", lease_until=timezone.now() - timedelta(seconds=1)
    )
    outcomes = drive(world.acme)
    texts = [r.get("text") for r in sandbox.received("alice", account="acme.store")]
    assert texts.count("only once") == 1
    job.refresh_from_db()
    assert job.status == "sent", (outcomes, job.__dict__)
    message.refresh_from_db()
    assert message.status == "sent"
    assert message.mid


def test_thread_owned_by_another_app_is_refused_or_taken(
    world: World, sandbox: RunningSandbox, drive: Drive
) -> None:
    alice = world.conversation("alice")
    alice.owned_by_other_app = True
    alice.save()
    sandbox.control("POST", "threads/owner", {"account": "acme.store", "customer": "alice"})
    sandbox.control("POST", "accounts/acme.store", {"take_thread_allowed": True})
    with pytest.raises(SendRefused) as refused:
        outbound.message_send(
            conversation=alice, sender=_agent(), content=OutboundContent("text", "hi")
        )
    assert refused.value.code == Refusal.THREAD_OWNED_BY_OTHER_APP
    outbound.messaging_settings_update(tenant_id=world.tenant.pk, take_control_allowed=True)
    message = outbound.message_send(
        conversation=alice, sender=_agent(), content=OutboundContent("text", "taken")
    )
    drive(world.acme)
    message.refresh_from_db()
    assert message.status == "sent", message.error_message
    alice.refresh_from_db()
    assert not alice.owned_by_other_app


def test_every_entry_point_goes_through_the_policy(
    world: World, sandbox: RunningSandbox, drive: Drive, world_api: Any
) -> None:
    alice = world.conversation("alice")
    with mock.patch.object(policy, "decide", wraps=policy.decide) as spy:
        # The inbox composer.
        outbound.message_send(
            conversation=alice, sender=_agent(), content=OutboundContent("text", "inbox")
        )
        assert spy.call_args.args[0].sender == SenderKind.HUMAN_AGENT
        # Automations.
        outbound.message_send(
            conversation=alice,
            sender=Sender.automation("Welcome"),
            content=OutboundContent("text", "auto"),
        )
        assert spy.call_args.args[0].sender == SenderKind.AUTOMATION
        # The partner API, as a bot.
        response = world_api.post(
            f"/api/v1/conversations/{alice.pk}/messages",
            {"kind": "text", "text": "api"},
            format="json",
        )
        assert response.status_code == 202, response.content
        assert spy.call_args.args[0].sender == SenderKind.PARTNER_BOT
        before = spy.call_count
        # And the worker, right before Meta.
        drive(world.acme)
        assert spy.call_count - before == 3


def test_the_plain_statement_outbox_of_the_embedded_database_sends_in_order(
    world: World, sandbox: RunningSandbox, drive: Drive
) -> None:
    """The demo's SQLite has no data-modifying CTEs, SKIP LOCKED or ANY: the outbox takes plain
    statements there. The same sends reach the customer, once each and in thread order."""
    alice = world.conversation("alice")
    sender = _agent()
    with mock.patch.object(outbox, "_postgresql", return_value=False):
        messages = [
            outbound.message_send(
                conversation=alice, sender=sender, content=OutboundContent(kind="text", text=t)
            )
            for t in ("one", "two", "three")
        ]
        drive(world.acme)
        # A row handed on after the previous one (outside any scope, as after a commit).
        fourth = outbound.message_send(
            conversation=alice, sender=sender, content=OutboundContent(kind="text", text="four")
        )
        assert outbox.pump_next(OutboundJob.objects.get(message=fourth)) == 1
    for m in messages:
        m.refresh_from_db()
        assert m.status == Message.Status.SENT
    texts = [r.get("text") for r in sandbox.received("alice", account="acme.store")]
    assert [t for t in texts if t in {"one", "two", "three"}] == ["one", "two", "three"]
