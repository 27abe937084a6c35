"""The relay's hand-on (``outbox.pump``) with a long backlog: a round first looks at the
account's oldest waiting rows only (its cost must not grow with the backlog: it runs after every
batch, D11 in bench/outbound.py), and still finds every thread's head when one thread's long
queue fills that first look."""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest

from integrations.meta.sandbox.testing import RunningSandbox
from messaging import outbox
from messaging.models import Conversation, OutboundJob
from messaging.services import outbound
from messaging.services.outbound import OutboundContent, Sender
from tests.outbound.conftest import World, customers

pytestmark = pytest.mark.usefixtures("fresh_memory")


def _queue(conversation: Conversation, count: int) -> list[int]:
    messages = [
        outbound.message_send(
            conversation=conversation,
            sender=Sender.automation("hand-on"),
            content=OutboundContent(kind="text", text=f"reply {i}"),
        )
        for i in range(count)
    ]
    return list(
        OutboundJob.objects.filter(message__in=messages).order_by("id").values_list("id", flat=True)
    )


def _pump(world: World) -> list[int]:
    """One hand-on round for Acme; what it would put in the queue (nothing reaches a broker)."""
    got: list[int] = []

    def collect(tenant_id: int, ids: Any) -> int:
        got.extend(ids)
        return len(got)

    with mock.patch.object(outbox, "_publish", side_effect=collect):
        outbox.pump(account_id=world.acme.pk)
    return got


def test_a_long_queue_in_one_thread_does_not_hold_back_the_others(
    world: World, sandbox: RunningSandbox
) -> None:
    """More rows of one thread than the round's first look covers wait in front: the other
    threads' rows are handed on all the same, beside the long thread's head."""
    outbound.messaging_settings_update(tenant_id=world.tenant.pk, disclosure_mode="never")
    threads = customers(sandbox, world, 6)
    long = _queue(threads[0], outbox.PUMP_WINDOW + 16)
    others = [_queue(thread, 1)[0] for thread in threads[1:]]

    assert sorted(_pump(world)) == sorted([long[0], *others])
    # Each thread has its row in flight now: nothing more until one is sent.
    assert _pump(world) == []
