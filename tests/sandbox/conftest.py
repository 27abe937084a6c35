"""Fixtures for the Meta sandbox tests: a served sandbox and a webhook receiver."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from integrations.meta.sandbox.testing import RunningSandbox, running_sandbox  # noqa: E402
from tests.webhook_receiver import Receiver, serving_receiver  # noqa: E402


@pytest.fixture
def sandbox() -> Iterator[RunningSandbox]:
    with running_sandbox() as running:
        yield running


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with serving_receiver("sandbox-verify-token") as recv:
        yield recv
