"""Webhook delivery: batching, Meta's byte-exact serialisation, signatures, retries."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import secrets
import threading
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlencode, urlsplit

from .core import Sandbox
from .models import Delivery, WebhookEvent

MAX_ROUNDS = 50


def meta_json(data: Any) -> str:
    """Serialise like Meta: ASCII only (`\\uXXXX` escapes) and `/` escaped as `\\/`."""
    return json.dumps(data, ensure_ascii=True, separators=(",", ":")).replace("/", "\\/")


def signature_256(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_1(secret: str, body: bytes) -> str:
    return "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()


def _http(
    method: str, url: str, body: bytes | None, headers: dict[str, str], timeout: float
) -> tuple[int, bytes]:
    if urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"unsupported callback URL {url!r}")
    request = urllib.request.Request(url, data=body, headers=headers, method=method)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return int(response.status), response.read(65536)
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read(65536) if exc.fp else b""


def verify_callback(url: str, verify_token: str, timeout: float = 10.0) -> str | None:
    """Meta's subscription check: GET with hub.* params, expect the challenge back."""
    challenge = str(secrets.randbelow(9_000_000_000) + 1_000_000_000)
    query = urlencode(
        {"hub.mode": "subscribe", "hub.challenge": challenge, "hub.verify_token": verify_token}
    )
    sep = "&" if urlsplit(url).query else "?"
    try:
        status, body = _http("GET", f"{url}{sep}{query}", None, {}, timeout)
    except (OSError, ValueError) as exc:
        return f"could not reach the callback URL ({exc})"
    if status != 200:
        return f"the callback URL answered HTTP {status}"
    if body.decode("utf-8", "replace").strip() != challenge:
        return "the response did not match the challenge"
    return None


class Dispatcher:
    """Turns queued events into signed POSTs; one delivery pass at a time."""

    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb
        self._deliver_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._rng = random.Random(sb.world.webhook_options.seed)  # noqa: S311

    # -- background thread ------------------------------------------------------------------
    def start(self, interval: float = 0.2) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._loop, args=(interval,), name="sandbox-webhooks", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def _loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.run_once(force=False)
            except Exception:  # keep the delivery thread alive
                time.sleep(interval)

    # -- building deliveries ----------------------------------------------------------------
    def reseed(self, seed: int) -> None:
        self._rng = random.Random(seed)  # noqa: S311

    def build(self) -> int:
        """Move queued events into deliveries. Returns how many deliveries were created."""
        sb = self.sb
        with sb.lock:
            events = list(sb.world.events)
            sb.world.events.clear()
            if not events:
                return 0
            opts = sb.world.webhook_options
            groups: dict[tuple[str, str], list[WebhookEvent]] = {}
            for event in events:
                account = sb.world.accounts.get(event.account_id)
                kind = "instagram" if account and account.login == "instagram" else "meta"
                groups.setdefault((event.app_id, kind), []).append(event)
            created: list[Delivery] = []
            for (app_id, kind), group in groups.items():
                app = sb.world.apps.get(app_id)
                sub = app.subscriptions.get("instagram") if app else None
                if sub is None or not sub.active:
                    continue
                size = max(1, opts.batch_max)
                for start in range(0, len(group), size):
                    body = self._body(group[start : start + size], opts.reorder)
                    delivery = Delivery(
                        id=f"dlv_{sb.seq('delivery')}",
                        app_id=app_id,
                        url=sub.callback_url,
                        signer=kind,  # type: ignore[arg-type]
                        body=body,
                        next_at=time.time(),
                    )
                    created.append(delivery)
                    if opts.duplicate > 0 and self._rng.random() < opts.duplicate:
                        twin = delivery.model_copy(
                            update={"id": f"dlv_{sb.seq('delivery')}", "duplicate": True}
                        )
                        created.append(twin)
            if opts.reorder and len(created) > 1:
                self._shuffle(created)
            sb.world.deliveries.extend(created)
            sb.mark_dirty()
            return len(created)

    def _shuffle(self, items: list[Any]) -> None:
        original = list(items)
        self._rng.shuffle(items)
        if items == original:
            items.reverse()

    def _body(self, events: list[WebhookEvent], reorder: bool) -> str:
        now = self.sb.now_ms()
        entries: dict[tuple[str, str], dict[str, Any]] = {}
        for event in events:
            key = (event.account_id, event.channel)
            entry = entries.get(key)
            if entry is None:
                when = now // 1000 if event.channel == "changes" else now
                entry = {"id": event.account_id, "time": when, event.channel: []}
                entries[key] = entry
            entry[event.channel].append(event.item)
        ordered = list(entries.values())
        if reorder:
            for entry in ordered:
                for channel in ("messaging", "standby", "changes"):
                    if len(entry.get(channel, [])) > 1:
                        self._shuffle(entry[channel])
            if len(ordered) > 1:
                self._shuffle(ordered)
        return meta_json({"object": "instagram", "entry": ordered})

    # -- sending ----------------------------------------------------------------------------
    def run_once(self, *, force: bool) -> dict[str, int]:
        with self._deliver_lock:
            return self._pass(force=force)

    def flush(self, *, force: bool = True) -> dict[str, int]:
        """Deliver everything queued now; with `force`, retries ignore the backoff delay."""
        totals = {"delivered": 0, "failed": 0, "dropped": 0, "pending": 0}
        with self._deliver_lock:
            for _ in range(MAX_ROUNDS):
                result = self._pass(force=force)
                for key in ("delivered", "failed", "dropped"):
                    totals[key] += result[key]
                totals["pending"] = result["pending"]
                if result["pending"] == 0 or not force:
                    break
        return totals

    def _pass(self, *, force: bool) -> dict[str, int]:
        self.build()
        sb = self.sb
        result = {"delivered": 0, "failed": 0, "dropped": 0, "pending": 0}
        now = time.time()
        with sb.lock:
            due = [
                d
                for d in sb.world.deliveries
                if d.status == "pending" and (force or d.next_at <= now)
            ]
            secrets_by_app = {
                app.id: {"meta": app.secret, "instagram": app.ig_app_secret}
                for app in sb.world.apps.values()
            }
            timeout = sb.world.webhook_options.timeout
        for delivery in due:
            with sb.lock:
                if delivery.status != "pending":
                    continue
            secret = secrets_by_app.get(delivery.app_id, {}).get(delivery.signer, "")
            raw = delivery.body.encode("ascii")
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "facebookexternalua",
                "X-Hub-Signature-256": signature_256(secret, raw),
                "X-Hub-Signature": signature_1(secret, raw),
            }
            status: int | None = None
            error: str | None = None
            started = time.time()
            try:
                status, _ = _http("POST", delivery.url, raw, headers, timeout)
            except (OSError, ValueError) as exc:
                error = repr(exc)
            ok = status is not None and 200 <= status < 300
            with sb.lock:
                self._record(delivery, ok=ok, status=status, error=error, started=started)
                if ok:
                    result["delivered"] += 1
                elif delivery.status == "dropped":
                    result["dropped"] += 1
                else:
                    result["failed"] += 1
        with sb.lock:
            sb.world.deliveries = [d for d in sb.world.deliveries if d.status == "pending"]
            result["pending"] = len(sb.world.deliveries) + len(sb.world.events)
            sb.mark_dirty()
        return result

    def _record(
        self,
        delivery: Delivery,
        *,
        ok: bool,
        status: int | None,
        error: str | None,
        started: float,
    ) -> None:
        sb = self.sb
        opts = sb.world.webhook_options
        delivery.attempts += 1
        delivery.last_status = status
        delivery.last_error = error
        now_ms = sb.now_ms()
        if ok:
            delivery.status = "delivered"
            sb.world.callback_failing_since.pop(delivery.url, None)
        else:
            since = sb.world.callback_failing_since.setdefault(delivery.url, now_ms)
            if delivery.attempts >= opts.max_attempts:
                delivery.status = "dropped"
            else:
                wait = min(opts.backoff_max, opts.backoff_base * 2 ** (delivery.attempts - 1))
                delivery.next_at = time.time() + wait
            if now_ms - since >= opts.disable_after_s * 1000:
                self._disable(delivery.app_id, delivery.url)
        sb.log_delivery(
            {
                "delivery_id": delivery.id,
                "url": delivery.url,
                "attempt": delivery.attempts,
                "status": status,
                "error": error,
                "ok": ok,
                "duplicate": delivery.duplicate,
                "outcome": delivery.status,
                "at": now_ms,
                "duration_ms": int((time.time() - started) * 1000),
                "body": delivery.body,
            }
        )

    def _disable(self, app_id: str, url: str) -> None:
        """After a long outage Meta unsubscribes the app from every account."""
        sb = self.sb
        for page in sb.world.pages.values():
            page.subscribed_fields.pop(app_id, None)
        for account in sb.world.accounts.values():
            account.subscribed_fields.pop(app_id, None)
        for other in sb.world.deliveries:
            if other.url == url and other.status == "pending":
                other.status = "dropped"
        sb.world.callback_failing_since.pop(url, None)
        sb.log_delivery({"url": url, "outcome": "disabled", "at": sb.now_ms(), "app_id": app_id})

    def send_test(self, app_id: str, *, shape: str = "changes") -> None:
        """Queue a dashboard-style "Test" delivery (entry id "0")."""
        sb = self.sb
        with sb.lock:
            app = sb.world.apps[app_id]
            sub = app.subscriptions.get("instagram")
            if sub is None:
                raise ValueError("no webhook callback configured")
            sample = {
                "sender": {"id": "12334"},
                "recipient": {"id": "23245"},
                "timestamp": "1527459824",
                "message": {"mid": "random_mid", "text": "random_text"},
            }
            entry: dict[str, Any] = {"id": "0", "time": sb.now_ms() // 1000}
            if shape == "messaging":
                entry["messaging"] = [sample]
            else:
                entry["changes"] = [{"field": "messages", "value": sample}]
            sb.world.deliveries.append(
                Delivery(
                    id=f"dlv_{sb.seq('delivery')}",
                    app_id=app_id,
                    url=sub.callback_url,
                    signer="meta",
                    body=meta_json({"object": "instagram", "entry": [entry]}),
                    next_at=time.time(),
                )
            )
            sb.mark_dirty()
