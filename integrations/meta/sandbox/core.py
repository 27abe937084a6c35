"""The sandbox object: world state, clock, ids, persistence, rate counters."""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .models import (
    Conversation,
    Customer,
    IgAccount,
    RateRule,
    Token,
    WebhookEvent,
    World,
)

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
LONG_LIVED_S = 5_183_944
MAX_LOG = 500
MAX_EVENTS = 100_000


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode().rstrip("=")


def iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime(ms / 1000))


class RateTracker:
    """Sliding-window counters keyed by (subject, category), on the sandbox clock."""

    def __init__(self) -> None:
        self._hits: dict[tuple[str, str], deque[int]] = {}

    def _window(self, key: tuple[str, str], rule: RateRule, now_ms: int) -> deque[int]:
        hits = self._hits.setdefault(key, deque())
        horizon = now_ms - int(rule.window_s * 1000)
        while hits and (hits[0] <= horizon or hits[0] > now_ms):
            hits.popleft()
        return hits

    def usage(self, key: tuple[str, str], rule: RateRule, now_ms: int) -> tuple[int, int]:
        """(calls in the window, ms until the oldest call leaves it)."""
        hits = self._window(key, rule, now_ms)
        wait = 0
        if hits:
            wait = max(0, hits[0] + int(rule.window_s * 1000) - now_ms)
        return len(hits), wait

    def hit(self, key: tuple[str, str], rule: RateRule, now_ms: int) -> bool:
        hits = self._window(key, rule, now_ms)
        if len(hits) >= rule.limit:
            return False
        hits.append(now_ms)
        return True

    def clear(self) -> None:
        self._hits.clear()


class StateStore:
    """Persists the world as one JSON row in SQLite."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.closing(sqlite3.connect(self.path)) as conn, conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS world (id INTEGER PRIMARY KEY CHECK (id = 1), "
                "data TEXT NOT NULL, saved_at REAL NOT NULL)"
            )

    def load(self) -> World | None:
        with contextlib.closing(sqlite3.connect(self.path)) as conn:
            row = conn.execute("SELECT data FROM world WHERE id = 1").fetchone()
        if row is None:
            return None
        return World.model_validate_json(row[0])

    def save(self, data: str) -> None:
        with contextlib.closing(sqlite3.connect(self.path)) as conn, conn:
            conn.execute(
                "INSERT INTO world (id, data, saved_at) VALUES (1, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET data = excluded.data, saved_at = excluded.saved_at",
                (data, time.time()),
            )


class Sandbox:
    """Thread-safe holder of the simulated world. Take `lock` around any state access."""

    def __init__(self, state_path: str | Path | None = None, *, seed: bool = True) -> None:
        self.lock = threading.RLock()
        self.store = StateStore(state_path) if state_path else None
        self.rates = RateTracker()
        self._dirty = threading.Event()
        loaded = self.store.load() if self.store else None
        self.world = loaded or World()
        if loaded is None and seed:
            from .seed import seed_default_world

            seed_default_world(self)
        self.save_now()

    # -- persistence ---------------------------------------------------------------------
    def mark_dirty(self) -> None:
        self._dirty.set()

    def save_now(self) -> None:
        if self.store is None:
            return
        with self.lock:
            data = self.world.model_dump_json()
            self._dirty.clear()
        self.store.save(data)

    def save_if_dirty(self) -> None:
        if self._dirty.is_set():
            self.save_now()

    # -- clock ---------------------------------------------------------------------------
    def now_ms(self) -> int:
        return int((time.time() + self.world.clock_offset_s) * 1000)

    def advance(self, seconds: float) -> int:
        with self.lock:
            self.world.clock_offset_s += seconds
            self.mark_dirty()
            return self.now_ms()

    # -- ids -----------------------------------------------------------------------------
    def seq(self, name: str, start: int = 1) -> int:
        value = self.world.counters.get(name, start - 1) + 1
        self.world.counters[name] = value
        return value

    def new_mid(self, ig_id: str) -> str:
        return b64(f"ig_message_item:1:IGMessageThread:{ig_id}:{self.seq('mid'):012d}")

    def new_conversation_id(self, ig_id: str, igsid: str) -> str:
        return "aWdfZAG06" + b64(f"MTpJR01lc3NhZA2VUaHJlYWQ6{ig_id}:{igsid}")

    def new_token(self, prefix: str) -> str:
        return prefix + secrets.token_urlsafe(40).replace("-", "A").replace("_", "B")

    # -- lookups -------------------------------------------------------------------------
    def default_app_id(self) -> str:
        return next(iter(self.world.apps))

    def account_for_page(self, page_id: str) -> IgAccount | None:
        page = self.world.pages.get(page_id)
        if page is None or page.ig_account_id is None:
            return None
        return self.world.accounts.get(page.ig_account_id)

    def find_customer(self, ref: str) -> Customer | None:
        world = self.world
        if ref in world.customers:
            return world.customers[ref]
        for customer in world.customers.values():
            if ref in (customer.username, customer.ig_user_id) or ref in customer.igsids.values():
                return customer
        return None

    def find_account(self, ref: str) -> IgAccount | None:
        world = self.world
        if ref in world.accounts:
            return world.accounts[ref]
        if ref in world.pages:
            return self.account_for_page(ref)
        for account in world.accounts.values():
            if ref in (account.username, account.app_scoped_id):
                return account
        return None

    def igsid_for(self, customer: Customer, account: IgAccount) -> str:
        igsid = customer.igsids.get(account.id)
        if igsid is None:
            igsid = str(6_000_000_000_000_000 + account.seq * 100_000 + customer.seq)
            customer.igsids[account.id] = igsid
        return igsid

    def customer_by_igsid(self, ig_id: str, igsid: str) -> Customer | None:
        for customer in self.world.customers.values():
            if customer.igsids.get(ig_id) == igsid:
                return customer
        return None

    def conversation_for(self, account: IgAccount, customer: Customer) -> Conversation:
        igsid = self.igsid_for(customer, account)
        conv_id = self.new_conversation_id(account.id, igsid)
        conv = self.world.conversations.get(conv_id)
        if conv is None:
            conv = Conversation(
                id=conv_id,
                ig_id=account.id,
                igsid=igsid,
                customer_id=customer.id,
                updated_ms=self.now_ms(),
            )
            self.world.conversations[conv_id] = conv
        return conv

    def thread_owner(self, conv: Conversation) -> str | None:
        if conv.owner_app_id and conv.owner_expires_ms and conv.owner_expires_ms <= self.now_ms():
            conv.owner_app_id = None
            conv.owner_expires_ms = 0
        return conv.owner_app_id

    def app_secret_for(self, app_id: str, host: str) -> str:
        app = self.world.apps[app_id]
        return app.ig_app_secret if host == "instagram" else app.secret

    def tokens_of(self, **match: str) -> Iterator[Token]:
        for token in self.world.tokens.values():
            if all(getattr(token, key) == value for key, value in match.items()):
                yield token

    # -- webhooks ------------------------------------------------------------------------
    def enqueue_event(
        self,
        account: IgAccount,
        channel: str,
        field: str,
        item: dict[str, Any],
        conv: Conversation | None = None,
    ) -> None:
        """Queue one event for each app whose webhooks would carry it.

        Messaging events of a thread owned by another app go to the `standby` channel.
        """
        for app in self.world.apps.values():
            if not self._account_subscribed(app.id, account):
                continue
            sub = app.subscriptions.get("instagram")
            if sub is None or not sub.active:
                continue
            app_channel, app_field, app_item = channel, field, item
            if (
                channel == "messaging"
                and conv is not None
                and not item.get("message", {}).get("is_echo")
            ):
                owner = self.thread_owner(conv)
                if owner is not None and owner != app.id:
                    app_channel, app_field = "standby", "standby"
                    if "postback" in item:
                        app_item = json.loads(json.dumps(item))
                        app_item["postback"].pop("payload", None)
            if app_field not in sub.fields:
                continue
            if len(self.world.events) >= MAX_EVENTS:
                self.world.events.pop(0)
            self.world.events.append(
                WebhookEvent(
                    app_id=app.id,
                    account_id=account.id,
                    channel=app_channel,  # type: ignore[arg-type]
                    field=app_field,
                    item=json.loads(json.dumps(app_item)),
                    created_ms=self.now_ms(),
                )
            )
        self.mark_dirty()

    def _account_subscribed(self, app_id: str, account: IgAccount) -> bool:
        if account.login == "instagram":
            return bool(account.subscribed_fields.get(app_id))
        page = self.world.pages.get(account.page_id or "")
        return page is not None and bool(page.subscribed_fields.get(app_id))

    def log_delivery(self, entry: dict[str, Any]) -> None:
        log = self.world.delivery_log
        log.append(entry)
        if len(log) > MAX_LOG:
            del log[: len(log) - MAX_LOG]
