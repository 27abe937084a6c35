"""Input PostgreSQL cannot store gets a 400, on pages and on the API, never a 500; ids and counts
are read from ASCII digits only."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from config import input_guard

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


# str.isdigit() is also true for superscripts and circled digits, which int() refuses; ids and
# counts from a request are ASCII digits or nothing.
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", 0),
        ("42", 42),
        ("007", 7),
        ("9" * 18, 10**18 - 1),
        ("9" * 19, None),  # beyond a bigint column; int() refuses 4,301 digits and more
        ("9" * 5000, None),
        ("", None),
        (" 42", None),
        ("-1", None),
        ("+1", None),
        ("1_000", None),
        ("4.0", None),
        ("\u00b2", None),  # SUPERSCRIPT TWO
        ("1\u00b2", None),
        ("\u2460", None),  # CIRCLED DIGIT ONE
        ("\u0663", None),  # ARABIC-INDIC DIGIT THREE: int() reads it, but it is not an id
        ("\uff11", None),  # FULLWIDTH DIGIT ONE
        (None, None),
        (42, None),
    ],
)
def test_parse_digits_reads_ascii_digits_only(value: object, expected: int | None) -> None:
    assert input_guard.parse_digits(value) == expected
    assert input_guard.is_digits(value) is (
        isinstance(value, str) and value != "" and set(value) <= set("0123456789")
    )
