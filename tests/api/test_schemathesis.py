"""F1: schemathesis against the partner API in-process, as tenant A with tenant B's rows seeded.

Every operation of the schema gets generated requests (valid and invalid) with A's all-scope
key; no answer may be a server error, and every documented answer must match its schema. At
least 1,000 cases run in total.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from config.wsgi import application
from tests.isolation.seed import TenantSeed, seed_tenant

EXAMPLES_PER_OPERATION = 30
MIN_CASES = 1000

schema = schemathesis.openapi.from_wsgi("/api/v1/schema/?format=json", application)
CASES: list[str] = []


@pytest.fixture
def tenant_a(db: Any) -> Iterator[TenantSeed]:
    """A and B seeded; the raw WSGI app keeps the test's database connection (as the test
    client does), so every request sees the seeded rows inside the test's transaction."""
    seed_tenant("B")
    seeded = seed_tenant("A")
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield seeded
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_the_api_honours_its_schema(case: Any, tenant_a: TenantSeed) -> None:
    CASES.append(case.operation.label)
    case.call_and_validate(
        headers={"Authorization": f"Bearer {tenant_a.api_secret}"},
        checks=[not_a_server_error, response_schema_conformance],
    )


def test_enough_cases_ran() -> None:
    if not CASES:
        pytest.skip("the schemathesis operations were not selected in this run")
    assert len(CASES) >= MIN_CASES, f"only {len(CASES)} cases over {len(set(CASES))} operations"
