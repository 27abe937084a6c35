"""RELIABILITY rows W1-W5, W7, W13, W14 that run in CI (W12 lives in test_ingest.py).

F3: ``F3_CORPUS`` is the webhook input-class corpus; ``test_w7_signed_poison_*`` posts each
class signed (200 and quarantine, never 5xx) and unsigned (refused)."""

from __future__ import annotations

import ast
import json
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

import pytest
import requests
import time_machine
from celery import Celery
from django.conf import settings
from django.db import connection, transaction
from django.test import Client
from django_scopes import scope
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from accounts.models import Tenant
from integrations.meta.signatures import meta_json_bytes, sign_hub_body, verify_hub_signature
from messaging.models import Message
from tests.factories import InstagramAccountFactory, TenantFactory
from tests.messaging.inbound_support import (
    BUSINESS,
    T0,
    URL,
    deliver,
    envelope,
    messages,
    post,
    text_message,
)
from webhooks import relay
from webhooks.models import WebhookEvent

ROOT = Path(__file__).resolve().parents[2]
SECRET = "test-meta-app-secret"

# RELIABILITY asks for 10,000 cases per run of W1; CI runs fewer to stay fast. Set
# WEBHOOK_PROPERTY_EXAMPLES=10000 for the full run.
PROPERTY_EXAMPLES = int(os.environ.get("WEBHOOK_PROPERTY_EXAMPLES", "300"))


def _headers(signature: str | None) -> dict[str, str]:
    return {"HTTP_X_HUB_SIGNATURE_256": signature} if signature is not None else {}


def _raw_post(client: Client, body: bytes, signature: str | None) -> Any:
    return client.generic("POST", URL, body, content_type="application/json", **_headers(signature))


# -- W1: signature property --------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=12,
)  # fmt: skip


def _flip_bit(data: bytes, index: int) -> bytes:
    position = index % (len(data) * 8)
    changed = bytearray(data)
    changed[position // 8] ^= 1 << (position % 8)
    return bytes(changed)


def _mutations(body: bytes, signature: str, index: int) -> list[tuple[str, bytes, str | None]]:
    hex_part = signature[len("sha256=") :]
    flipped_hex = hex_part[: index % 64] + ("0" if hex_part[index % 64] != "0" else "1")
    flipped_hex += hex_part[index % 64 + 1 :]
    reserialised = json.dumps(json.loads(body)).encode()
    cases = [
        ("bit flipped in body", _flip_bit(body, index), signature),
        ("hex digit changed", body, "sha256=" + flipped_hex),
        ("bit flipped in signature", body, _flip_bit(signature.encode(), index).decode("latin-1")),
        ("header dropped", body, None),
        ("sha1 prefix", body, "sha1=" + hex_part),
        ("whitespace inside the value", body, "sha256= " + hex_part),
        ("whitespace added to the body", body + b" ", signature),
        ("wrong secret", body, sign_hub_body(body, "another-apps-secret")),
        ("empty header", body, ""),
    ]
    if reserialised != body:
        cases.append(("signature of re-serialised JSON", body, sign_hub_body(reserialised, SECRET)))
    return cases


@contextmanager
def _rolled_back() -> Iterator[None]:
    """Run one example inside a savepoint that is rolled back, so every example starts from an
    empty table: the examples stay independent, and counting the stored events costs the same
    at the ten-thousandth example as at the first (with every example's row kept, each count
    scanned all earlier ones)."""
    with transaction.atomic():
        yield
        transaction.set_rollback(True)


@pytest.fixture
def published() -> Iterator[mock.MagicMock]:
    """Every task sent to the broker while the test runs (none is actually sent)."""
    with mock.patch.object(Celery, "send_task") as send_task:
        yield send_task


@pytest.fixture
def refusals_unlogged(caplog: pytest.LogCaptureFixture) -> None:
    """A refused post logs two warnings, the view's and Django's line for a 4xx. No check reads
    them, and formatting them for the log capture is up to half of what a refused post costs."""
    for name in ("webhooks.views", "django.request"):
        caplog.set_level(logging.ERROR, logger=name)


@pytest.mark.django_db
@pytest.mark.usefixtures("refusals_unlogged")
@hypothesis_settings(
    max_examples=PROPERTY_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(payload=st.dictionaries(st.text(max_size=8), json_values, max_size=5),
       index=st.integers(min_value=0, max_value=10_000))  # fmt: skip
def test_w1_valid_signatures_pass_and_every_mutation_is_refused(
    payload: dict[str, Any], index: int, client: Client, published: mock.MagicMock
) -> None:
    body = meta_json_bytes({"object": "instagram", "entry": [], "payload": payload})
    signature = sign_hub_body(body, SECRET)
    published.reset_mock()
    with _rolled_back():
        for name, mutated_body, mutated_signature in _mutations(body, signature, index):
            same_digest = (mutated_signature or "").lower() == signature and mutated_body == body
            if same_digest and (mutated_signature or "").startswith("sha256="):
                continue  # a flip that only changed the case of a hex digit: the same signature
            response = _raw_post(client, mutated_body, mutated_signature)
            assert response.status_code == 403, name
            assert WebhookEvent.objects.count() == 0, name
            # No task: none sent to the broker, none waiting for the commit.
            assert not published.called, name
            assert connection.run_on_commit == [], name
        assert _raw_post(client, body, signature).status_code == 200
        assert WebhookEvent.objects.count() == 1


# -- W2: raw bytes -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_w2_escaped_and_raw_utf8_bodies_verify_over_the_wire_bytes(
    client: Client, tenant: Tenant
) -> None:
    InstagramAccountFactory(tenant=tenant, ig_user_id=BUSINESS)
    text = "Olá äöå — 😀 👩‍👩‍👧 ‮rtl"
    escaped = envelope({BUSINESS: [text_message("aWdfESC", text)]})
    raw = json.dumps(
        json.loads(envelope({BUSINESS: [text_message("aWdfRAW", text)]})), ensure_ascii=False
    ).encode()
    assert b"\\u00e1" in escaped
    assert "á".encode() in raw
    for body in (escaped, raw):
        deliver(client, body)
        # A verifier fed re-serialised JSON instead of the wire bytes must fail.
        reserialised = json.dumps(json.loads(body)).encode()
        assert reserialised != body
        assert not verify_hub_signature(reserialised, sign_hub_body(body, SECRET), [SECRET])
    assert [m.text for m in messages(tenant)] == [text, text]


# -- W3: constant-time comparisons ---------------------------------------------------------------

SENSITIVE = re.compile(r"signature|secret|token|digest|hmac|password|api_key", re.IGNORECASE)
# Comparisons that look sensitive but compare no secret, each with its reason.
W3_ALLOWED = {
    ("messaging/backfill.py", "cache.get(key) == token"): "a lock owner's random id, not a secret",
}
PRODUCT_DIRS = ["accounts", "config", "frontend", "integrations", "messaging", "webhooks"]


def _names(node: ast.AST) -> list[str]:
    found = []
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            found.append(sub.id)
        elif isinstance(sub, ast.Attribute):
            found.append(sub.attr)
        elif isinstance(sub, ast.Call):
            break
    return found


def _is_public_constant(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) or (
        isinstance(node, ast.Attribute) and node.attr.isupper()
    )


def test_w3_no_secret_is_compared_with_eq_or_ne() -> None:
    findings = []
    for directory in PRODUCT_DIRS:
        for path in (ROOT / directory).rglob("*.py"):
            if "migrations" in path.parts or "sandbox" in path.parts:
                continue
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                if not isinstance(node, ast.Compare):
                    continue
                if not any(isinstance(op, ast.Eq | ast.NotEq) for op in node.ops):
                    continue
                operands = [node.left, *node.comparators]
                # Comparing with a literal or a named constant leaks nothing secret.
                if any(_is_public_constant(o) for o in operands):
                    continue
                relative = str(path.relative_to(ROOT))
                if (relative, ast.unparse(node)) in W3_ALLOWED:
                    continue
                if any(SENSITIVE.search(n) for o in operands for n in _names(o)):
                    findings.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert findings == [], "use hmac.compare_digest: " + ", ".join(findings)


# -- W4: concurrent duplicates -------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_w4_fifty_concurrent_deliveries_of_one_body_make_one_message(live_server: Any) -> None:
    tenant = TenantFactory()
    InstagramAccountFactory(tenant=tenant, ig_user_id=BUSINESS)
    body = envelope({BUSINESS: [text_message("aWdfW4", "once")]})
    headers = {
        "Content-Type": "application/json",
        "X-Hub-Signature-256": sign_hub_body(body, SECRET),
    }
    statuses: list[int] = []
    barrier = threading.Barrier(50)

    def send() -> None:
        barrier.wait()
        for _ in range(20):
            try:
                response = requests.post(live_server.url + URL, data=body, headers=headers,
                                         timeout=30)  # fmt: skip
            except requests.ConnectionError:
                # The test server's listen backlog is small; Meta retries the same way.
                time.sleep(0.05)
                continue
            statuses.append(response.status_code)
            return

    threads = [threading.Thread(target=send) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 50
    assert WebhookEvent.objects.count() == 1
    relay.drain()
    assert len(messages(tenant, mid="aWdfW4")) == 1

    # The same mid inside other batch compositions, processed by concurrent workers.
    other = "aWdfOTHER"
    compositions = [
        envelope({BUSINESS: [text_message(other, "x", ts=T0 + 1), text_message("aWdfW4", "once")]}),
        envelope({BUSINESS: [text_message("aWdfW4", "once"), text_message(other, "x", ts=T0 + 1)]}),
        envelope({BUSINESS: [text_message("aWdfW4", "once")]}).replace(b"{", b" {", 1),
        envelope({BUSINESS: [text_message("aWdfW4", "once"), text_message("aWdfW4", "once")]}),
    ]
    for composed in compositions:
        assert post(Client(), composed).status_code == 200

    def work() -> None:
        try:
            relay.drain_batch(batch_size=1)
        finally:
            connection.close()

    workers = [threading.Thread(target=work) for _ in range(len(compositions))]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    relay.drain()
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {"processed"}
    assert len(messages(tenant, mid="aWdfW4")) == 1
    assert len(messages(tenant, mid=other)) == 1
    with scope(tenant=tenant):
        from messaging.models import Conversation

        assert Conversation.objects.get().unread_count == 2


# -- W5: the largest batch -----------------------------------------------------------------------


@pytest.mark.django_db
def test_w5_a_thousand_items_across_three_accounts_of_two_tenants(client: Client) -> None:
    first, second = TenantFactory(), TenantFactory()
    accounts = [
        InstagramAccountFactory(tenant=first),
        InstagramAccountFactory(tenant=first),
        InstagramAccountFactory(tenant=second),
    ]
    entries: dict[str, list[dict[str, Any]]] = {a.ig_user_id: [] for a in accounts}
    for n in range(1000):
        account = accounts[n % 3]
        entries[account.ig_user_id].append(
            text_message(f"aWdfW5-{n}", f"message {n}", ts=T0 + n, customer=str(10**15 + n % 17),
                         business=account.ig_user_id)
        )  # fmt: skip
    body = envelope(entries)
    started = time.perf_counter()
    assert post(client, body).status_code == 200
    ack = time.perf_counter() - started
    relay.drain(time_budget=120)
    assert WebhookEvent.objects.get().status == "processed"
    for tenant, owned in ((first, accounts[:2]), (second, accounts[2:])):
        stored = messages(tenant)
        expected = {f"aWdfW5-{n}" for n in range(1000) if accounts[n % 3] in owned}
        assert {m.mid for m in stored} == expected
        assert {m.account_id for m in stored} == {a.pk for a in owned}
    assert ack < 2.0  # the ack does not wait for processing (the target p99 is benchmarked)


# -- W7: poison never 5xx --------------------------------------------------------------------------

F3_CORPUS: dict[str, bytes] = {
    "malformed JSON": b'{"object": "instagram", "entry": [',
    "truncated": envelope({BUSINESS: [text_message("aWdfT", "t")]})[:-7],
    "empty": b"",
    "non-object top level": b"[1, 2, 3]",
    "BOM prefix": b"\xef\xbb\xbf" + envelope({BUSINESS: [text_message("aWdfBOM", "b")]}),
    "gzip bytes": b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03",
    "invalid UTF-8": b'{"object": "instagram", "x": "\xff\xfe"}',
    "nesting 10": b'{"a":' * 10 + b"1" + b"}" * 10,
    "nesting 1000": b'{"a":' * 1000 + b"1" + b"}" * 1000,
    "nesting 100000": b"[" * 100_000 + b"]" * 100_000,
    "NaN": b'{"object": "instagram", "entry": [], "x": NaN}',
    "Infinity": b'{"object": "instagram", "entry": [], "x": -Infinity}',
    "NUL": envelope({BUSINESS: [text_message("aWdfNUL", "a\u0000b")]}),
    "lone surrogate": envelope({BUSINESS: [text_message("aWdfSUR", "a\ud800b")]}),
    "unicode tricks": envelope({BUSINESS: [text_message("aWdfUNI", "\u202e\u200bé e\u0301 👩‍💻")]}),
    "unknown object": meta_json_bytes({"object": "page", "entry": [{"id": "1", "messaging": []}]}),
    "unknown fields": meta_json_bytes({"object": "instagram", "zzz": 1, "entry": [
        {"id": BUSINESS, "zzz": 2, "messaging": [{"zzz": 3}]}]}),
    "changes and messaging": meta_json_bytes({"object": "instagram", "entry": [
        {"id": BUSINESS, "messaging": [text_message("aWdfCM", "m")],
         "changes": [{"field": "comments", "value": {"id": "1790001", "text": "c",
                                                      "from": {"id": "1", "username": "u"}}}]}]}),
    "missing mid": envelope({BUSINESS: [{"sender": {"id": "1"}, "recipient": {"id": BUSINESS},
                                         "timestamp": T0, "message": {"text": "no mid"}}]}),
    "missing sender": envelope({BUSINESS: [{"recipient": {"id": BUSINESS}, "timestamp": T0,
                                            "message": {"mid": "aWdfNS", "text": "x"}}]}),
    "mid of 10 kB": envelope({BUSINESS: [text_message("m" * 10_000, "x")]}),
    "timestamp 0": envelope({BUSINESS: [text_message("aWdfTS0", "x", ts=0)]}),
    "negative timestamp": envelope({BUSINESS: [text_message("aWdfTSN", "x", ts=-5)]}),
    "year 3000": envelope({BUSINESS: [text_message("aWdfTS3", "x", ts=32_503_680_000_000)]}),
    "seconds": envelope({BUSINESS: [text_message("aWdfTSS", "x", ts=1_718_000_000)]}),
    "duplicate keys": b'{"object": "instagram", "object": "page", "entry": []}',
    "echo from another app": meta_json_bytes({"object": "instagram", "entry": [{"id": BUSINESS,
        "messaging": [{"sender": {"id": BUSINESS}, "recipient": {"id": "5"}, "timestamp": T0,
                       "message": {"mid": "aWdfEA", "text": "e", "is_echo": True,
                                   "app_id": 999}}]}]}),
    "reaction for unknown mid": envelope({BUSINESS: [{"sender": {"id": "5"}, "recipient": {
        "id": BUSINESS}, "timestamp": T0, "reaction": {"mid": "aWdfNONE", "action": "react"}}]}),
    "unsend for unknown mid": envelope({BUSINESS: [{"sender": {"id": "5"}, "recipient": {
        "id": BUSINESS}, "timestamp": T0, "message": {"mid": "aWdfGONE", "is_deleted": True}}]}),
    "non-https attachment": envelope({BUSINESS: [{"sender": {"id": "5"}, "recipient": {
        "id": BUSINESS}, "timestamp": T0, "message": {"mid": "aWdfFTP", "attachments": [
            {"type": "file", "payload": {"url": "ftp://x/y"}}]}}]}),
    "wrong types": meta_json_bytes({"object": "instagram", "entry": [{"id": BUSINESS,
        "messaging": [{"sender": "x", "recipient": 5, "timestamp": "soon",
                       "message": {"mid": 5, "text": ["a"], "attachments": "x"}}]}]}),
    "1000 x 1000": meta_json_bytes({"object": "instagram", "entry": [
        {"id": str(n), "messaging": [{}] * 1000} for n in range(1000)]}),
}  # fmt: skip


@pytest.mark.django_db
@pytest.mark.parametrize("name", sorted(F3_CORPUS))
@pytest.mark.parametrize("content_type", ["application/json", "text/plain", ""])
def test_w7_signed_poison_is_acknowledged_and_never_5xx(
    name: str, content_type: str, client: Client, tenant: Tenant
) -> None:
    InstagramAccountFactory(tenant=tenant, ig_user_id=BUSINESS)
    body = F3_CORPUS[name]
    if len(body) > settings.WEBHOOK_MAX_BODY_BYTES:
        pytest.skip("covered by W14")
    response = client.generic("POST", URL, body, content_type=content_type,
                              HTTP_X_HUB_SIGNATURE_256=sign_hub_body(body, SECRET))  # fmt: skip
    assert response.status_code == 200
    relay.drain(time_budget=60)
    statuses = set(WebhookEvent.objects.values_list("status", flat=True))
    assert statuses <= {"processed", "quarantined"}, WebhookEvent.objects.get().last_error
    assert WebhookEvent.objects.get().attempts == 1  # handled, not failing and retried
    unsigned = client.generic("POST", URL, body + b" ", content_type=content_type)
    assert unsigned.status_code == 403


@pytest.mark.django_db
def test_w7_odd_timestamps_never_move_the_thread_into_the_future(
    client: Client, tenant: Tenant
) -> None:
    InstagramAccountFactory(tenant=tenant, ig_user_id=BUSINESS)
    deliver(client, F3_CORPUS["year 3000"])
    (message,) = messages(tenant)
    assert message.sent_at.year < 3000


# -- W13: replay -----------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("later", [timedelta(hours=1), timedelta(hours=24), timedelta(days=6)])
def test_w13_a_replayed_delivery_adds_nothing(
    later: timedelta, client: Client, tenant: Tenant
) -> None:
    InstagramAccountFactory(tenant=tenant, ig_user_id=BUSINESS)
    body = envelope({BUSINESS: [text_message("aWdfREPLAY", "once")]})
    with time_machine.travel("2026-01-10 12:00:00+00:00", tick=False) as traveller:
        deliver(client, body)
        before = (WebhookEvent.objects.count(), Message.objects.model._meta.db_table)
        traveller.shift(later)
        response = post(client, body)
        assert response.status_code == 200
        relay.drain()
    assert WebhookEvent.objects.count() == before[0] == 1
    assert len(messages(tenant)) == 1
    with scope(tenant=tenant):
        from messaging.models import Conversation

        assert Conversation.objects.get().unread_count == 1


# -- W14: size limits ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_w14_a_meta_sized_body_of_two_megabytes_is_accepted(client: Client) -> None:
    body = meta_json_bytes({"object": "instagram", "entry": [], "pad": "x" * (2 * 1024 * 1024)})
    assert len(body) > 2 * 1024 * 1024
    assert post(client, body).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_w14_an_oversized_declared_body_is_refused_without_reading_it(live_server: Any) -> None:
    host = urlsplit(live_server.url)
    started = time.monotonic()
    with socket.create_connection((host.hostname, host.port), timeout=10) as sock:
        sock.sendall(
            b"POST /webhooks/meta HTTP/1.1\r\nHost: testserver\r\n"
            b"Content-Type: application/json\r\nX-Hub-Signature-256: sha256=00\r\n"
            + f"Content-Length: {50 * 1024 * 1024}\r\n\r\n".encode()
            + b'{"object": "instagram"'
        )
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:100]
    assert time.monotonic() - started < 5
    assert WebhookEvent.objects.count() == 0
