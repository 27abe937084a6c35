"""Fixtures for the contract suite: the real ``MetaClient`` against one sandbox per module.

The sandbox is served once per test module and put back into the default world before every
test through the control API (``POST /_sandbox/reset``). The Conversations API limit (2 calls
per second) is relaxed after the reset; tests about rate limits set their own rules.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from integrations.meta.client import AccountClient, MetaClient, MetaConfig
from integrations.meta.sandbox.testing import RunningSandbox, running_sandbox
from tests.contract import support as w
from tests.webhook_receiver import Receiver, serving_receiver


@pytest.fixture(scope="module")
def sbx() -> Iterator[RunningSandbox]:
    with running_sandbox() as running:
        yield running


@pytest.fixture(autouse=True)
def fresh_world(sbx: RunningSandbox) -> RunningSandbox:
    sbx.control("POST", "reset", {"seed": True})
    sbx.control(
        "POST", "rate_limits", {"conversations": {"limit": 100_000}, "reset_counters": True}
    )
    return sbx


@pytest.fixture
def sleeps() -> list[float]:
    """Backoff delays the client asked for (nothing really sleeps)."""
    return []


@pytest.fixture
def make_client(sbx: RunningSandbox, sleeps: list[float]) -> Iterator[Callable[..., MetaClient]]:
    made: list[MetaClient] = []

    def make(**overrides: Any) -> MetaClient:
        client = MetaClient(w.sandbox_config(sbx, **overrides), sleep=sleeps.append)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def meta(make_client: Callable[..., MetaClient]) -> MetaClient:
    return make_client()


@pytest.fixture
def config(sbx: RunningSandbox) -> MetaConfig:
    return w.sandbox_config(sbx)


@pytest.fixture
def acme(meta: MetaClient) -> AccountClient:
    """Acme Store, connected through Facebook Login (its Page and Page token)."""
    return meta.facebook_page(w.PAGE_ACME, w.ACME_TOKEN)


@pytest.fixture
def bella(meta: MetaClient) -> AccountClient:
    return meta.facebook_page(w.PAGE_BELLA, w.BELLA_TOKEN)


@pytest.fixture
def creator(meta: MetaClient) -> AccountClient:
    """Chloe Creates, connected through Instagram Login (``me`` on graph.instagram.com)."""
    return meta.instagram_account(w.CREATOR_TOKEN)


@pytest.fixture
def fresh(meta: MetaClient) -> AccountClient:
    """An Instagram Login account not yet eligible for messaging (36103)."""
    return meta.instagram_account(w.NOT_ELIGIBLE_TOKEN)


@pytest.fixture
def quiet(meta: MetaClient) -> AccountClient:
    """An Instagram Login account whose owner turned "Allow access to messages" off."""
    return meta.instagram_account(w.NO_ACCESS_TOKEN)


# -- webhook receiver ------------------------------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with serving_receiver(w.VERIFY_TOKEN) as recv:
        yield recv
