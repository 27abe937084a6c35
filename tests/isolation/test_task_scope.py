"""T6: Celery task bodies run inside the tenant they were given, and fail closed without one."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest
from celery import Task
from django_scopes import ScopeError

from accounts import tasks as accounts_tasks
from accounts.models import InstagramAccount, Membership, Tenant
from accounts.tenancy import tenant_task
from config.celery_app import app
from tests.factories import InstagramAccountFactory, MembershipFactory
from tests.isolation.structure import PROBE_TENANT_ID

# Tasks that carry no tenant id, each with the reason it may not.
TENANTLESS_TASKS = {
    "maintenance.heartbeat": "records that a worker is alive; reads no tenant rows",
    "callbacks.relay": (
        "claims due partner callbacks of every workspace; each delivery is sent inside the scope "
        "of the workspace that owns it"
    ),
    "webhooks.drain": "claims stored Meta events; the webhook router opens each event's tenant",
    "accounts.refresh_instagram_tokens": (
        "beat: lists due accounts through accounts.tenancy and queues one tenant task each"
    ),
    "accounts.check_account_tokens": (
        "beat: lists due accounts through accounts.tenancy and queues one tenant task each"
    ),
    "accounts.retention_purge_all": (
        "beat: lists workspaces with a retention period through accounts.tenancy, queues one "
        "tenant task each, and blanks old raw Meta deliveries (not tenant-owned)"
    ),
    "accounts.process_data_deletion": (
        "a Meta deletion request names a person, not a workspace: it finds their accounts "
        "through accounts.tenancy and erases in each workspace inside a tenant_task"
    ),
    "accounts.delete_tenant": (
        "loads a TenantDeletionJob (not tenant-owned: it outlives its workspace); each step "
        "runs inside a tenant_task for the job's workspace"
    ),
    "accounts.compliance_resume": (
        "beat: queues again unfinished deletion requests and workspace deletions (not "
        "tenant-owned rows)"
    ),
    "automation.sweep_pending_runs": (
        "beat: lists workspace ids (Tenant is not tenant-owned) and runs the tenant task "
        "automation.sweep_pending_runs_of_tenant for each"
    ),
}

# Every function wrapped by `tenant_task` shares the wrapper's code object.
_TENANT_TASK_CODE = tenant_task(lambda tenant_id: None).__code__


def _is_tenant_task(function: Callable[..., Any]) -> bool:
    while function is not None:
        if getattr(function, "__code__", None) is _TENANT_TASK_CODE:
            return True
        function = getattr(function, "__wrapped__", None)  # type: ignore[assignment]
    return False


def _body(function: Callable[..., Any]) -> Callable[..., Any]:
    """The task's own body, under the tenant_task wrapper."""
    while getattr(function, "__code__", None) is not _TENANT_TASK_CODE:
        function = function.__wrapped__  # type: ignore[attr-defined]
    return function.__wrapped__  # type: ignore[attr-defined,no-any-return]


def _product_tasks() -> dict[str, Task]:
    app.loader.import_default_modules()  # what a worker does at start: autodiscover tasks.py
    return {name: task for name, task in app.tasks.items() if not name.startswith("celery.")}


PRODUCT_TASKS = _product_tasks()
TENANT_TASKS = sorted(name for name, t in PRODUCT_TASKS.items() if _is_tenant_task(t.run))


# -- the guard itself ------------------------------------------------------------------------


def test_scoped_query_without_a_scope_raises() -> None:
    with pytest.raises(ScopeError):
        InstagramAccount.objects.filter(pk=1).first()


calls: list[int] = []


@tenant_task
def _disconnect(tenant_id: int, account_id: int) -> None:
    """A sample task body: loads by id through the scoped manager, acts only if found."""
    account = InstagramAccount.objects.filter(pk=account_id).first()
    if account is None:
        return
    calls.append(account.pk)
    InstagramAccount.objects.filter(pk=account.pk).update(
        status=InstagramAccount.Status.DISCONNECTED
    )


@pytest.fixture(autouse=True)
def _no_calls() -> None:
    calls.clear()


@pytest.mark.django_db
def test_task_for_tenant_a_cannot_touch_b_s_row(tenant: Tenant, other_tenant: Tenant) -> None:
    theirs = InstagramAccountFactory.create(tenant=other_tenant)

    _disconnect(tenant.pk, theirs.pk)
    _disconnect(tenant_id=tenant.pk, account_id=theirs.pk)

    assert calls == []
    theirs.refresh_from_db()  # the base manager: reads the row as stored
    assert theirs.status == InstagramAccount.Status.ACTIVE


@pytest.mark.django_db
def test_task_for_the_owning_tenant_acts(other_tenant: Tenant) -> None:
    theirs = InstagramAccountFactory.create(tenant=other_tenant)
    _disconnect(other_tenant.pk, theirs.pk)
    assert calls == [theirs.pk]
    theirs.refresh_from_db()
    assert theirs.status == InstagramAccount.Status.DISCONNECTED


@pytest.mark.django_db
def test_task_for_a_missing_tenant_does_nothing(other_tenant: Tenant) -> None:
    theirs = InstagramAccountFactory.create(tenant=other_tenant)
    assert _disconnect(PROBE_TENANT_ID, theirs.pk) is None
    assert calls == []


@pytest.mark.parametrize("bad", ["1", None, True, 1.0, [1]])
def test_tenant_id_that_is_not_an_int_is_refused(bad: object) -> None:
    with pytest.raises(TypeError):
        _disconnect(bad, 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        _disconnect(tenant_id=bad, account_id=1)  # type: ignore[arg-type]


# -- every task of the product -----------------------------------------------------------------


def test_celery_tasks_are_discovered() -> None:
    assert "maintenance.heartbeat" in PRODUCT_TASKS
    assert "accounts.membership_welcome_email" in TENANT_TASKS


def test_every_task_is_a_tenant_task_or_on_the_tenantless_list() -> None:
    unaccounted = sorted(
        name for name in PRODUCT_TASKS if name not in TENANT_TASKS and name not in TENANTLESS_TASKS
    )
    assert unaccounted == [], "wrap these in accounts.tenancy.tenant_task, or list them here"


def test_tenantless_list_holds_only_real_untenanted_tasks() -> None:
    assert sorted(set(TENANTLESS_TASKS) - set(PRODUCT_TASKS)) == []
    assert sorted(set(TENANTLESS_TASKS) & set(TENANT_TASKS)) == []


@pytest.mark.parametrize("name", TENANT_TASKS)
def test_tenant_task_takes_the_tenant_id_first(name: str) -> None:
    parameters = list(inspect.signature(_body(PRODUCT_TASKS[name].run)).parameters)
    assert parameters[:1] == ["tenant_id"]


@pytest.mark.parametrize("name", TENANT_TASKS)
def test_tenant_task_body_fails_closed_without_a_scope(name: str) -> None:
    # Run the body as if the decorator were forgotten: its first query must refuse.
    body = _body(PRODUCT_TASKS[name].run)
    arguments = [PROBE_TENANT_ID] * len(inspect.signature(body).parameters)
    with pytest.raises(ScopeError):
        body(*arguments)


@pytest.mark.django_db
def test_welcome_task_with_another_tenants_membership_sends_nothing(
    tenant: Tenant, other_tenant: Tenant, mailoutbox: list[Any]
) -> None:
    theirs: Membership = MembershipFactory.create(tenant=other_tenant)

    accounts_tasks.membership_welcome_email(tenant.pk, theirs.pk)
    assert mailoutbox == []

    accounts_tasks.membership_welcome_email(other_tenant.pk, theirs.pk)
    assert [m.to for m in mailoutbox] == [[theirs.user.email]]
