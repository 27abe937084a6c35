"""Fixtures for the contract suite: the real ``MetaClient`` against one sandbox per module.

The sandbox is served once per test module and put back into the default world before every
test through the control API (``POST /_sandbox/reset``). The Conversations API limit (2 calls
per second) is relaxed after the reset; tests about rate limits set their own rules.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from integrations.meta.client import AccountClient, MetaClient, MetaConfig
from integrations.meta.sandbox.testing import RunningSandbox, running_sandbox
from tests.contract import support as w


@pytest.fixture(scope="module")
def sbx() -> Iterator[RunningSandbox]:
    with running_sandbox() as running:
        yield running


@pytest.fixture(autouse=True)
def fresh_world(sbx: RunningSandbox) -> RunningSandbox:
    sbx.control("POST", "reset", {"seed": True})
    sbx.control(
        "POST", "rate_limits", {"conversations": {"limit": 100_000}, "reset_counters": True}
    )
    return sbx


@pytest.fixture
def sleeps() -> list[float]:
    """Backoff delays the client asked for (nothing really sleeps)."""
    return []


@pytest.fixture
def make_client(sbx: RunningSandbox, sleeps: list[float]) -> Iterator[Callable[..., MetaClient]]:
    made: list[MetaClient] = []

    def make(**overrides: Any) -> MetaClient:
        client = MetaClient(w.sandbox_config(sbx, **overrides), sleep=sleeps.append)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def meta(make_client: Callable[..., MetaClient]) -> MetaClient:
    return make_client()


@pytest.fixture
def config(sbx: RunningSandbox) -> MetaConfig:
    return w.sandbox_config(sbx)


@pytest.fixture
def acme(meta: MetaClient) -> AccountClient:
    """Acme Store, connected through Facebook Login (its Page and Page token)."""
    return meta.facebook_page(w.PAGE_ACME, w.ACME_TOKEN)


@pytest.fixture
def bella(meta: MetaClient) -> AccountClient:
    return meta.facebook_page(w.PAGE_BELLA, w.BELLA_TOKEN)


@pytest.fixture
def creator(meta: MetaClient) -> AccountClient:
    """Chloe Creates, connected through Instagram Login (``me`` on graph.instagram.com)."""
    return meta.instagram_account(w.CREATOR_TOKEN)


@pytest.fixture
def fresh(meta: MetaClient) -> AccountClient:
    """An Instagram Login account not yet eligible for messaging (36103)."""
    return meta.instagram_account(w.NOT_ELIGIBLE_TOKEN)


@pytest.fixture
def quiet(meta: MetaClient) -> AccountClient:
    """An Instagram Login account whose owner turned "Allow access to messages" off."""
    return meta.instagram_account(w.NO_ACCESS_TOKEN)


# -- webhook receiver ------------------------------------------------------------------------------


@dataclass
class Received:
    body: bytes
    headers: dict[str, str]

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None


@dataclass
class Receiver:
    """A webhook endpoint recording raw POST bodies; answers scripted statuses (default 200)."""

    url: str = ""
    verify_token: str = w.VERIFY_TOKEN
    posts: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    delay: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_status(self) -> int:
        with self.lock:
            return self.statuses.pop(0) if self.statuses else 200

    def record(self, item: Received) -> None:
        with self.lock:
            self.posts.append(item)

    def take(self) -> list[Received]:
        with self.lock:
            posts, self.posts = self.posts, []
        return posts


def _handler(receiver: Receiver, stop: threading.Event) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return

        def _answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            query = parse_qs(urlsplit(self.path).query)
            if query.get("hub.verify_token", [""])[0] == receiver.verify_token:
                self._answer(200, query.get("hub.challenge", [""])[0].encode())
            else:
                self._answer(403, b"forbidden")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            receiver.record(Received(body=body, headers=dict(self.headers.items())))
            if receiver.delay:
                stop.wait(receiver.delay)
            status = receiver.next_status()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self._answer(status, b"ok" if status == 200 else b"fail")

    return Handler


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    recv = Receiver()
    stop = threading.Event()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(recv, stop))
    server.daemon_threads = True
    recv.url = f"http://127.0.0.1:{server.server_address[1]}/webhooks/meta"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield recv
    finally:
        stop.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
