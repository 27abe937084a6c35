"""Acceptance 4: the partner guide's Python examples run as written against the demo.

The workspace is seeded the way the demo seeds it (``demo_seed``: the agency, its people and the
partner key kept in ``var/demo-credentials.json``), with customers' conversations on a
connected account. Each ``python`` block of ``docs/partner-guide.md`` runs as its own script,
from a directory holding the demo's ``var/``, against a live server of the app, with only the
environment variables the guide documents. Then a real callback, signed by the platform, is
checked with the guide's ``verify``.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone
from django_scopes import scope, scopes_disabled

from accounts.models import Tenant
from messaging.models import Conversation, ConversationLabel, Message
from tests.factories import InstagramAccountFactory
from tests.messaging.factories import ContactFactory, ConversationFactory, MessageFactory
from webhooks import partner_delivery
from webhooks.models import CallbackDelivery, CallbackEndpoint

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "partner-guide.md"
RECEIVER = "https://hooks.example.com/relay-events"

pytestmark = pytest.mark.django_db(transaction=True)


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", GUIDE.read_text(), re.DOTALL)


def _run(block: str, *, cwd: Path, env: dict[str, str]) -> str:
    """One example as a partner runs it: its own Python process, only the documented variables."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    done = subprocess.run(
        [sys.executable, "-"],
        input=block,
        cwd=cwd,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"the example failed:\n{block}\n{done.stderr}"
    return done.stdout


@pytest.fixture
def demo(tmp_path: Path, settings: Any) -> dict[str, Any]:
    """The demo's workspace and key, and customers who wrote in (one today, one last week)."""
    settings.VAR_DIR = tmp_path / "var"
    call_command("demo_seed", stdout=io.StringIO())
    credentials = json.loads((tmp_path / "var" / "demo-credentials.json").read_text())
    with scopes_disabled():
        tenant = Tenant.objects.get(name="Demo Agency")
    account = InstagramAccountFactory(tenant=tenant, username="demo.brand", access_token="EAAG-x")
    recent = timezone.now() - timedelta(minutes=5)
    old = timezone.now() - timedelta(days=8)
    with scope(tenant=tenant):
        jane = ConversationFactory(
            account=account,
            contact=ContactFactory(account=account, name="Jane", username="jane.doe"),
            customer_last_message_at=recent,
            last_message_at=recent,
            unread_count=1,
        )
        MessageFactory(conversation=jane, text="Do you ship to Lisbon?", sent_at=recent)
        omar = ConversationFactory(
            account=account,
            contact=ContactFactory(account=account, name="", username="omar.k"),
            customer_last_message_at=old,
            last_message_at=old,
        )
        MessageFactory(conversation=omar, text="Still available?", sent_at=old)
    return {"tenant": tenant, "key": credentials["api_key"], "jane": jane, "omar": omar}


def test_the_guide_shows_listing_sending_team_work_and_verifying() -> None:
    joined = "\n".join(python_blocks())
    assert len(python_blocks()) == 4
    for needle in [
        "/api/v1/conversations",
        "/messages",
        "Idempotency-Key",
        "/resolve",
        "/webhook-endpoints",
        "def verify(",
        "RELAY_API_URL",
        "RELAY_API_KEY",
    ]:
        assert needle in joined, needle
    assert "RELAY_RECEIVER_URL" in GUIDE.read_text().split("```")[0]


def test_the_guide_runs_as_written_against_the_demo(
    live_server: Any, demo: dict[str, Any], tmp_path: Path
) -> None:
    listing, team_work, endpoints, signatures = python_blocks()
    # As the guide says: run from the demo's directory; only the server's address is set here,
    # the key comes from the demo's credentials file.
    env = {"RELAY_API_URL": live_server.url, "RELAY_RECEIVER_URL": RECEIVER}
    jane, omar, tenant = demo["jane"], demo["omar"], demo["tenant"]

    printed = _run(listing, cwd=tmp_path, env=env)
    lines = printed.splitlines()
    assert lines[0] == f"{jane.pk} Jane Do you ship to Lisbon? "
    assert lines[1] == f"{omar.pk} @omar.k Still available? "
    with scope(tenant=tenant):
        reply = Message.objects.get(conversation=jane, direction=Message.Direction.OUTBOUND)
    assert lines[2] == f"queued message {reply.pk}"
    assert reply.status == Message.Status.QUEUED
    assert "Thanks for your message!" in reply.text  # after the bot disclosure, if any

    # The endpoint first, so the team-work changes below are delivered to it as events.
    printed = _run(endpoints, cwd=tmp_path, env={**env, "RELAY_API_KEY": demo["key"]})
    with scope(tenant=tenant):
        endpoint = CallbackEndpoint.objects.get(url=RECEIVER)
    assert printed.startswith(f"endpoint {endpoint.pk} will be signed with a key starting ")
    assert endpoint.secret[:10] in printed

    printed = _run(team_work, cwd=tmp_path, env=env)
    with scope(tenant=tenant):
        jane.refresh_from_db()
        assert jane.status == Conversation.Status.RESOLVED
        assert printed.strip() == f"resolved {jane.pk} resolved {jane.mode} ['Follow-up']"
        assert ConversationLabel.objects.filter(conversation=jane).count() == 1
        deliveries = list(
            CallbackDelivery.objects.filter(endpoint=endpoint)
            .select_related("event")
            .order_by("sequence")
        )
    changes = [d.event.payload["changes"] for d in deliveries]
    # Resolving may hand the conversation back to automation: one more `mode` change then.
    assert changes[:3] == [["labels"], ["mode"], ["status"]]
    assert changes[3:] == ([["mode"]] if jane.mode == Conversation.Mode.AUTOMATION else [])

    assert _run(signatures, cwd=tmp_path, env=env).strip() == "signature checks pass"
    # The guide's verify() accepts what the platform really sends, and nothing else.
    namespace: dict[str, Any] = {"__name__": "guide"}
    exec(compile(signatures, str(GUIDE), "exec"), namespace)  # noqa: S102
    verify = namespace["verify"]
    body = partner_delivery.body_of(deliveries[-1])
    header = partner_delivery.signature_header(endpoint, int(time.time()), body)
    assert verify(endpoint.secret, header, body)
    assert not verify(endpoint.secret, header, body.replace(b"resolved", b"open"))
    stale = partner_delivery.signature_header(endpoint, int(time.time()) - 3600, body)
    assert not verify(endpoint.secret, stale, body)
