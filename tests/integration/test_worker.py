"""The Celery worker really runs tasks from Redis against PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from django.core.cache import cache
from django.test import Client
from django_scopes import scope

from accounts import services
from accounts.models import Membership, Role, Tenant
from config.health import HEARTBEAT_KEY
from tests.factories import UserFactory
from tests.integration.conftest import Worker, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_healthz_reports_the_worker_only_while_one_runs(
    celery_worker: Worker,
) -> None:
    client = Client()
    wait_for(lambda: client.get("/healthz").status_code == 200)
    body = client.get("/healthz").json()
    assert body["checks"]["database"]["ok"]
    assert body["checks"]["redis"]["ok"]
    assert body["checks"]["worker"]["ok"]

    celery_worker.stop()
    cache.delete(HEARTBEAT_KEY)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["worker"]["ok"] is False


def test_accepting_an_invitation_sends_a_welcome_email_from_the_worker(
    celery_worker: Worker,
    tenant: Tenant,
    owner: Membership,
    mail_dir: Path,
) -> None:
    person = UserFactory(email="new.agent@example.com")
    with scope(tenant=tenant):
        _, token = services.invitation_create(
            tenant=tenant,
            email=person.email,
            role=Role.AGENT,
            invited_by=owner.user,
            acting_role=Role.OWNER,
        )
    services.invitation_accept(token=token, user=person)

    def welcome_mail() -> str | None:
        for path in mail_dir.glob("*.log"):
            text = path.read_text()
            if person.email in text and tenant.name in text:
                return text
        return None

    text = wait_for(welcome_mail, timeout=30)
    assert "Agent" in text


def test_a_task_for_another_tenants_row_does_nothing(
    celery_worker: Worker,
    tenant: Tenant,
    other_tenant: Tenant,
    make_member: Callable[..., Membership],
    mail_dir: Path,
) -> None:
    from accounts import tasks

    foreign = make_member(other_tenant, Role.AGENT)
    mine = make_member(tenant, Role.AGENT)
    # The foreign membership id under this tenant's id: found by no scoped query, so no mail.
    tasks.membership_welcome_email.delay(tenant.pk, foreign.pk)
    tasks.membership_welcome_email.delay(tenant.pk, mine.pk)

    def mails_to(email: str) -> int:
        return sum(email in p.read_text() for p in mail_dir.glob("*.log"))

    wait_for(lambda: celery_worker.log().count("membership_welcome_email") >= 4, timeout=30)
    wait_for(lambda: mails_to(mine.user.email) == 1, timeout=30)
    assert celery_worker.log().count("succeeded") >= 2  # both ran; the foreign one did nothing
    assert mails_to(foreign.user.email) == 0


def test_the_worker_and_its_pool_run_nicer_than_web_requests(celery_worker: Worker) -> None:
    """On shared CPUs acknowledgements and pages go first (``WORKER_CPU_NICE``, 10)."""
    import os

    def nice_of(pid: int) -> int:
        # /proc/<pid>/stat: the 19th field is the nice value (after the parenthesised name).
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[16])

    def pool() -> list[int]:
        children = Path(f"/proc/{celery_worker.process.pid}/task/{celery_worker.process.pid}")
        text = (children / "children").read_text() if (children / "children").exists() else ""
        return [int(pid) for pid in text.split()]

    wait_for(lambda: len(pool()) == 2, timeout=30)
    here = os.nice(0)
    assert nice_of(celery_worker.process.pid) == here + 10
    assert [nice_of(pid) for pid in pool()] == [here + 10, here + 10]


def test_the_worker_keeps_its_database_connections_between_tasks(
    celery_worker: Worker,
    tenant: Tenant,
    other_tenant: Tenant,
    make_member: Callable[..., Membership],
) -> None:
    """Tasks borrow connections from the worker's pool (``WORKER_DB_POOL``): thirty tasks
    open a handful of sessions in PostgreSQL, not thirty."""
    from django.db import connection

    from accounts import tasks

    foreign = make_member(other_tenant, Role.AGENT)

    def sessions() -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
            )
            return int(cursor.fetchone()[0])

    wait_for(lambda: "ready" in celery_worker.log(), timeout=30)
    tasks.membership_welcome_email.delay(tenant.pk, foreign.pk)  # the pool children connect
    wait_for(lambda: celery_worker.log().count("succeeded") >= 1, timeout=30)
    before = sessions()
    for _ in range(30):
        # Another tenant's membership: each task reads the database and finds nothing.
        tasks.membership_welcome_email.delay(tenant.pk, foreign.pk)
    wait_for(lambda: celery_worker.log().count("succeeded") >= 31, timeout=60)
    time.sleep(1.0)  # PostgreSQL publishes its session counts about once a second
    assert sessions() - before <= 4
