"""Accounts share the platform's in-flight sends: each account with rows to send gets an equal
part of ``OUTBOUND_TOTAL_IN_FLIGHT``, so one account's backlog cannot hold back the others.
Accounts whose rows are all finished, or only held, take no part."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django_scopes import scope

from integrations.meta.sandbox.testing import RunningSandbox
from messaging import outbox
from messaging.models import OutboundJob
from messaging.services import outbound
from messaging.services.outbound import OutboundContent, Sender
from tests.outbound.conftest import World, _account, add_conversation
from tests.outbound.test_batch import _published

Status = OutboundJob.Status


@pytest.fixture
def shares(settings: Any) -> Iterator[None]:
    settings.OUTBOUND_TOTAL_IN_FLIGHT = 12
    settings.OUTBOUND_ACCOUNT_MAX_IN_FLIGHT = 100
    settings.OUTBOUND_RATE_LIMITS = {**settings.OUTBOUND_RATE_LIMITS, "text": (1000, 1.0)}
    outbox._sharing.clear()
    yield
    outbox._sharing.clear()


def _queue(world: World, account_name: str, igsid: str, status: str) -> OutboundJob:
    with scope(tenant=world.tenant.pk):
        account = {"acme": world.acme, "bella": world.bella}.get(account_name) or _account(
            world.tenant, f"page-{account_name}", f"ig-{account_name}", "token", account_name
        )
        conversation = add_conversation(account, igsid, timedelta(minutes=1))
        message = outbound.message_send(
            conversation=conversation,
            sender=Sender.automation("share"),
            content=OutboundContent(kind="text", text=f"to {igsid}"),
        )
        job = OutboundJob.objects.get(message=message)
        job.status = status
        job.save(update_fields=["status"])
        return job


def _share_now() -> int:
    outbox._sharing.clear()  # counted at most once a second; the test does not wait
    return outbox.account_share()


def test_accounts_with_rows_to_send_split_the_in_flight_budget(
    world: World, sandbox: RunningSandbox, shares: None
) -> None:
    outbound.messaging_settings_update(tenant_id=world.tenant.pk, disclosure_mode="never")
    _queue(world, "acme", "igsid-a1", Status.PENDING)
    _queue(world, "acme", "igsid-a2", Status.PUBLISHED)
    sending = _queue(world, "bella", "igsid-b1", Status.SENDING)
    _queue(world, "done.shop", "igsid-d1", Status.SENT)
    _queue(world, "paused.shop", "igsid-p1", Status.HELD)

    # Acme and Bella are sending; the account that is done and the one on hold are not.
    assert _share_now() == 6

    sending.status = Status.SENT
    sending.save(update_fields=["status"])
    assert _share_now() == 12


def test_the_share_never_falls_below_two_rows(
    world: World, sandbox: RunningSandbox, shares: None, settings: Any
) -> None:
    settings.OUTBOUND_TOTAL_IN_FLIGHT = 3
    outbound.messaging_settings_update(tenant_id=world.tenant.pk, disclosure_mode="never")
    for n, name in enumerate(("acme", "bella", "third.shop", "fourth.shop")):
        _queue(world, name, f"igsid-{n}", Status.PENDING)
    assert _share_now() == 2


def test_a_round_of_the_relay_hands_on_no_more_than_the_account_share(
    world: World, sandbox: RunningSandbox, shares: None, settings: Any
) -> None:
    """Eight threads wait, each with its first send; the account may have four in flight: one
    round hands on four (the oldest), the next none until some are sent. (The hand-on once let
    the planner run its locking subquery again per waiting row, and all eight went.)"""
    settings.OUTBOUND_TOTAL_IN_FLIGHT = 4
    outbound.messaging_settings_update(tenant_id=world.tenant.pk, disclosure_mode="never")
    queued = [_queue(world, "acme", f"igsid-{n}", Status.PENDING) for n in range(8)]
    outbox._sharing.clear()
    handed = _published(world)
    assert handed == sorted(job.pk for job in queued)[:4]
    assert _published(world) == []
    with scope(tenant=world.tenant.pk):
        assert OutboundJob.objects.filter(status=Status.PUBLISHED).count() == 4
