"""A local webhook endpoint for tests: records raw POST bodies, answers scripted statuses.

Stands in for our own ``/webhooks/meta`` where a test watches what the Meta sandbox delivers
(the verification handshake, signatures over the raw bytes, retries after failed answers); with
``answer`` set it also stands in for Meta or a proxy in front of it, answering every POST alike.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Received:
    body: bytes
    headers: dict[str, str]
    path: str = ""  # as in the request line: a proxy receives the absolute URL

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None


@dataclass
class Receiver:
    """What the endpoint received; ``statuses`` scripts its answers (then 200 for the rest)."""

    url: str = ""
    verify_token: str = ""
    posts: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    delay: float = 0.0  # seconds each POST waits before answering
    answer: bytes = b""  # the body of every 200, JSON when set (else "ok")
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_status(self) -> int:
        with self.lock:
            return self.statuses.pop(0) if self.statuses else 200

    def record(self, item: Received) -> None:
        with self.lock:
            self.posts.append(item)

    def ok_posts(self) -> list[Received]:
        with self.lock:
            return list(self.posts)

    def take(self) -> list[Received]:
        """Everything received so far, forgetting it."""
        with self.lock:
            posts, self.posts = self.posts, []
        return posts


def _handler(receiver: Receiver, stop: threading.Event) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return

        def _answer(self, status: int, body: bytes, kind: str = "text/plain") -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
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
            receiver.record(Received(body=body, headers=dict(self.headers.items()), path=self.path))
            if receiver.delay:
                stop.wait(receiver.delay)
            status = receiver.next_status()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                if status == 200 and receiver.answer:
                    self._answer(status, receiver.answer, "application/json")
                else:
                    self._answer(status, b"ok" if status == 200 else b"fail")

    return Handler


@contextlib.contextmanager
def serving_receiver(verify_token: str) -> Iterator[Receiver]:
    """Serve a ``Receiver`` on a free loopback port for the duration of the block."""
    recv = Receiver(verify_token=verify_token)
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
