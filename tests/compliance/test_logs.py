"""X3: the log output of a full inbound round trip (webhook → processing → unsend) and of an
outbound send through the Graph client holds no token, message text or attachment URL, even
at DEBUG on every logger."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator

import pytest
import responses
from django.test import Client
from django_scopes import scope

from accounts.models import InstagramAccount, Membership, Tenant
from tests.factories import InstagramAccountFactory
from tests.messaging.inbound_support import (
    BUSINESS,
    CUSTOMER,
    T0,
    deliver,
    envelope,
    item,
    text_message,
)

pytestmark = pytest.mark.django_db

TOKEN = "EAAGLOGTOKEN0123456789SECRET"
TEXT = "log-canary: my phone is 555-0199"
REPLY = "log-canary reply: we will call you"
PHOTO = "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=9&signature=LOGCANARYSIG"


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        self.lines.append(f"{record.name}: {text}")


@pytest.fixture
def captured() -> Iterator[_Capture]:
    handler = _Capture()
    root = logging.getLogger()
    previous = root.level
    loggers = [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)]
    levels = [(lg, lg.level) for lg in loggers]
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
        if not lg.propagate:
            lg.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
        for lg, level in levels:
            lg.setLevel(level)
            if handler in lg.handlers:
                lg.removeHandler(handler)


@pytest.fixture
def account(tenant: Tenant) -> InstagramAccount:
    return InstagramAccountFactory(
        tenant=tenant, ig_user_id=BUSINESS, page_id="200000000000009", access_token=TOKEN
    )


def _leaks(lines: list[str]) -> list[str]:
    needles = (TOKEN, TEXT, REPLY, PHOTO, "LOGCANARYSIG", "log-canary")
    return [line for line in lines if any(n in line for n in needles)]


def test_an_inbound_round_trip_logs_no_content_or_token(
    client: Client, tenant: Tenant, account: InstagramAccount, captured: _Capture
) -> None:
    photo = {"mid": "aWdfLOG02", "attachments": [{"type": "image", "payload": {"url": PHOTO}}]}
    deliver(client, envelope({BUSINESS: [text_message("aWdfLOG01", TEXT, ts=T0)]}))
    deliver(client, envelope({BUSINESS: [item({"message": photo}, ts=T0 + 1)]}))
    edit = item({"message_edit": {"mid": "aWdfLOG01", "text": TEXT + "!", "num_edit": 1}})
    deliver(client, envelope({BUSINESS: [edit]}))
    unsend = item({"message": {"mid": "aWdfLOG01", "is_deleted": True}}, ts=T0 + 5)
    deliver(client, envelope({BUSINESS: [unsend]}))
    # A delivery that cannot be processed is logged too: still without its content.
    deliver(client, b'{"object": "instagram", "entry": [{"id": "1", "log-canary": 1}')
    # An event for an account nobody connected is logged (with ids only).
    deliver(client, envelope({"17841400000000999": [text_message("aWdfLOG09", TEXT)]}))
    assert len(captured.lines) >= 2, "the capture saw the pipeline's logging"
    assert _leaks(captured.lines) == []


@responses.activate
def test_an_outbound_send_logs_no_content_or_token(
    client: Client,
    tenant: Tenant,
    owner: Membership,
    account: InstagramAccount,
    captured: _Capture,
) -> None:
    outbound = pytest.importorskip("messaging.services.outbound")
    outbox = pytest.importorskip("messaging.outbox")
    from messaging.models import Conversation, OutboundJob

    deliver(
        client,
        envelope({BUSINESS: [text_message("aWdfLOG03", "hello", ts=int(time.time() * 1000))]}),
    )
    responses.add(
        responses.POST,
        re.compile(r".*/messages.*"),
        json={"recipient_id": CUSTOMER, "message_id": "aWdfLOGOUT01"},
    )
    with scope(tenant=tenant):
        conversation = Conversation.objects.get()
        outbound.message_send(
            conversation=conversation,
            sender=outbound.Sender.agent(owner.user),
            content=outbound.OutboundContent(kind="text", text=REPLY),
        )
        job = OutboundJob.objects.get()
        outbox.job_run(job_id=job.pk)
        job.refresh_from_db()
    assert job.status == OutboundJob.Status.SENT, job.error_message
    bodies = [call.request.body or b"" for call in responses.calls]
    sent = [b.decode() if isinstance(b, bytes) else str(b) for b in bodies]
    assert any(REPLY in body for body in sent)  # the text went to Meta, not to the log
    assert _leaks(captured.lines) == []
