"""Fixtures for the Meta client tests. Nothing here needs Django or a database."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import responses

from integrations.meta.client import MetaClient, MetaConfig

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "meta"

APP_ID = "111111111111111"
APP_SECRET = "meta-app-secret"
IG_APP_ID = "222222222222222"
IG_APP_SECRET = "instagram-app-secret"
PAGE_ID = "1234567890"
IG_ID = "17841400000000000"
IGSID = "6543210987654321"
PAGE_TOKEN = "EAAGpagetokenSECRET"
IG_TOKEN = "IGQWRigtokenSECRET"

# Hypothesis examples per property; CI can raise it (e.g. 10000) through the environment.
HYPOTHESIS_EXAMPLES = int(os.environ.get("META_HYPOTHESIS_EXAMPLES", "500"))


def load_fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def load_fixture(name: str) -> Any:
    return json.loads(load_fixture_bytes(name))


def fixture_names() -> list[str]:
    return sorted(p.name for p in FIXTURES.glob("*.json"))


@pytest.fixture
def config() -> MetaConfig:
    return MetaConfig(
        app_id=APP_ID,
        app_secret=APP_SECRET,
        instagram_app_id=IG_APP_ID,
        instagram_app_secret=IG_APP_SECRET,
        graph_version="v25.0",
    )


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def client(config: MetaConfig, sleeps: list[float]) -> Iterator[MetaClient]:
    with MetaClient(config, sleep=sleeps.append) as meta:
        yield meta


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    """Every outbound request must be registered; unexpected ones fail the test."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def graph_error() -> Callable[..., dict[str, Any]]:
    def make(code: int, subcode: int | None = None, message: str = "(#0) Error") -> dict[str, Any]:
        error: dict[str, Any] = {
            "message": message,
            "type": "OAuthException",
            "code": code,
            "fbtrace_id": "AbCdEfGh123",
        }
        if subcode is not None:
            error["error_subcode"] = subcode
        return {"error": error}

    return make
