"""Acceptance 4: the partner guide's Python examples run as written against a live server."""

from __future__ import annotations

import contextlib
import io
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone
from django_scopes import scope

from accounts.models import ApiKey, Tenant
from tests.factories import InstagramAccountFactory
from tests.isolation.factories import ContactFactory, ConversationFactory, MessageFactory
from webhooks.models import CallbackEndpoint

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "partner-guide.md"

pytestmark = pytest.mark.django_db(transaction=True)


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, re.DOTALL)


def test_the_guide_has_the_three_examples() -> None:
    blocks = python_blocks(GUIDE.read_text())
    joined = "\n".join(blocks)
    assert len(blocks) == 3
    assert "/api/v1/conversations" in joined
    assert "/messages" in joined
    assert "X-Relay-Signature" in GUIDE.read_text()
    assert "def verify(" in joined


def test_the_guide_runs_as_written(
    live_server: Any,
    tenant: Tenant,
    make_api_key: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, secret = make_api_key(tenant)
    account = InstagramAccountFactory(tenant=tenant, username="brand", access_token="EAAG-x")
    recent = timezone.now() - timedelta(minutes=5)
    with scope(tenant=tenant):
        contact = ContactFactory(account=account, name="Jane")
        conversation = ConversationFactory(
            contact=contact, customer_last_message_at=recent, last_message_at=recent
        )
        MessageFactory(conversation=conversation, text="Hello?", sent_at=recent)
    monkeypatch.setenv("RELAY_API_URL", live_server.url)
    monkeypatch.setenv("RELAY_API_KEY", secret)
    monkeypatch.setenv("RELAY_RECEIVER_URL", "https://hooks.example.com/relay-events")
    output = io.StringIO()
    for block in python_blocks(GUIDE.read_text()):
        with contextlib.redirect_stdout(output):
            exec(compile(block, str(GUIDE), "exec"), {"__name__": "guide"})  # noqa: S102
    printed = output.getvalue()
    assert f"{conversation.pk} Jane Hello?" in printed
    assert "queued message" in printed or "not sent:" in printed
    assert "signature checks pass" in printed
    with scope(tenant=tenant):
        assert CallbackEndpoint.objects.filter(url__endswith="/relay-events").exists()
    assert ApiKey is not None
