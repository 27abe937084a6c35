"""The sandbox process: router over both Meta hosts, the control API and background threads."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

from . import control, graph, oauth
from .core import Sandbox
from .delivery import Dispatcher
from .errors import GraphError
from .models import Fault, Host
from .wire import Request, Response, ServerThread

VERSION = re.compile(r"^v\d+\.\d+$")
HOST_PREFIXES: dict[str, Host] = {
    "facebook": "facebook",
    "graph.facebook.com": "facebook",
    "www.facebook.com": "facebook",
    "instagram": "instagram",
    "graph.instagram.com": "instagram",
    "api.instagram.com": "instagram",
    "www.instagram.com": "instagram",
}


class SandboxService:
    """Owns a Sandbox, its webhook dispatcher, its HTTP server and its state saver."""

    def __init__(
        self,
        state_path: str | Path | None = None,
        *,
        port: int = 0,
        seed: bool = True,
        auto_deliver: bool = True,
        deliver_interval: float = 0.2,
    ) -> None:
        self.sb = Sandbox(state_path, seed=seed)
        self.dispatcher = Dispatcher(self.sb)
        # Looked up per request, so a test may wrap ``handle`` on a running sandbox.
        self.server = ServerThread(lambda req: self.handle(req), port=port)
        self.auto_deliver = auto_deliver
        self.deliver_interval = deliver_interval
        self._saver_stop = threading.Event()
        self._saver: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return self.server.url

    @property
    def facebook_url(self) -> str:
        return f"{self.url}/facebook"

    @property
    def instagram_url(self) -> str:
        return f"{self.url}/instagram"

    def urls(self) -> dict[str, str]:
        return {
            "base": self.url,
            "facebook": self.facebook_url,
            "instagram": self.instagram_url,
            "control": f"{self.url}/_sandbox",
        }

    def start(self) -> SandboxService:
        self.server.start()
        if self.auto_deliver:
            self.dispatcher.start(self.deliver_interval)
        if self.sb.store is not None:
            self._saver = threading.Thread(
                target=self._save_loop, name="sandbox-saver", daemon=True
            )
            self._saver.start()
        return self

    def stop(self) -> None:
        self.dispatcher.stop()
        self.server.stop()
        self._saver_stop.set()
        if self._saver is not None:
            self._saver.join(timeout=5)
        self.sb.save_now()

    def _save_loop(self) -> None:
        while not self._saver_stop.wait(0.5):
            self.sb.save_if_dirty()

    # -- routing ----------------------------------------------------------------------------
    def handle(self, req: Request) -> Response:
        parts = [p for p in req.path.split("/") if p]
        if not parts:
            return Response.json({"service": "meta-sandbox", "urls": self.urls()})
        head, rest = parts[0], parts[1:]
        if head == "_sandbox":
            return control.handle(self, req, rest)
        host = HOST_PREFIXES.get(head)
        if host is None:
            return Response.json({"error": f"unknown prefix /{head}"}, status=404)
        if rest and VERSION.match(rest[0]):
            rest = rest[1:]
        if host == "facebook" and rest == ["dialog", "oauth"]:
            return oauth.facebook_dialog(self.sb, req)
        if host == "instagram" and rest == ["oauth", "authorize"]:
            return oauth.instagram_dialog(self.sb, req)
        fault = self._take_fault(host, req)
        if fault is not None:
            return fault
        latency = self.sb.world.settings.latency_ms
        if latency > 0:
            time.sleep(min(latency, 10_000) / 1000)
        if host == "facebook" and rest == ["oauth", "access_token"]:
            return oauth.facebook_access_token(self.sb, req)
        if host == "instagram" and rest == ["oauth", "access_token"] and req.method == "POST":
            return oauth.instagram_code_exchange(self.sb, req)
        if host == "instagram" and rest == ["access_token"]:
            return oauth.instagram_token(self.sb, req, refresh=False)
        if host == "instagram" and rest == ["refresh_access_token"]:
            return oauth.instagram_token(self.sb, req, refresh=True)
        return graph.handle(self.sb, req, host, rest)

    def _take_fault(self, host: Host, req: Request) -> Response | None:
        sb = self.sb
        with sb.lock:
            chosen: Fault | None = None
            for fault in sb.world.faults:
                if fault.host not in (None, host):
                    continue
                if fault.match and fault.match not in f"{req.method} {req.path}":
                    continue
                fault.seen += 1
                if fault.seen % fault.every:
                    # A spread fault lets the calls in between through.
                    sb.mark_dirty()
                    return None
                chosen = fault
                break
            if chosen is None:
                return None
            chosen.remaining -= 1
            if chosen.remaining <= 0:
                sb.world.faults.remove(chosen)
            sb.mark_dirty()
            fault = chosen.model_copy()
        return fault_response(fault, host)


def fault_response(fault: Fault, host: Host) -> Response:
    if fault.kind == "rate_limit":
        code = fault.code or 613
        err = GraphError(
            code,
            fault.message or f"(#{code}) Calls to this api have exceeded the rate limit.",
            subcode=fault.subcode,
            status=fault.status,
        )
        headers = {
            "X-App-Usage": '{"call_count":100,"total_time":100,"total_cputime":100}',
            "X-Business-Use-Case-Usage": (
                '{"0":[{"type":"instagram","call_count":100,"total_cputime":100,'
                '"total_time":100,"estimated_time_to_regain_access":1}]}'
            ),
        }
        return Response.json(err.envelope(host), status=err.http_status(host), headers=headers)
    if fault.kind == "timeout":
        err = GraphError(2, "Request timed out", status=fault.status or 504)
        response = Response.json(err.envelope(host), status=err.http_status(host))
        response.delay = fault.delay
        return response
    if fault.kind == "5xx":
        err = GraphError(
            fault.code or 2,
            fault.message or "An unexpected error has occurred. Please retry your request later.",
            subcode=fault.subcode,
            status=fault.status or 500,
            is_transient=True,
        )
        return Response.json(err.envelope(host), status=err.http_status(host))
    err = GraphError(
        fault.code or 1,
        fault.message or "An unknown error occurred",
        subcode=fault.subcode,
        status=fault.status,
    )
    return Response.json(err.envelope(host), status=err.http_status(host))
