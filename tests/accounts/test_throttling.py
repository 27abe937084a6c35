"""S7: each partner key has its own request budget; going over it answers 429 in the API's
shape with ``Retry-After``, and other keys (of the same or another tenant) are unaffected.
Page size and body size caps are in tests/security/test_s2_s5_s6_s7.py."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiKey, Tenant
from config.api import ApiKeyRateThrottle

pytestmark = pytest.mark.django_db

MakeKey = Callable[..., tuple[ApiKey, str]]
RATE = 3


@pytest.fixture(autouse=True)
def _small_budget(monkeypatch: pytest.MonkeyPatch, settings: Any) -> None:
    # The rates are read from the class when a request is throttled.
    monkeypatch.setattr(ApiKeyRateThrottle, "THROTTLE_RATES", {"api_key": f"{RATE}/min"})
    # A cache of this test's own: other test runs on the machine flush the shared Redis database.
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": f"throttling-{uuid.uuid4()}",
        }
    }


def _client(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def _use_up(client: APIClient) -> None:
    for _ in range(RATE):
        assert client.get("/api/v1/key").status_code == 200


def test_key_over_its_rate_gets_429_with_retry_after(tenant: Tenant, make_api_key: MakeKey) -> None:
    _, secret = make_api_key(tenant)
    client = _client(secret)
    _use_up(client)

    response = client.get("/api/v1/key")

    assert response.status_code == 429
    assert 0 < int(response["Retry-After"]) <= 60
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "detail"}
    assert body["error"]["code"] == "rate_limited"


def test_budget_is_shared_by_every_endpoint_of_the_key(
    tenant: Tenant, make_api_key: MakeKey
) -> None:
    _, secret = make_api_key(tenant)
    client = _client(secret)
    _use_up(client)
    assert client.get("/api/v1/tenant").status_code == 429
    assert client.get("/api/v1/members").status_code == 429


def test_other_keys_of_the_same_and_other_tenants_are_unaffected(
    tenant: Tenant, other_tenant: Tenant, make_api_key: MakeKey
) -> None:
    _, busy = make_api_key(tenant)
    _, colleague = make_api_key(tenant)
    _, stranger = make_api_key(other_tenant)
    _use_up(_client(busy))
    assert _client(busy).get("/api/v1/key").status_code == 429

    for secret in (colleague, stranger):
        response = _client(secret).get("/api/v1/key")
        assert response.status_code == 200
        assert "Retry-After" not in response


def test_budget_comes_back_after_the_window(tenant: Tenant, make_api_key: MakeKey) -> None:
    _, secret = make_api_key(tenant)
    client = _client(secret)
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        _use_up(client)
        assert client.get("/api/v1/key").status_code == 429
        traveller.shift(timedelta(seconds=61))
        assert client.get("/api/v1/key").status_code == 200


def test_rejected_credentials_do_not_spend_a_budget(tenant: Tenant, make_api_key: MakeKey) -> None:
    key, secret = make_api_key(tenant)
    intruder = _client(f"{key.prefix}_not-the-secret")
    for _ in range(RATE * 2):
        assert intruder.get("/api/v1/key").status_code == 401
    assert _client(secret).get("/api/v1/key").status_code == 200
