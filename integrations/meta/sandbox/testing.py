"""In-process sandbox for tests: `with running_sandbox() as sandbox: ...`."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .core import Sandbox
from .service import SandboxService


class RunningSandbox:
    """A served sandbox: URLs plus direct and HTTP access to its state and controls."""

    def __init__(self, service: SandboxService) -> None:
        self.service = service

    @property
    def url(self) -> str:
        return self.service.url

    @property
    def facebook_url(self) -> str:
        return self.service.facebook_url

    @property
    def instagram_url(self) -> str:
        return self.service.instagram_url

    @property
    def sandbox(self) -> Sandbox:
        return self.service.sb

    def control(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """Call the control API, e.g. `control("POST", "clock/advance", {"hours": 25})`."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310
            f"{self.url}/_sandbox/{path.lstrip('/')}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return json.loads(response.read())

    def customer(self, ref: str, action: str, **body: Any) -> Any:
        return self.control("POST", f"customers/{ref}/{action}", body)

    def received(self, ref: str, account: str | None = None) -> list[dict[str, Any]]:
        suffix = f"?account={account}" if account else ""
        return self.control("GET", f"customers/{ref}/received{suffix}")["received"]

    def configure_webhooks(self, callback_url: str, **body: Any) -> Any:
        return self.control("POST", "webhooks/config", {"callback_url": callback_url, **body})

    def flush(self, force: bool = True) -> dict[str, int]:
        return self.service.dispatcher.flush(force=force)

    def advance(self, **delta: float) -> Any:
        return self.control("POST", "clock/advance", delta)

    def fault(self, **body: Any) -> Any:
        return self.control("POST", "faults", body)


@contextmanager
def running_sandbox(
    state_path: str | Path | None = None,
    *,
    seed: bool = True,
    auto_deliver: bool = False,
    relaxed_rate_limits: bool = False,
) -> Iterator[RunningSandbox]:
    """Serve a sandbox on a free 127.0.0.1 port in a background thread for the duration."""
    service = SandboxService(state_path, port=0, seed=seed, auto_deliver=auto_deliver)
    if relaxed_rate_limits:
        with service.sb.lock:
            for rule in service.sb.world.rate_rules.values():
                rule.limit = max(rule.limit, 100_000)
    service.start()
    try:
        yield RunningSandbox(service)
    finally:
        service.stop()
