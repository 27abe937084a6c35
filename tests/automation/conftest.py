"""Automation against the Meta sandbox: its webhooks posted, signed, to our endpoint and
processed; the outbox driven in-process; a partner bot served on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.test import Client
from django_scopes import scope

from accounts.models import InstagramAccount
from automation.models import AccountAutomation, Rule
from integrations.meta.sandbox.testing import RunningSandbox
from tests.outbound.conftest import (  # noqa: F401 - fixtures shared with the sending tests
    World,
    drive,
    sandbox,
    world,
)
from tests.sandbox.conftest import Receiver, receiver  # noqa: F401
from webhooks import relay

ACME_POST = "17900000000000001"
ACME_REEL = "17900000000000002"


def make_rule(account: InstagramAccount, **values: Any) -> Rule:
    """A rule row on ``account`` (inside the caller's scope); sensible defaults for the rest."""
    values.setdefault("name", "Rule")
    values.setdefault("trigger", "keyword")
    values.setdefault("actions", [{"type": "reply_text", "text": "Thanks for writing!"}])
    return Rule.objects.create(tenant_id=account.tenant_id, account=account, **values)


def closed_now_hours() -> dict[str, list[list[str]]]:
    """Business hours that never include this moment: open only on a day two days away."""
    from django.utils import timezone

    day = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[
        (timezone.now() + timedelta(days=2)).weekday()
    ]
    return {day: [["09:00", "17:00"]]}


def set_hours(account: InstagramAccount, hours: dict[str, Any], tz: str = "UTC") -> None:
    AccountAutomation.objects.update_or_create(
        account=account,
        defaults={"tenant_id": account.tenant_id, "hours": hours, "timezone": tz},
    )


@dataclass
class Meta:
    """The sandbox wired to our webhook endpoint: what customers do reaches the product."""

    sandbox: RunningSandbox
    receiver: Receiver
    client: Client
    world: World

    def deliver(self) -> int:
        """The sandbox posts its queued webhooks; they are verified, stored and processed."""
        self.sandbox.flush()
        with self.receiver.lock:
            posts = list(self.receiver.posts)
            self.receiver.posts.clear()
        for post in posts:
            signature = {k.lower(): v for k, v in post.headers.items()}["x-hub-signature-256"]
            response = self.client.generic(
                "POST",
                "/webhooks/meta",
                post.body,
                content_type="application/json",
                HTTP_X_HUB_SIGNATURE_256=signature,
            )
            assert response.status_code == 200, response.content
        relay.drain()
        return len(posts)

    def says(self, who: str, **body: Any) -> dict[str, Any]:
        sent: dict[str, Any] = self.sandbox.customer(who, "send", account="acme.store", **body)
        self.deliver()
        return sent

    def comments(self, who: str, media_id: str, text: str) -> dict[str, Any]:
        made: dict[str, Any] = self.sandbox.customer(who, "comment", media_id=media_id, text=text)
        self.deliver()
        return made

    before: dict[str, set[str]] = field(default_factory=dict)

    def _texts(self, who: str) -> list[dict[str, Any]]:
        return [
            item
            for item in self.sandbox.received(who, account="acme.store")
            if item.get("text") is not None
        ]

    def remember_history(self) -> None:
        for who in ("alice", "bob", "carla", "dmitri"):
            self.before[who] = {str(item.get("mid")) for item in self._texts(who)}

    def received(self, who: str) -> list[dict[str, Any]]:
        """The texts the customer received from the account since the test began."""
        seen = self.before.get(who, set())
        return [item for item in self._texts(who) if str(item.get("mid")) not in seen]


@pytest.fixture
def meta(world: World, sandbox: RunningSandbox, receiver: Receiver) -> Iterator[Meta]:  # noqa: F811
    sandbox.configure_webhooks(receiver.url)
    with scope(tenant=world.tenant.pk):
        wired = Meta(sandbox=sandbox, receiver=receiver, client=Client(), world=world)
        wired.remember_history()
        yield wired


@dataclass
class Bot:
    """A partner's bot: records the signed requests, answers what the test scripted."""

    url: str = ""
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    answers: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_answer(self) -> tuple[int, dict[str, Any]]:
        with self.lock:
            return self.answers.pop(0) if self.answers else (200, {"messages": []})

    def bodies(self) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(body) for _, body in self.requests]


@pytest.fixture
def bot() -> Iterator[Bot]:
    state = Bot()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with state.lock:
                state.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
            status, answer = state.next_answer()
            raw = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/bot"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


RuleMaker = Callable[..., Rule]
