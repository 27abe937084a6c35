"""`/webhooks/meta`: verify over raw bytes, store once, acknowledge; refuse what is not Meta's."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
import redis
from django.db import DEFAULT_DB_ALIAS, OperationalError, connection, connections
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext

from integrations.meta.signatures import meta_json_bytes, sign_hub_body
from webhooks.models import WebhookEvent

pytestmark = pytest.mark.django_db

URL = "/webhooks/meta"
SECRET = "test-meta-app-secret"
IG_SECRET = "test-instagram-app-secret"


def _body(text: str = "Olá 👋 https://example.com/a") -> bytes:
    payload: dict[str, Any] = {
        "object": "instagram",
        "entry": [
            {
                "id": "17841400000000001",
                "time": 1764072000000,
                "messaging": [
                    {
                        "sender": {"id": "900000000000001"},
                        "recipient": {"id": "17841400000000001"},
                        "timestamp": 1764072000000,
                        "message": {"mid": "aWdfZAG1fake", "text": text},
                    }
                ],
            }
        ],
    }
    return meta_json_bytes(payload)


def _post(client: Client, body: bytes, signature: str | None, **extra: Any) -> Any:
    headers = {"HTTP_X_HUB_SIGNATURE_256": signature} if signature is not None else {}
    return client.generic("POST", URL, body, content_type="application/json", **headers, **extra)


def test_signed_delivery_is_stored_raw_and_acknowledged(client: Client) -> None:
    body = _body()
    response = _post(client, body, sign_hub_body(body, SECRET))
    assert response.status_code == 200
    assert response.content == b"EVENT_RECEIVED"
    event = WebhookEvent.objects.get()
    assert bytes(event.raw_body) == body
    assert event.status == WebhookEvent.Status.PENDING
    assert event.signed_with == "meta"


def test_instagram_login_deliveries_verify_with_the_instagram_secret(client: Client) -> None:
    body = _body()
    assert _post(client, body, sign_hub_body(body, IG_SECRET)).status_code == 200
    assert WebhookEvent.objects.get().signed_with == "instagram"


def test_the_same_delivery_twice_is_stored_once(client: Client) -> None:
    body = _body()
    signature = sign_hub_body(body, SECRET)
    assert _post(client, body, signature).status_code == 200
    assert _post(client, body, signature).status_code == 200
    assert WebhookEvent.objects.count() == 1


def test_the_ack_waits_for_one_insert_and_never_for_redis(client: Client) -> None:
    """A delivery costs one statement and a refusal none; neither touches the cache or the
    broker (W1 posts ten thousand random bodies through this path in CI)."""
    body = _body()
    unreachable = redis.ConnectionError("Redis is not on the ingest path")
    with (
        CaptureQueriesContext(connection) as statements,
        mock.patch.object(
            redis.connection.AbstractConnection, "send_packed_command", side_effect=unreachable
        ) as redis_commands,
    ):
        assert _post(client, body, sign_hub_body(body, "someone-else")).status_code == 403
        assert len(statements) == 0
        assert _post(client, body, sign_hub_body(body, SECRET)).status_code == 200
        assert len(statements) == 1
        assert _post(client, body, sign_hub_body(body, SECRET)).status_code == 200  # duplicate
        assert len(statements) == 2
    assert not redis_commands.called
    assert WebhookEvent.objects.count() == 1


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "",
        "sha1=" + "0" * 40,
        "sha256=" + "0" * 64,
        "sha256=nothex",
    ],
)
def test_unsigned_or_wrongly_signed_deliveries_are_refused_and_not_stored(
    client: Client, signature: str | None
) -> None:
    response = _post(client, _body(), signature)
    assert response.status_code == 403
    assert WebhookEvent.objects.count() == 0


def test_signature_of_reserialised_json_does_not_verify(client: Client) -> None:
    import json

    body = _body()
    reserialised = json.dumps(json.loads(body)).encode()
    assert reserialised != body
    response = _post(client, body, sign_hub_body(reserialised, SECRET))
    assert response.status_code == 403


def test_a_body_signed_with_another_secret_is_refused(client: Client) -> None:
    body = _body()
    assert _post(client, body, sign_hub_body(body, "someone-else")).status_code == 403


@override_settings(WEBHOOK_MAX_BODY_BYTES=1000)
def test_an_oversized_body_is_refused_with_413(client: Client) -> None:
    body = _body("x" * 2000)
    response = _post(client, body, sign_hub_body(body, SECRET))
    assert response.status_code == 413
    assert WebhookEvent.objects.count() == 0


@pytest.mark.parametrize("length", ["\u00b2", "1\u00b3", "abc", "-1", ""])
def test_a_content_length_that_is_not_ascii_digits_is_not_believed(
    client: Client, length: str
) -> None:
    # "²" is what a Latin-1 header byte 0xB2 becomes; str.isdigit() is true for it, int() refuses.
    body = _body()
    response = _post(client, body, sign_hub_body(body, SECRET), CONTENT_LENGTH=length)
    # The server reads no body it was not told the length of: nothing signed arrived.
    assert response.status_code == 403
    assert WebhookEvent.objects.count() == 0


@pytest.mark.parametrize("length", ["1001", "9" * 30, "9" * 5000])
@override_settings(WEBHOOK_MAX_BODY_BYTES=1000)
def test_a_declared_length_over_the_limit_is_refused_with_413_unread(
    client: Client, length: str
) -> None:
    body = _body()
    response = _post(client, body, sign_hub_body(body, SECRET), CONTENT_LENGTH=length)
    assert response.status_code == 413
    assert WebhookEvent.objects.count() == 0


def test_signed_garbage_is_stored_for_quarantine_not_refused(client: Client) -> None:
    for body in [b"{not json", b"[1,2]", b'{"a": NaN}', b"\xff\xfe\x00", b"[" * 5000]:
        response = _post(client, body, sign_hub_body(body, SECRET))
        assert response.status_code == 200, body
    assert WebhookEvent.objects.count() == 5


def test_database_down_answers_503_so_meta_retries(client: Client) -> None:
    body = _body()
    with mock.patch("webhooks.services.webhook_event_store", side_effect=OperationalError("down")):
        response = _post(client, body, sign_hub_body(body, SECRET))
    assert response.status_code == 503
    assert response["Retry-After"]


@pytest.fixture
def kept_connection(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The web process's database connection as in production: kept between requests and
    health-checked; yields the list of Django health checks (``is_usable`` calls) made."""
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 60)
    monkeypatch.setitem(connection.settings_dict, "CONN_HEALTH_CHECKS", True)
    connection.close()
    connection.ensure_connection()
    checks: list[int] = []
    usable = connection.is_usable

    def counted() -> bool:
        checks.append(1)
        return bool(usable())

    monkeypatch.setattr(connection, "is_usable", counted)
    yield checks
    connection.close()


def _between_requests() -> None:
    """What Django does when a server starts (and ends) a request on a kept connection."""
    connection.close_if_unusable_or_obsolete()


@pytest.mark.django_db(transaction=True)
def test_an_acknowledgement_on_a_kept_connection_is_one_round_trip(
    client: Client, kept_connection: list[int]
) -> None:
    for n in range(3):
        _between_requests()
        body = _body(f"hello {n}")
        assert _post(client, body, sign_hub_body(body, SECRET)).status_code == 200
    assert WebhookEvent.objects.count() == 3
    # The insert itself tells whether the connection works: no SELECT 1 before it.
    assert kept_connection == []


@pytest.mark.django_db(transaction=True)
def test_a_kept_connection_the_database_dropped_is_replaced_and_the_delivery_stored(
    client: Client, kept_connection: list[int]
) -> None:
    first = _body("before")
    assert _post(client, first, sign_hub_body(first, SECRET)).status_code == 200
    _between_requests()
    backend = connection.connection.info.backend_pid
    killer = connections.create_connection(DEFAULT_DB_ALIAS)
    try:
        with killer.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [backend])
    finally:
        killer.close()

    body = _body("after the database dropped the connection")
    response = _post(client, body, sign_hub_body(body, SECRET))

    assert response.status_code == 200
    assert connection.connection.info.backend_pid != backend
    assert [bytes(e.raw_body) for e in WebhookEvent.objects.order_by("id")] == [first, body]


@pytest.mark.django_db(transaction=True)
def test_a_database_that_stays_down_answers_503_after_one_new_connection(
    client: Client, kept_connection: list[int]
) -> None:
    body = _body()
    _between_requests()
    with mock.patch(
        "webhooks.services._insert_and_notify", side_effect=OperationalError("down")
    ) as insert:
        response = _post(client, body, sign_hub_body(body, SECRET))
    assert response.status_code == 503
    assert response["Retry-After"]
    assert insert.call_count == 2  # the kept connection, then one new one: no loop


def test_verification_handshake_echoes_the_challenge_as_plain_text(client: Client) -> None:
    response = client.get(
        URL,
        {"hub.mode": "subscribe", "hub.verify_token": "test-verify-token", "hub.challenge": "42"},
    )
    assert response.status_code == 200
    assert response.content == b"42"
    assert response["Content-Type"].startswith("text/plain")


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"}, 403),
        ({"hub.mode": "unsubscribe", "hub.verify_token": "test-verify-token"}, 403),
        (
            {
                "hub.mode": "subscribe",
                "hub.verify_token": "test-verify-token",
                "hub.challenge": "x" * 257,
            },
            400,
        ),
    ],
)
def test_verification_refuses_wrong_tokens_and_long_challenges(
    client: Client, params: dict[str, str], status: int
) -> None:
    response = client.get(URL, params)
    assert response.status_code == status
    assert not response["Content-Type"].startswith("text/html")


def test_html_in_the_challenge_is_never_served_as_html(client: Client) -> None:
    response = client.get(
        URL,
        {
            "hub.mode": "subscribe",
            "hub.verify_token": "test-verify-token",
            "hub.challenge": "<script>alert(1)</script>",
        },
    )
    assert response["Content-Type"].startswith("text/plain")


def test_a_delivery_skips_the_middleware_made_for_people(client: Client) -> None:
    """A session cookie on a delivery (a browser, a misconfigured proxy) reads no session, no
    person and no tenant: the acknowledgement is still its one INSERT. The middleware before it
    (security headers, the input guard) still applies."""
    from tests.factories import MembershipFactory

    membership = MembershipFactory()
    client.force_login(membership.user)
    assert client.get("/inbox/").status_code in (200, 302)  # the session is a working one
    body = _body()
    with CaptureQueriesContext(connection) as statements:
        response = _post(client, body, sign_hub_body(body, SECRET))
    assert response.status_code == 200
    assert [q["sql"].split()[0] for q in statements] == ["WITH"]  # the INSERT, nothing else
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "Set-Cookie" not in response
    assert "Vary" not in response
    assert WebhookEvent.objects.count() == 1

    refused = client.generic("POST", URL + "?hub.mode=%00", body, content_type="application/json")
    assert refused.status_code == 400  # the input guard, before any signature check
