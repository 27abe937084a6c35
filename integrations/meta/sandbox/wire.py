"""Minimal HTTP request/response objects and the threaded server (127.0.0.1 only)."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

MAX_BODY = 30 * 1024 * 1024
LOOPBACK = "127.0.0.1"


@dataclass
class UploadedFile:
    filename: str
    content_type: str
    data: bytes


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    base_url: str
    raw_query: str = ""
    files: dict[str, UploadedFile] = field(default_factory=dict)
    _form: dict[str, str] | None = None

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)

    @property
    def content_type(self) -> str:
        return self.header("content-type").split(";")[0].strip().lower()

    def json_body(self) -> Any:
        if not self.body:
            return None
        try:
            return json.loads(self.body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return None

    def form(self) -> dict[str, str]:
        if self._form is not None:
            return self._form
        result: dict[str, str] = {}
        ctype = self.content_type
        if ctype == "application/x-www-form-urlencoded" or (
            not ctype and self.body and b"=" in self.body and not self.body.startswith(b"{")
        ):
            result = dict(parse_qsl(self.body.decode("utf-8", "replace"), keep_blank_values=True))
        elif ctype == "multipart/form-data":
            result = self._parse_multipart()
        self._form = result
        return result

    def _parse_multipart(self) -> dict[str, str]:
        head = f"Content-Type: {self.header('content-type')}\r\n\r\n".encode()
        message = BytesParser(policy=HTTP).parsebytes(head + self.body)
        result: dict[str, str] = {}
        if not message.is_multipart():
            return result
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if not isinstance(name, str):
                continue
            payload = part.get_payload(decode=True)
            data = payload if isinstance(payload, bytes) else b""
            filename = part.get_filename()
            if filename is not None:
                self.files[name] = UploadedFile(
                    filename=filename,
                    content_type=part.get_content_type(),
                    data=data,
                )
            else:
                result[name] = data.decode("utf-8", "replace")
        return result

    def params(self) -> dict[str, Any]:
        """Query, form and JSON body merged (later sources win), JSON-string values decoded."""
        merged: dict[str, Any] = dict(self.query)
        merged.update(self.form())
        body = self.json_body() if self.content_type in ("application/json", "") else None
        if isinstance(body, dict):
            merged.update(body)
        for key, value in list(merged.items()):
            if isinstance(value, str) and value[:1] in ("{", "["):
                with contextlib.suppress(ValueError):
                    merged[key] = json.loads(value)
        return merged


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0

    @classmethod
    def json(cls, data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        payload = json.dumps(data, ensure_ascii=False).encode("utf-8")
        hdrs = {"Content-Type": "application/json; charset=UTF-8"}
        hdrs.update(headers or {})
        return cls(status=status, body=payload, headers=hdrs)

    @classmethod
    def html(cls, text: str, status: int = 200) -> Response:
        return cls(
            status=status,
            body=text.encode("utf-8"),
            headers={"Content-Type": "text/html; charset=utf-8"},
        )

    @classmethod
    def text(cls, text: str, status: int = 200) -> Response:
        return cls(
            status=status,
            body=text.encode("utf-8"),
            headers={"Content-Type": "text/plain; charset=utf-8"},
        )

    @classmethod
    def redirect(cls, location: str) -> Response:
        return cls(status=302, headers={"Location": location})


Handler = Callable[[Request], Response]


def _make_handler(app: Handler, stop_event: threading.Event) -> type[BaseHTTPRequestHandler]:
    class SandboxRequestHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "MetaSandbox/1.0"
        # Headers and body go out in separate writes: without TCP_NODELAY every keep-alive
        # answer waits for the peer's delayed ACK (about 40 ms per call).
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._write(Response.json({"error": "body too large"}, status=413))
                return
            body = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            host = self.headers.get("Host") or f"{LOOPBACK}:{self.server.server_port}"  # type: ignore[attr-defined]
            request = Request(
                method=self.command.upper(),
                path=parts.path,
                query=dict(parse_qsl(parts.query, keep_blank_values=True)),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
                base_url=f"http://{host}",
                raw_query=parts.query,
            )
            try:
                response = app(request)
            except Exception as exc:  # the server must keep answering
                response = Response.json(
                    {"error": {"message": f"sandbox internal error: {exc!r}", "code": 1}},
                    status=500,
                )
            if response.delay > 0:
                stop_event.wait(response.delay)
            self._write(response)

        def _write(self, response: Response) -> None:
            try:
                self.send_response(response.status)
                for key, value in response.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(response.body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(response.body)
            except (BrokenPipeError, ConnectionResetError):
                pass

        do_GET = _handle  # noqa: N815
        do_POST = _handle  # noqa: N815
        do_DELETE = _handle  # noqa: N815
        do_PUT = _handle  # noqa: N815
        do_PATCH = _handle  # noqa: N815
        do_HEAD = _handle  # noqa: N815

    return SandboxRequestHandler


class SandboxHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class ServerThread:
    """Serves a handler on 127.0.0.1 in a background thread."""

    def __init__(self, app: Handler, port: int = 0) -> None:
        self.stop_event = threading.Event()
        self.httpd = SandboxHTTPServer((LOOPBACK, port), _make_handler(app, self.stop_event))
        self.port = int(self.httpd.server_address[1])
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> ServerThread:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)
