"""S2 CSRF, S5 secrets, S6 outbound requests to private addresses, S7 partner API limits.

S4 (tokens at rest) is in test_encryption.py; S7's request budget per key (429 with
``Retry-After``, other keys unaffected) in tests/accounts/test_throttling.py.
"""

from __future__ import annotations

import ast
import base64
import binascii
import json
import re
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import Client
from django_scopes import scope
from rest_framework.authentication import SessionAuthentication
from rest_framework.test import APIClient

from accounts.models import AuditEntry, Membership, Tenant
from messaging.models import Conversation, Label
from tests.isolation.structure import walk_urls
from tests.messaging.factories import ConversationFactory
from tests.security.production import ROOT, production_env, run_python
from webhooks import partner_delivery

# -- S2: CSRF ------------------------------------------------------------------------------------


@pytest.fixture
def conversation(tenant: Tenant) -> Conversation:
    from tests.factories import InstagramAccountFactory

    return ConversationFactory(account=InstagramAccountFactory(tenant=tenant))


@pytest.mark.django_db
def test_s2_inbox_and_settings_posts_without_a_csrf_token_are_refused(
    owner: Membership, conversation: Conversation
) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner.user)
    posts = [
        (f"/inbox/{conversation.pk}/status/", {"status": "resolved"}),
        (f"/inbox/{conversation.pk}/notes/", {"body": "a note"}),
        (f"/inbox/{conversation.pk}/send/", {"text": "Hello"}),
        ("/settings/labels/", {"name": "Urgent", "color": "red"}),
        ("/members/invitations/", {"email": "someone@example.com", "role": "agent"}),
        ("/api-keys/new/", {"name": "Helpdesk", "scopes": ["members:read"]}),
    ]
    for url, data in posts:
        assert client.post(url, data).status_code == 403, url
        assert client.post(url, data, HTTP_HX_REQUEST="true").status_code == 403, url
    with scope(tenant=conversation.tenant):
        conversation.refresh_from_db()
        assert conversation.status == Conversation.Status.OPEN
        assert not Label.objects.exists()


@pytest.mark.django_db
def test_s2_meta_callbacks_without_a_signature_are_refused(client: Client) -> None:
    body = json.dumps({"object": "instagram", "entry": []})
    assert client.post("/webhooks/meta", body, content_type="application/json").status_code in (
        401,
        403,
    )
    for path in ("/webhooks/meta/deauthorize", "/webhooks/meta/data-deletion"):
        from django.urls import Resolver404, resolve

        try:
            resolve(path)
        except Resolver404:
            continue
        assert client.post(path, {"signed_request": "abc.def"}).status_code in (400, 401, 403)


# The only views Django's CSRF check is turned off for: Meta calls them, and each one verifies
# Meta's signature (X-Hub-Signature-256 or signed_request) before doing anything.
CSRF_EXEMPT_ALLOWED = {
    ("webhooks/views.py", "meta_webhook"): "verify_hub_signature",
    ("webhooks/callbacks.py", None): "signed_request",
    ("webhooks/data_deletion.py", None): "signed_request",
}
# Not product code: development tools, benchmarks and scripts (none of them are in the image).
PRODUCT_SKIP = (".venv/", "tests/", "bench/", "scripts/", "var/", "frontend/static/")


def _product_sources() -> Iterator[tuple[str, str]]:
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith(PRODUCT_SKIP) or "/migrations/" in rel:
            continue
        yield rel, path.read_text(encoding="utf-8")


def test_s2_csrf_exempt_appears_only_on_signature_verified_views() -> None:
    found = []
    for rel, source in _product_sources():
        if "csrf_exempt" not in source:
            continue
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.ClassDef):
                names = [ast.unparse(d) for d in node.decorator_list]
                if any("csrf_exempt" in n for n in names):
                    found.append((rel, node.name, ast.get_source_segment(source, node) or ""))
            elif (
                isinstance(node, ast.Call)
                and ast.unparse(node.func).endswith("csrf_exempt")
                and not any(rel == f for f, _ in CSRF_EXEMPT_ALLOWED)
            ):
                found.append((rel, "(call)", ""))
    assert found, "the Meta webhook is csrf-exempt: the scan must find it"
    problems = []
    for rel, name, body in found:
        rule = CSRF_EXEMPT_ALLOWED.get((rel, name)) or CSRF_EXEMPT_ALLOWED.get((rel, None))
        if rule is None:
            problems.append(f"{rel}:{name} is csrf-exempt without a signature check")
        elif rule not in body:
            problems.append(f"{rel}:{name} does not call {rule}")
    assert problems == []


def test_s2_the_partner_api_never_authenticates_by_session_cookie() -> None:
    # DRF views skip Django's CSRF check; that is safe only while no API view reads the cookie.
    defaults = django_settings.REST_FRAMEWORK["DEFAULT_AUTHENTICATION_CLASSES"]
    assert not any("Session" in name for name in defaults)
    offenders = [
        route
        for route, view in walk_urls()
        if route.startswith("/api/")
        and any(
            issubclass(cls, SessionAuthentication)
            for cls in getattr(getattr(view, "cls", None), "authentication_classes", [])
        )
    ]
    assert offenders == []


# -- S5: secrets ---------------------------------------------------------------------------------

SECRET_PATTERNS = {
    "Meta access token": re.compile(r"\b(?:EAA|IGQV|IGAA)[A-Za-z0-9]{30,}"),
    "private key": re.compile(r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----"),
    "AWS key": re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
    "Slack token": re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
    "Stripe key": re.compile(r"\b[sr]k_live_[A-Za-z0-9]{16,}"),
}
FERNET_LIKE = re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{43}=(?![A-Za-z0-9_=-])")
SCANNED_SUFFIXES = {
    ".py", ".md", ".txt", ".toml", ".cfg", ".ini", ".yaml", ".yml", ".json", ".html", ".js",
    ".css", ".sh", ".example", ".env", "", ".conf",
}  # fmt: skip
# Not part of the product: the local tool chain, caches and generated state.
SCAN_SKIP = (".venv/", ".git/", "var/", "staticfiles/", "node_modules/", ".mypy_cache/")
SCAN_SKIP += (".ruff_cache/", ".pytest_cache/", "bench/results/")


def _readable_placeholder(value: str) -> bool:
    """A base64 value that decodes to readable text is a labelled dummy, not a random key."""
    try:
        decoded = base64.urlsafe_b64decode(value)
    except (binascii.Error, ValueError):
        return True
    return all(32 <= byte < 127 for byte in decoded)


def _repository_files() -> Iterator[tuple[str, str]]:
    for path in ROOT.rglob("*"):
        rel = path.relative_to(ROOT).as_posix()
        if not path.is_file() or rel.startswith(SCAN_SKIP) or "__pycache__" in rel:
            continue
        if path.suffix not in SCANNED_SUFFIXES and path.name not in ("Dockerfile", "Procfile"):
            continue
        if path.stat().st_size > 2_000_000:
            continue
        yield rel, path.read_text(encoding="utf-8", errors="replace")


def test_s5_no_credential_is_committed_to_the_repository() -> None:
    findings = []
    scanned = 0
    for rel, text in _repository_files():
        scanned += 1
        for kind, pattern in SECRET_PATTERNS.items():
            for match in pattern.finditer(text):
                value = match.group(0)
                # The Meta sandbox's and the tests' tokens are made up and say so.
                if rel.startswith("tests/") or value.startswith("EAAGsbx"):
                    continue
                findings.append(f"{rel}: {kind} {value[:12]}…")
        for match in FERNET_LIKE.finditer(text):
            if not _readable_placeholder(match.group(0)):
                findings.append(f"{rel}: an encryption key {match.group(0)[:8]}…")
    assert scanned > 100
    assert findings == []


def test_s5_the_scan_would_catch_a_real_looking_key() -> None:
    from cryptography.fernet import Fernet

    key = Fernet.generate_key().decode()
    assert FERNET_LIKE.search(f"FIELD_ENCRYPTION_KEYS={key}\n")
    assert not _readable_placeholder(key)
    assert SECRET_PATTERNS["Meta access token"].search("token = 'EAAB" + "x1" * 40 + "'")


def test_s5_settings_take_secrets_from_the_environment_only() -> None:
    """No setting named like a secret has a literal default outside the test settings."""
    problems = []
    call = re.compile(
        r"env\.(?:str|list)\(\s*\"([A-Z_]*(?:SECRET|PASSWORD|TOKEN|_KEY|_KEYS))\"\s*,"
        r"\s*default=([^)]*)\)"
    )
    for path in sorted((ROOT / "config" / "settings").glob("*.py")):
        if path.name == "test.py":
            continue
        for name, default in call.findall(path.read_text()):
            if default.strip() not in ('""', "''", "[]"):
                problems.append(f"{path.name}: {name} defaults to {default.strip()}")
    assert problems == []


def test_s5_local_secret_files_stay_out_of_the_image_and_the_repository() -> None:
    dockerignore = (ROOT / "platform" / "Dockerfile.dockerignore").read_text().split()
    assert {"**/.env", "var"} <= set(dockerignore)
    gitignore = (ROOT / ".gitignore").read_text().split()
    assert {".env", "var/"} <= set(gitignore)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(None, id="unset"),
        pytest.param("short-secret", id="short"),
        pytest.param("change-me-to-at-least-50-random-characters", id="the-example-value"),
    ],
)
def test_s5_production_refuses_to_start_without_a_real_secret_key(
    tmp_path: Path, value: str | None
) -> None:
    if value is None and (ROOT / ".env").exists():
        pytest.skip("a local .env file may provide the key")
    setup = ["-c", "import django; django.setup(); print('started')"]
    result = run_python(setup, production_env(tmp_path, DJANGO_SECRET_KEY=value))
    assert result.returncode != 0
    assert "started" not in result.stdout
    assert "DJANGO_SECRET_KEY" in result.stderr


# -- S6: requests to private addresses -----------------------------------------------------------

PRIVATE_URLS = [
    "http://127.0.0.1/x",
    "https://127.0.0.1:8443/x",
    "http://[::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:10.0.0.1]/",
    "http://0.0.0.0/",
    "http://10.1.2.3/",
    "http://172.16.0.1/",
    "http://192.168.1.1/",
    "http://100.64.0.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://[fe80::1]/",
    "http://localhost:8000/",
    "http://api.localhost/",
    "http://metadata.google.internal/",
    "http://printer.local/",
    "ftp://example.com/",
    "file:///etc/passwd",
    "gopher://example.com/",
    "https://user:pw@example.com/",
]


@pytest.mark.parametrize("url", PRIVATE_URLS)
def test_s6_callback_urls_naming_private_addresses_are_refused(url: str, settings: Any) -> None:
    settings.CALLBACKS_ALLOW_PRIVATE_URLS = False
    with pytest.raises(partner_delivery.UnsafeCallbackUrl):
        partner_delivery.url_check(url)


class _Recorder(BaseHTTPRequestHandler):
    hits: list[str]
    redirect_to = ""

    def do_POST(self) -> None:
        self.hits.append(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        if self.redirect_to:
            self.send_response(302)
            self.send_header("Location", self.redirect_to)
        else:
            self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def loopback() -> Iterator[Any]:
    """Two recording servers on 127.0.0.1; the first redirects to the second."""
    servers = []
    for _ in range(2):
        handler = type("Handler", (_Recorder,), {"hits": []})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append((server, handler))
    (first, first_handler), (second, second_handler) = servers
    first_handler.redirect_to = f"http://127.0.0.1:{second.server_address[1]}/internal"
    yield SimpleNamespace(
        port=first.server_address[1], first=first_handler.hits, second=second_handler.hits
    )
    for server, _ in servers:
        server.shutdown()
        server.server_close()


def _fake_delivery(url: str) -> tuple[Any, Any]:
    endpoint = SimpleNamespace(
        url=url, secret="whsec_test", previous_secret="", previous_secret_expires_at=None
    )
    delivery = SimpleNamespace(pk=1, event_id=1, event=SimpleNamespace(type="message.received"))
    return endpoint, delivery


def test_s6_a_public_looking_name_that_dials_loopback_is_refused(
    loopback: Any, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.CALLBACKS_ALLOW_PRIVATE_URLS = False
    real = socket.getaddrinfo

    def resolve(host: Any, *args: Any, **kwargs: Any) -> Any:
        # A public-looking name whose DNS answer is the loopback address (DNS rebinding).
        return real("127.0.0.1" if host == "hooks.partner.example" else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    monkeypatch.setattr(partner_delivery, "body_of", lambda delivery: b"{}")
    url = f"http://hooks.partner.example:{loopback.port}/relay"
    partner_delivery.url_check(url)  # the name itself looks fine: the dialled address decides
    endpoint, delivery = _fake_delivery(url)
    outcome = partner_delivery._post(partner_delivery._session(), endpoint, delivery)
    assert outcome.status_code is None
    assert "public" in outcome.error
    assert loopback.first == []
    assert loopback.second == []


def test_s6_redirects_are_never_followed(
    loopback: Any, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Loopback allowed only so the first hop can be reached here at all.
    settings.CALLBACKS_ALLOW_PRIVATE_URLS = True
    monkeypatch.setattr(partner_delivery, "body_of", lambda delivery: b"{}")
    endpoint, delivery = _fake_delivery(f"http://127.0.0.1:{loopback.port}/relay")
    outcome = partner_delivery._post(partner_delivery._session(), endpoint, delivery)
    assert outcome.status_code == 302
    assert not outcome.ok
    assert loopback.first == ["/relay"]
    assert loopback.second == []


def test_s6_inbound_media_is_kept_as_links_never_fetched_by_the_server() -> None:
    """Meta's attachment URLs are stored and shown as links; no product code downloads them, so
    the only outbound requests to addresses a customer or partner chose are partner callbacks."""
    fetchers = re.compile(r"\b(?:requests|httpx|urllib\.request|urllib3)\.(?:get|request|urlopen)")
    allowed = {"webhooks/partner_delivery.py", "integrations/meta/client.py"}
    offenders = [
        rel
        for rel, source in _product_sources()
        if fetchers.search(source)
        and rel not in allowed
        and not rel.startswith("integrations/meta/sandbox/")
    ]
    assert offenders == []


# -- S7: partner API limits ----------------------------------------------------------------------


def test_s7_every_partner_list_caps_its_page_size() -> None:
    uncapped = []
    for route, view in walk_urls():
        cls = getattr(view, "cls", None)
        if not route.startswith("/api/") or cls is None:
            continue
        pagination = getattr(cls, "pagination_class", None)
        actions = getattr(view, "actions", {}) or {}
        lists = "list" in actions.values() or hasattr(cls, "list")
        if pagination is None or not lists:
            continue
        if getattr(pagination, "page_size_query_param", None) is None:
            continue  # a fixed page size: nothing for the caller to raise
        cap = getattr(pagination, "max_page_size", None)
        if cap is None or cap > 200:
            uncapped.append(f"{route}: {pagination.__name__} max_page_size={cap}")
    assert uncapped == []


@pytest.mark.django_db
def test_s7_a_page_size_above_the_cap_is_not_honoured(
    tenant: Tenant, api_client: APIClient
) -> None:
    with scope(tenant=tenant):
        AuditEntry.objects.bulk_create(
            AuditEntry(tenant=tenant, action="contact.exported", actor_label="system")
            for _ in range(205)
        )
    response = api_client.get("/api/v1/audit-log", {"page_size": 100_000})
    assert response.status_code == 200
    body = response.json()
    assert 0 < len(body["results"]) <= 200
    assert body["next"]
    listed = api_client.get("/api/v1/conversations", {"page_size": 100_000})
    assert listed.status_code in (200, 400)


@pytest.mark.django_db
def test_s7_an_oversized_request_body_is_refused_not_read(
    tenant: Tenant, api_client: APIClient
) -> None:
    limit = django_settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    assert limit is not None
    assert limit <= 5 * 1024 * 1024
    body = json.dumps({"note": "x" * (limit + 1024)})
    response = api_client.post("/api/v1/onboarding-links", body, content_type="application/json")
    assert 400 <= response.status_code < 500
