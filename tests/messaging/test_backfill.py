"""History import against the Meta sandbox: 200 threads, interruptions, resumption, 36103."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
from django.db.models import Count
from django.test import override_settings
from django_scopes import scope

from accounts.models import InstagramAccount, Tenant
from integrations.meta.client import client_from_settings
from integrations.meta.sandbox.testing import RunningSandbox, running_sandbox
from messaging import backfill, tasks_backfill
from messaging.models import BackfillJob, Contact, Conversation, Message
from tests.factories import InstagramAccountFactory
from tests.integration.conftest import celery_worker, mail_dir  # noqa: F401 - fixtures
from tests.messaging.factories import ConversationFactory, MessageFactory

pytestmark = pytest.mark.django_db

META_APP = {"id": "880000000000001", "secret": "sbx0meta0app0secret0000000000001"}
IG_APP = {"id": "990000000000001", "secret": "sbx0instagram0app0secret00000001"}
ACME = {"ig": "17841400000000001", "page": "200000000000001", "token": "EAAGsbxPage200000000000001"}
FRESH = {"ig": "17841400000000004", "token": "IGAAsbxUser17841400000000004"}
CREATOR = {"ig": "17841400000000003", "token": "IGAAsbxUser17841400000000003"}


def sandbox_settings(sbx: RunningSandbox) -> dict[str, Any]:
    return {
        "META_GRAPH_URL": sbx.facebook_url,
        "META_INSTAGRAM_GRAPH_URL": sbx.instagram_url,
        "META_APP_ID": META_APP["id"],
        "META_APP_SECRET": META_APP["secret"],
        "META_INSTAGRAM_APP_ID": IG_APP["id"],
        "META_INSTAGRAM_APP_SECRET": IG_APP["secret"],
    }


@pytest.fixture
def sbx() -> Iterator[RunningSandbox]:
    with running_sandbox() as running, override_settings(**sandbox_settings(running)):
        yield running


@pytest.fixture
def acme(tenant: Tenant) -> InstagramAccount:
    return InstagramAccountFactory(
        tenant=tenant,
        ig_user_id=ACME["ig"],
        username="acme.store",
        page_id=ACME["page"],
        access_token=ACME["token"],
        login_kind=InstagramAccount.LoginKind.FACEBOOK,
    )


def seed_conversations(sbx: RunningSandbox, total: int, *, long_thread: bool = True) -> None:
    """Bring acme.store to ``total`` threads through the control API, with varied messages."""
    existing = len(sbx.control("GET", "conversations?account=acme.store")["data"])
    kinds = ["image", "story_mention", "post_share", "video", "audio", "file", "story_reply"]
    for n in range(total - existing):
        name = f"shopper{n:03d}"
        sbx.control("POST", "customers", {"username": name})
        sbx.customer(name, "send", account="acme.store", kind="text", text=f"Hi from {name}")
        if n % 3 == 0:
            sbx.customer(name, "send", account="acme.store", kind=kinds[n % len(kinds)])
    if long_thread:
        # One long thread: Meta shows only its 20 newest messages in detail.
        for i in range(24):
            sbx.customer("shopper000", "send", account="acme.store", kind="text", text=f"#{i}")
    page = client_from_settings().facebook_page(ACME["page"], ACME["token"])
    for name in ("shopper001", "shopper002")[: max(0, total - existing - 1)]:
        igsid = next(
            c["igsid"]
            for c in sbx.control("GET", "conversations?account=acme.store")["data"]
            if c["customer"] == name
        )
        page.send_text(igsid, f"Thanks {name}, we'll get back to you")


def expected_counts(sbx: RunningSandbox) -> tuple[int, int]:
    """(threads, messages readable in detail) as Meta would show them."""
    threads = sbx.control("GET", "conversations?account=acme.store")["data"]
    messages = 0
    for thread in threads:
        visible = [m for m in thread["messages"] if not (m["deleted"] and m["direction"] == "in")]
        messages += min(len(visible), backfill.MESSAGE_DETAIL_LIMIT)
    return len(threads), messages


def stored(tenant: Tenant, account: InstagramAccount) -> dict[str, Any]:
    with scope(tenant=tenant):
        mids = Message.objects.filter(account=account).values("mid").annotate(n=Count("id"))
        return {
            "conversations": Conversation.objects.filter(account=account).count(),
            "contacts": Contact.objects.filter(account=account).count(),
            "messages": Message.objects.filter(account=account).count(),
            "duplicated_mids": [row["mid"] for row in mids if row["n"] > 1],
            "job": BackfillJob.objects.filter(account=account).order_by("-pk").first(),
            "jobs": BackfillJob.objects.filter(account=account).count(),
        }


# -- the whole import ---------------------------------------------------------------------------


def test_backfill_imports_200_conversations_with_their_recent_messages(
    sbx: RunningSandbox, tenant: Tenant, acme: InstagramAccount
) -> None:
    seed_conversations(sbx, 200)
    threads, messages = expected_counts(sbx)
    assert threads == 200

    with mock.patch.object(tasks_backfill.backfill_account, "apply_async") as again:
        result = tasks_backfill.backfill_account(tenant.pk, acme.pk)

    assert result == "done"
    again.assert_not_called()
    got = stored(tenant, acme)
    assert got["conversations"] == 200
    assert got["contacts"] == 200
    assert got["messages"] == messages
    assert got["duplicated_mids"] == []
    job = got["job"]
    assert job.status == BackfillJob.Status.DONE
    assert job.conversations_done == 200
    assert job.conversations_estimate == 200
    assert job.messages_done == messages
    assert job.finished_at is not None
    with scope(tenant=tenant):
        long_thread = Conversation.objects.get(account=acme, contact__username="shopper000")
        assert long_thread.messages.count() == backfill.MESSAGE_DETAIL_LIMIT
        kinds = set(Message.objects.filter(account=acme).values_list("kind", flat=True))
        outbound = Message.objects.filter(account=acme, direction=Message.Direction.OUTBOUND)
        assert (
            outbound.filter(
                conversation__contact__username__in=["shopper001", "shopper002"]
            ).count()
            == 2
        )
        assert set(outbound.values_list("sender_kind", flat=True)) == {"external"}
        alice = Conversation.objects.get(account=acme, contact__username="alice")
        assert alice.customer_last_message_at is not None
        assert alice.window_closes_at is not None
        assert alice.meta_conversation_id
    assert {
        Message.Kind.TEXT,
        Message.Kind.IMAGE,
        Message.Kind.VIDEO,
        Message.Kind.AUDIO,
        Message.Kind.FILE,
        Message.Kind.STORY_MENTION,
        Message.Kind.STORY_REPLY,
        Message.Kind.POST_SHARE,
    } <= kinds

    # Running it again finds nothing left to do and stores nothing twice.
    assert tasks_backfill.backfill_account(tenant.pk, acme.pk) == "idle"
    assert stored(tenant, acme)["messages"] == messages


def test_import_stays_within_the_conversations_rate_limit(
    sbx: RunningSandbox, tenant: Tenant, acme: InstagramAccount
) -> None:
    seed_conversations(sbx, 60, long_thread=False)

    with override_settings(BACKFILL_PAGE_SIZE=10), scope(tenant=tenant):
        outcome = backfill.backfill_account_run(account=acme)
        # A run that follows at once keeps the spacing too.
        backfill.backfill_job_start(account=acme)
        with override_settings(BACKFILL_PAGE_SIZE=100):
            follow_up = backfill.backfill_account_run(account=acme)

    # Six pages at two calls a second: paced, never refused by Meta.
    assert outcome.state == "done"
    assert follow_up.state == "done"
    assert stored(tenant, acme)["conversations"] == 60


# -- interruptions ------------------------------------------------------------------------------


def test_rate_limited_import_is_rescheduled_after_metas_wait_and_resumes_without_duplicates(
    sbx: RunningSandbox, tenant: Tenant, acme: InstagramAccount
) -> None:
    seed_conversations(sbx, 50, long_thread=False)
    threads, messages = expected_counts(sbx)

    # No pacing: Meta's 2 calls/s refuse the third page.
    with (
        override_settings(BACKFILL_PAGE_SIZE=10, BACKFILL_MIN_CALL_INTERVAL=0),
        mock.patch.object(tasks_backfill.backfill_account, "apply_async") as again,
    ):
        assert tasks_backfill.backfill_account(tenant.pk, acme.pk) == "throttled"

    again.assert_called_once()
    assert again.call_args.kwargs["args"] == (tenant.pk, acme.pk)
    assert again.call_args.kwargs["countdown"] == 60  # Meta: regain access in 1 minute
    midway = stored(tenant, acme)
    job = midway["job"]
    assert job.status == BackfillJob.Status.RUNNING
    assert job.conversations_done == 20
    assert job.cursor
    assert midway["conversations"] == 20

    sbx.advance(seconds=2)
    with override_settings(BACKFILL_PAGE_SIZE=10):
        assert tasks_backfill.backfill_account(tenant.pk, acme.pk) == "done"

    got = stored(tenant, acme)
    assert got["conversations"] == threads
    assert got["messages"] == messages
    assert got["duplicated_mids"] == []
    assert got["jobs"] == 1
    assert got["job"].conversations_done == threads
    assert got["job"].messages_done == messages


def test_a_run_that_dies_mid_page_resumes_at_that_page_without_duplicates(
    sbx: RunningSandbox, tenant: Tenant, acme: InstagramAccount
) -> None:
    seed_conversations(sbx, 30, long_thread=False)
    threads, messages = expected_counts(sbx)
    real_store_thread = backfill._store_thread
    calls = {"n": 0}

    def dies_on_the_fifteenth(*args: Any, **kwargs: Any) -> int:
        calls["n"] += 1
        if calls["n"] == 15:
            raise RuntimeError("worker lost")
        return real_store_thread(*args, **kwargs)

    with (
        override_settings(BACKFILL_PAGE_SIZE=10),
        mock.patch.object(backfill, "_store_thread", dies_on_the_fifteenth),
        pytest.raises(RuntimeError),
    ):
        tasks_backfill.backfill_account(tenant.pk, acme.pk)

    midway = stored(tenant, acme)
    assert midway["conversations"] == 10  # the second page was rolled back whole
    assert midway["job"].conversations_done == 10

    with override_settings(BACKFILL_PAGE_SIZE=10):
        assert tasks_backfill.backfill_account(tenant.pk, acme.pk) == "done"

    got = stored(tenant, acme)
    assert got["conversations"] == threads
    assert got["messages"] == messages
    assert got["duplicated_mids"] == []
    assert got["job"].conversations_done == threads


def test_transient_meta_failure_retries_later_then_completes(
    sbx: RunningSandbox, tenant: Tenant, acme: InstagramAccount
) -> None:
    seed_conversations(sbx, 5, long_thread=False)
    sbx.fault(kind="5xx", count=10, match="/conversations")

    with mock.patch.object(tasks_backfill.backfill_account, "apply_async") as again:
        assert tasks_backfill.backfill_account(tenant.pk, acme.pk) == "transient"

    assert again.call_args.kwargs["kwargs"] == {"transient_failures": 1}
    assert again.call_args.kwargs["countdown"] == backfill.TRANSIENT_RETRY_SECONDS
    sbx.control("DELETE", "faults")
    assert tasks_backfill.backfill_account(tenant.pk, acme.pk, transient_failures=1) == "done"
    assert stored(tenant, acme)["conversations"] == 5


def test_messages_already_stored_by_webhooks_are_left_alone(
    sbx: RunningSandbox, tenant: Tenant, acme: InstagramAccount
) -> None:
    thread = next(
        c
        for c in sbx.control("GET", "conversations?account=acme.store")["data"]
        if c["customer"] == "alice"
    )
    first = thread["messages"][-1]
    conversation = ConversationFactory(
        account=acme, contact__igsid=thread["igsid"], contact__username="alice"
    )
    MessageFactory(conversation=conversation, mid=first["mid"], text="as the webhook said")

    assert tasks_backfill.backfill_account(tenant.pk, acme.pk) == "done"

    with scope(tenant=tenant):
        kept = Message.objects.get(account=acme, mid=first["mid"])
        assert kept.text == "as the webhook said"
        assert (
            Conversation.objects.filter(account=acme, contact__igsid=thread["igsid"]).count() == 1
        )
        assert conversation.messages.count() == len(thread["messages"])


def test_instagram_login_account_is_imported_too(sbx: RunningSandbox, tenant: Tenant) -> None:
    creator = InstagramAccountFactory(
        tenant=tenant,
        ig_user_id=CREATOR["ig"],
        username="chloe.creates",
        access_token=CREATOR["token"],
        login_kind=InstagramAccount.LoginKind.INSTAGRAM,
    )

    assert tasks_backfill.backfill_account(tenant.pk, creator.pk) == "done"

    with scope(tenant=tenant):
        contact = Contact.objects.get(account=creator)
    assert contact.username == "dmitri"


# -- failures -----------------------------------------------------------------------------------


def test_account_not_yet_eligible_fails_with_a_readable_reason(
    sbx: RunningSandbox, tenant: Tenant
) -> None:
    fresh = InstagramAccountFactory(
        tenant=tenant,
        ig_user_id=FRESH["ig"],
        username="fresh.start",
        access_token=FRESH["token"],
        login_kind=InstagramAccount.LoginKind.INSTAGRAM,
    )

    assert tasks_backfill.backfill_account(tenant.pk, fresh.pk) == "failed"

    job = stored(tenant, fresh)["job"]
    assert job.status == BackfillJob.Status.FAILED
    assert job.error == "messaging not available for this account yet"
    assert job.finished_at is not None

    # Once Meta allows it, running the task again resumes the same job.
    sbx.control("POST", "accounts/fresh.start", {"eligible": True})
    assert tasks_backfill.backfill_account(tenant.pk, fresh.pk) == "done"
    again = stored(tenant, fresh)
    assert again["job"].pk == job.pk
    assert again["job"].status == BackfillJob.Status.DONE
    assert again["conversations"] == 1


def test_task_for_another_tenants_account_does_nothing(
    sbx: RunningSandbox, other_tenant: Tenant, acme: InstagramAccount
) -> None:
    assert tasks_backfill.backfill_account(other_tenant.pk, acme.pk) == "gone"
    assert stored(acme.tenant, acme)["jobs"] == 0


def test_backfill_job_start_queues_one_job_and_enqueues_the_task_on_commit(
    tenant: Tenant, acme: InstagramAccount, django_capture_on_commit_callbacks: Any
) -> None:
    with (
        mock.patch.object(tasks_backfill.backfill_account, "delay") as delay,
        scope(tenant=tenant),
        django_capture_on_commit_callbacks(execute=True),
    ):
        first = backfill.backfill_job_start(account=acme)
        second = backfill.backfill_job_start(account=acme)

    assert first.pk == second.pk
    assert first.status == BackfillJob.Status.QUEUED
    delay.assert_called_with(tenant.pk, acme.pk)


# -- the real worker ----------------------------------------------------------------------------


@pytest.fixture
def worker_sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningSandbox]:
    """A sandbox the worker process reaches too: its settings come from the environment."""
    with running_sandbox() as running, override_settings(**sandbox_settings(running)):
        for name, value in sandbox_settings(running).items():
            monkeypatch.setenv(name, value)
        yield running


@pytest.fixture
def worker(worker_sandbox: RunningSandbox, request: pytest.FixtureRequest) -> Any:
    # The worker starts once the sandbox's settings are in its environment.
    return request.getfixturevalue("celery_worker")


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_the_worker_imports_the_history(
    worker_sandbox: RunningSandbox, worker: Any, tenant: Tenant, acme: InstagramAccount
) -> None:
    from tests.integration.conftest import wait_for

    seed_conversations(worker_sandbox, 200)
    threads, messages = expected_counts(worker_sandbox)

    tasks_backfill.backfill_account.delay(tenant.pk, acme.pk)

    def finished() -> BackfillJob | None:
        job = stored(tenant, acme)["job"]
        return job if job is not None and not job.is_active else None

    job = wait_for(finished, timeout=90, interval=0.5)
    assert job.status == BackfillJob.Status.DONE, (job.error, worker.log())
    got = stored(tenant, acme)
    assert got["conversations"] == threads == 200
    assert got["messages"] == messages
    assert got["duplicated_mids"] == []
    assert os.environ["META_GRAPH_URL"] == worker_sandbox.facebook_url


def test_a_history_import_after_a_contact_erasure_brings_nothing_of_theirs_back(
    sbx: RunningSandbox, tenant: Tenant, acme: InstagramAccount
) -> None:
    """Meta still holds the erased customer's thread; importing it again must not restore it."""
    from accounts.compliance import contact_erase

    assert tasks_backfill.backfill_account(tenant.pk, acme.pk) == "done"
    thread = next(
        c
        for c in sbx.control("GET", "conversations?account=acme.store")["data"]
        if c["customer"] == "alice"
    )
    with scope(tenant=tenant):
        contact = Contact.objects.get(account=acme, igsid=thread["igsid"])
        contact_erase(contact=contact)
        assert not Contact.objects.filter(account=acme, igsid=thread["igsid"]).exists()
        BackfillJob.objects.all().delete()

    assert tasks_backfill.backfill_account(tenant.pk, acme.pk) == "done"

    with scope(tenant=tenant):
        assert not Contact.objects.filter(account=acme, igsid=thread["igsid"]).exists()
        texts = {m["text"] for m in thread["messages"] if m.get("text")}
        assert texts, "the sandbox thread has text to look for"
        assert not Message.objects.filter(account=acme, text__in=texts).exists()
        # Everyone else's history is still imported.
        assert Conversation.objects.filter(account=acme).exists()
