"""Production settings as the platform runs them: secure by default, probes still reachable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.security.production import production_env, run_python

PROBE = """
import json, django
django.setup()
from django.conf import settings
from django.test import Client
client = Client()
out = {}
for path in ("/livez", "/readyz", "/healthz", "/accounts/login/"):
    response = client.get(path, HTTP_HOST="inbox.example.com")
    out[path] = [response.status_code, response.get("Location", "")]
out["settings"] = {
    "DEBUG": settings.DEBUG,
    "SESSION_COOKIE_SECURE": settings.SESSION_COOKIE_SECURE,
    "CSRF_COOKIE_SECURE": settings.CSRF_COOKIE_SECURE,
    "SESSION_COOKIE_HTTPONLY": settings.SESSION_COOKIE_HTTPONLY,
    "SESSION_COOKIE_SAMESITE": settings.SESSION_COOKIE_SAMESITE,
    "ACCOUNT_EMAIL_VERIFICATION": settings.ACCOUNT_EMAIL_VERIFICATION,
    "CACHE": settings.CACHES["default"]["BACKEND"],
}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    tmp_path: Path = tmp_path_factory.mktemp("production")
    result = run_python(["-c", PROBE], production_env(tmp_path))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_plain_http_pages_redirect_to_https(probe: dict[str, list[object]]) -> None:
    status, location = probe["/accounts/login/"]
    assert status == 301
    assert str(location).startswith("https://inbox.example.com/")


@pytest.mark.parametrize("path", ["/livez", "/readyz", "/healthz"])
def test_health_probes_are_not_redirected_to_https(
    probe: dict[str, list[object]], path: str
) -> None:
    # Kubernetes probes speak plain HTTP to the pod; a redirect would never reach the check.
    status, _ = probe[path]
    assert status in (200, 503)


def test_cookies_and_sign_in_are_hardened(probe: dict[str, dict[str, object]]) -> None:
    assert probe["settings"] == {
        "DEBUG": False,
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "ACCOUNT_EMAIL_VERIFICATION": "mandatory",
        "CACHE": "config.cache.RedisCache",
    }
