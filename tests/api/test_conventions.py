"""Partner API conventions: Idempotency-Key, rate-limit headers, scopes named in 403s, and the
callback endpoints API."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django_scopes import scope
from rest_framework.test import APIClient

from accounts.models import ApiKey, ApiScope, Tenant
from webhooks.models import CallbackDelivery, CallbackEndpoint, CallbackEvent, IdempotencyRecord

pytestmark = pytest.mark.django_db

ENDPOINTS = "/api/v1/webhook-endpoints"


def _post(client: APIClient, url: str, body: dict[str, Any], key: str | None = None) -> Any:
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return client.post(url, json.dumps(body), content_type="application/json", **headers)


def test_a_repeated_post_with_the_same_key_answers_the_first_result(
    api_client: APIClient, tenant: Tenant
) -> None:
    body = {"url": "https://hooks.example.com/a", "events": ["message.received"]}
    first = _post(api_client, ENDPOINTS, body, key="create-hook-1")
    again = _post(api_client, ENDPOINTS, body, key="create-hook-1")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    with scope(tenant=tenant):
        assert CallbackEndpoint.objects.count() == 1
    other = _post(api_client, ENDPOINTS, body, key="create-hook-2")
    assert other.status_code == 201
    assert other.json()["id"] != first.json()["id"]


def test_the_same_key_with_another_request_is_refused_with_a_clear_code(
    api_client: APIClient, tenant: Tenant
) -> None:
    body = {"url": "https://hooks.example.com/a", "events": ["message.received"]}
    assert _post(api_client, ENDPOINTS, body, key="k").status_code == 201
    changed = _post(api_client, ENDPOINTS, {**body, "events": ["message.sent"]}, key="k")
    assert changed.status_code == 422
    assert changed.json()["error"]["code"] == "idempotency_key_reused"
    with scope(tenant=tenant):
        assert CallbackEndpoint.objects.count() == 1


def test_a_failed_request_leaves_its_key_free(api_client: APIClient, tenant: Tenant) -> None:
    bad = _post(api_client, ENDPOINTS, {"url": "nope", "events": []}, key="k")
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid"
    with scope(tenant=tenant):
        assert not IdempotencyRecord.objects.exists()
    good = {"url": "https://hooks.example.com/a", "events": ["message.received"]}
    assert _post(api_client, ENDPOINTS, good, key="k").status_code == 201


def test_keys_belong_to_one_workspace(
    api_client: APIClient, other_tenant: Tenant, make_api_key: Callable[..., tuple[ApiKey, str]]
) -> None:
    body = {"url": "https://hooks.example.com/a", "events": ["message.received"]}
    _, secret = make_api_key(other_tenant)
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert _post(api_client, ENDPOINTS, body, key="shared").status_code == 201
    second = _post(other, ENDPOINTS, body, key="shared")
    assert second.status_code == 201
    assert "Idempotent-Replayed" not in second


def test_every_answer_carries_the_rate_limit_and_429_says_when_to_retry(
    tenant: Tenant, make_api_key: Callable[..., tuple[ApiKey, str]], settings: Any
) -> None:
    from config.api import ApiKeyRateThrottle

    _, secret = make_api_key(tenant)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    rates = {"api_key": "3/min"}
    original = ApiKeyRateThrottle.THROTTLE_RATES
    ApiKeyRateThrottle.THROTTLE_RATES = rates
    try:
        answers = [client.get("/api/v1/key") for _ in range(4)]
    finally:
        ApiKeyRateThrottle.THROTTLE_RATES = original
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a["RateLimit-Remaining"] for a in answers] == ["2", "1", "0", "0"]
    assert {a["RateLimit-Limit"] for a in answers} == {"3"}
    assert 0 < int(answers[0]["RateLimit-Reset"]) <= 60
    assert int(answers[3]["Retry-After"]) > 0
    assert answers[3].json()["error"]["code"] == "rate_limited"


def test_a_key_without_the_scope_is_told_which_scope(
    tenant: Tenant, make_api_key: Callable[..., tuple[ApiKey, str]]
) -> None:
    _, secret = make_api_key(tenant, [ApiScope.CONVERSATIONS_READ])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    for answer in (client.get(ENDPOINTS), _post(client, ENDPOINTS, {})):
        assert answer.status_code == 403
        error = answer.json()["error"]
        assert error["code"] == "missing_scope"
        assert "webhooks:manage" in error["message"]


def test_endpoints_are_managed_and_their_key_shown_only_when_made(
    api_client: APIClient, tenant: Tenant
) -> None:
    made = _post(
        api_client,
        ENDPOINTS,
        {"url": "https://hooks.example.com/a", "events": ["message.received", "message.sent"]},
    )
    assert made.status_code == 201
    created = made.json()
    assert created["signing_key"].startswith("whsec_")
    url = f"{ENDPOINTS}/{created['id']}"
    shown = api_client.get(url).json()
    assert "signing_key" not in shown
    assert shown["events"] == ["message.received", "message.sent"]
    changed = api_client.patch(url, {"enabled": False}, format="json")
    assert changed.status_code == 200
    assert changed.json()["enabled"] is False
    rotated = _post(api_client, f"{url}/rotate-secret", {"overlap_hours": 2}).json()
    assert rotated["signing_key"] != created["signing_key"]
    assert rotated["previous_key_expires_at"] is not None
    refused = _post(api_client, ENDPOINTS, {"url": "ftp://x.example", "events": ["message.sent"]})
    assert refused.status_code == 400
    assert api_client.delete(url).status_code == 204
    assert api_client.get(url).status_code == 404


def test_the_delivery_log_and_redelivery(api_client: APIClient, tenant: Tenant) -> None:
    made = _post(
        api_client, ENDPOINTS, {"url": "https://hooks.example.com/a", "events": ["message.sent"]}
    ).json()
    with scope(tenant=tenant):
        event = CallbackEvent.objects.create(
            tenant=tenant, type="account.health_changed", payload={"account": {}}
        )
        delivery = CallbackDelivery.objects.create(
            tenant=tenant,
            endpoint_id=made["id"],
            event=event,
            status="dead",
            attempts=9,
            next_attempt_at=event.created_at,
            last_status_code=500,
            response_excerpt="boom",
        )
    log = api_client.get(f"{ENDPOINTS}/{made['id']}/deliveries?status=dead").json()
    assert [d["id"] for d in log["results"]] == [delivery.pk]
    assert log["results"][0]["event"]["type"] == "account.health_changed"
    assert log["results"][0]["next_attempt_at"] is None
    again = _post(api_client, f"/api/v1/webhook-deliveries/{delivery.pk}/redeliver", {})
    assert again.status_code == 202
    copy = again.json()
    assert copy["redelivery_of"] == delivery.pk
    assert copy["status"] == "pending"
    assert api_client.get(f"/api/v1/webhook-deliveries/{copy['id']}").status_code == 200
