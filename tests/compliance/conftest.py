from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django_scopes import scope

from accounts import compliance
from accounts.models import InstagramAccount, Tenant
from tests.factories import InstagramAccountFactory
from tests.messaging.inbound_support import BUSINESS
from webhooks.models import CallbackEndpoint, CallbackEventType


@pytest.fixture
def account(tenant: Tenant) -> InstagramAccount:
    return InstagramAccountFactory(
        tenant=tenant, ig_user_id=BUSINESS, username="acme_shop", access_token="EAAG-SECRET-TOKEN"
    )


@pytest.fixture
def endpoint(tenant: Tenant) -> CallbackEndpoint:
    """A partner subscribed to every event, so partner events and deliveries are stored."""
    with scope(tenant=tenant):
        return CallbackEndpoint.objects.create(
            tenant=tenant,
            url="https://partner.example/hooks",
            events=list(CallbackEventType.values),
            secret="partner-signing-secret",
        )


@pytest.fixture
def queued(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, tuple[Any, ...]]]:
    """Tasks the compliance services queue, recorded instead of published."""
    calls: list[tuple[str, tuple[Any, ...]]] = []
    monkeypatch.setattr(compliance, "_enqueue", lambda name, *args: calls.append((name, args)))
    return calls


@pytest.fixture
def run_queued(
    queued: list[tuple[str, tuple[Any, ...]]],
) -> Callable[[], list[str]]:
    """Run every recorded task in order, as the worker would; the names run."""
    from accounts import tasks

    by_name = {
        "accounts.erase_contact": tasks.erase_contact,
        "accounts.process_data_deletion": tasks.process_data_deletion,
        "accounts.delete_tenant": tasks.delete_tenant,
        "accounts.retention_purge": tasks.retention_purge,
    }

    def run() -> list[str]:
        names = []
        while queued:
            name, args = queued.pop(0)
            by_name[name](*args)
            names.append(name)
        return names

    return run
