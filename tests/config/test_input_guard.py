"""Input PostgreSQL cannot store gets a 400, on pages and on the API, never a 500."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("value", ["a\x00b", "\x00"])
def test_unstorable_query_values_are_refused_on_the_api(api_client: APIClient, value: str) -> None:
    response = api_client.get("/api/v1/audit-log", {"action": value})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_request"
    response = api_client.get("/api/v1/conversations", {"status": value})
    assert response.status_code == 400


def test_unstorable_query_values_are_refused_on_pages(owner_client: Client) -> None:
    response = owner_client.get("/inbox/", {"q": "x\x00y"})
    assert response.status_code == 400


@pytest.mark.parametrize("body", [b'{"note": "client\\u0000link"}', b'{"note": "a\\ud800b"}'])
def test_unstorable_json_strings_are_refused(api_client: APIClient, body: bytes) -> None:
    response = api_client.generic(
        "POST", "/api/v1/onboarding-links", body, content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_request"


def test_ordinary_unicode_passes(api_client: APIClient) -> None:
    response = api_client.get("/api/v1/conversations", {"status": "open"})
    assert response.status_code == 200
    response = api_client.post("/api/v1/onboarding-links", {"note": "Olá 👋 client"}, format="json")
    assert response.status_code == 201
