"""Sending against the Meta sandbox: its default world seeded here, the outbox driven in-process,
and (for the reliability drills) a real outbound worker with a thread pool and the relay."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone
from django_scopes import scope

from accounts.models import InstagramAccount, Tenant
from integrations.meta.sandbox.testing import RunningSandbox, running_sandbox
from messaging import outbox, ratelimit
from messaging.models import Comment, Contact, Conversation, OutboundJob, WindowOpener
from tests.factories import TenantFactory

ROOT = Path(__file__).resolve().parents[2]
META_APP_ID = "880000000000001"
META_APP_SECRET = "sbx0meta0app0secret0000000000001"
ACME_PAGE = "200000000000001"
ACME_IG = "17841400000000001"
ACME_TOKEN = "EAAGsbxPage200000000000001"
BELLA_PAGE = "200000000000002"
BELLA_IG = "17841400000000002"
BELLA_TOKEN = "EAAGsbxPage200000000000002"
IGSID = {"alice": "6000000000100001", "bob": "6000000000100002", "carla": "6000000000100003"}
LONG = os.environ.get("OUTBOUND_LONG") == "1"

# Fast retries for tests; production values are in config/settings/base.py.
FAST = {
    "OUTBOUND_BACKOFF_BASE": 0.05,
    "OUTBOUND_BACKOFF_CAP": 0.5,
    "OUTBOUND_LEASE_SECONDS": 4,
    "OUTBOUND_REPUBLISH_AFTER": 4,
    "OUTBOUND_RATE_LIMIT_PAUSE": 0.5,
    "OUTBOUND_RATE_LIMIT_PAUSE_MAX": 1.0,
    "OUTBOUND_RECONCILE_RETRY": 0.5,
    "OUTBOUND_TOKEN_MAX_WAIT": 1.0,
    "META_TIMEOUT_SECONDS": 2.0,
}


@pytest.fixture
def sandbox(settings: Any) -> Iterator[RunningSandbox]:
    with running_sandbox() as sbx:
        sbx.control(
            "POST",
            "rate_limits",
            {
                "buc": {"limit": 1_000_000, "window_s": 3600},
                "app": {"limit": 1_000_000, "window_s": 3600},
                "conversations": {"limit": 1000, "window_s": 1},
            },
        )
        settings.META_GRAPH_URL = sbx.facebook_url
        settings.META_INSTAGRAM_GRAPH_URL = sbx.instagram_url
        settings.META_APP_ID = META_APP_ID
        settings.META_APP_SECRET = META_APP_SECRET
        for name, value in FAST.items():
            setattr(settings, name, value)
        yield sbx


@dataclass
class World:
    tenant: Tenant
    acme: InstagramAccount
    bella: InstagramAccount
    conversations: dict[str, Conversation] = field(default_factory=dict)

    def conversation(self, who: str) -> Conversation:
        return self.conversations[who]


def _account(tenant: Tenant, page: str, ig: str, token: str, username: str) -> InstagramAccount:
    return InstagramAccount.objects.create(
        tenant=tenant,
        ig_user_id=ig,
        username=username,
        login_kind=InstagramAccount.LoginKind.FACEBOOK,
        page_id=page,
        access_token=token,
    )


def add_conversation(account: InstagramAccount, igsid: str, ago: timedelta | None) -> Conversation:
    contact = Contact.objects.create(tenant=account.tenant, account=account, igsid=igsid)
    last = timezone.now() - ago if ago is not None else None
    return Conversation.objects.create(
        tenant=account.tenant,
        account=account,
        contact=contact,
        last_message_at=last,
        customer_last_message_at=last,
        window_opened_by=WindowOpener.MESSAGE if last else "",
    )


def customers(
    sandbox: RunningSandbox, world: World, n: int, account: str = "acme.store"
) -> list[Conversation]:
    """n new customers who each just wrote to the account (its window is open)."""
    target = world.acme if account == "acme.store" else world.bella
    made = []
    for i in range(n):
        name = f"{account.split('.')[0]}{i}_{time.monotonic_ns() % 10**6}"
        sandbox.control("POST", "customers", {"username": name, "name": name, "follows": [account]})
        got = sandbox.customer(name, "send", account=account, text="hello")
        made.append(add_conversation(target, got["igsid"], timedelta(minutes=1)))
    return made


@pytest.fixture
def fresh_memory() -> Iterator[None]:
    """What workers remember per process (workspaces seen, partner endpoints) starts and ends
    empty, so statement counts do not depend on the tests before."""
    from accounts import tenancy
    from webhooks import partner_events

    tenancy.forget_tenants()
    partner_events.forget_endpoints()
    yield
    tenancy.forget_tenants()
    partner_events.forget_endpoints()


@pytest.fixture
def world(db: Any, sandbox: RunningSandbox) -> Iterator[World]:
    """The sandbox's Acme Store and Bella Boutique, connected to one tenant, with the threads of
    the default world: alice wrote 1 h ago, bob 2 days ago, carla 10 days ago."""
    tenant = TenantFactory(name="Acme agency")
    with scope(tenant=tenant.pk):
        acme = _account(tenant, ACME_PAGE, ACME_IG, ACME_TOKEN, "acme.store")
        bella = _account(tenant, BELLA_PAGE, BELLA_IG, BELLA_TOKEN, "bella.boutique")
        w = World(tenant=tenant, acme=acme, bella=bella)
        for who, ago in (
            ("alice", timedelta(hours=1)),
            ("bob", timedelta(days=2)),
            ("carla", timedelta(days=10)),
        ):
            w.conversations[who] = add_conversation(acme, IGSID[who], ago)
        for account in (acme, bella):
            ratelimit.reset(account.pk)
        yield w


def add_comment(account: InstagramAccount, comment_id: str, ago: timedelta) -> Comment:
    return Comment.objects.create(
        tenant=account.tenant,
        account=account,
        comment_id=comment_id,
        media_id="17900000000000001",
        commented_at=timezone.now() - ago,
    )


@pytest.fixture
def drive() -> Iterator[Callable[..., dict[str, int]]]:
    """Run the outbox in this process until nothing is left to do: pump, send in batches as
    the ``outbound.send_batch`` task does, repeat.

    Publishing is replaced by a list; rows waiting for a retry are made due at once.
    """
    published: list[int] = []

    def collect(tenant_id: int, job_ids: Any) -> int:
        ids = list(job_ids)
        published.extend(ids)
        return len(ids)

    with mock.patch.object(outbox, "_publish", side_effect=collect):

        def run(account: InstagramAccount, *, rounds: int = 200) -> dict[str, int]:
            outcomes: dict[str, int] = {}
            for _ in range(rounds):
                OutboundJob.objects.filter(
                    account=account, status=OutboundJob.Status.PENDING
                ).update(next_attempt_at=None)
                ratelimit.reset(account.pk)
                outbox.pump(account_id=account.pk)
                if not published:
                    break
                while published:
                    # As a worker takes them: a batch of the account's rows per task.
                    batch = published[: outbox.batch_size()]
                    del published[: len(batch)]
                    for state, count in outbox.batch_run(job_ids=batch).items():
                        outcomes[state] = outcomes.get(state, 0) + count
            return outcomes

        yield run


# -- real processes ------------------------------------------------------------------------


def process_env(sbx: RunningSandbox, **extra: Any) -> dict[str, str]:
    db = settings.DATABASES["default"]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": (
            f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{connection.settings_dict['NAME']}"
        ),
        "META_GRAPH_URL": sbx.facebook_url,
        "META_INSTAGRAM_GRAPH_URL": sbx.instagram_url,
        "META_APP_ID": META_APP_ID,
        "META_APP_SECRET": META_APP_SECRET,
        "CELERY_VISIBILITY_TIMEOUT": "30",
        "LOG_LEVEL": "WARNING",
        **{k: str(v) for k, v in FAST.items()},
    }
    env.update({k: str(v) for k, v in extra.items()})
    return env


@dataclass
class Proc:
    command: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        log = self.log_path.open("ab")
        # Its own process group, so a kill reaches the whole worker (main process and pool).
        self.process = subprocess.Popen(
            self.command,
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def kill_group(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=20)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill_group()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def worker_command(pool: str = "threads", concurrency: int = 32) -> list[str]:
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "config.celery_app",
        "worker",
        "-Q",
        "outbound",
        "-P",
        pool,
        "-c",
        str(concurrency),
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "-l",
        "WARNING",
    ]


RELAY_COMMAND = [sys.executable, "manage.py", "outbound_relay", "--interval", "0.2"]


@pytest.fixture
def processes(transactional_db: Any, tmp_path: Path) -> Iterator[Callable[..., Proc]]:
    """Start worker/relay processes against the test database; all stopped afterwards."""
    from config.celery_app import app

    app.control.purge()
    started: list[Proc] = []

    def start(command: list[str], env: dict[str, str], name: str) -> Proc:
        proc = Proc(command=command, env=env, log_path=tmp_path / f"{name}.log").start()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()
        print(f"--- {proc.log_path.name} ---\n{proc.log()[-4000:]}")
    app.control.purge()


@pytest.fixture
def world_api(world: World, make_api_key: Callable[..., Any]) -> Any:
    """A partner API client holding a key of the world's tenant (every scope)."""
    from rest_framework.test import APIClient

    _, secret = make_api_key(world.tenant)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client
