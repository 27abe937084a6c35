"""Shared by the onboarding and token upkeep tests: the Meta sandbox standing in for Meta.

The sandbox runs in this process; settings point the product's Meta client, and the login
dialogs, at it. Logins are answered by the sandbox's automatic mode (``sandbox_auto``), which
takes the same decisions a person takes on its dialog pages (the browser tests click those).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from django_scopes import scope

from accounts import onboarding
from accounts.models import InstagramAccount, OnboardingAttempt, OnboardingLink, Tenant, User
from integrations.meta.sandbox.testing import RunningSandbox, running_sandbox

META_APP_ID = "880000000000001"
META_APP_SECRET = "sbx0meta0app0secret0000000000001"
IG_APP_ID = "990000000000001"
IG_APP_SECRET = "sbx0instagram0app0secret00000001"
FB_USER_ID = "10000000000000001"
ACME, BELLA = "17841400000000001", "17841400000000002"
CREATOR, FRESH, QUIET = "17841400000000003", "17841400000000004", "17841400000000005"
SITE = "http://testserver"


def point_settings_at(settings: Any, sandbox: RunningSandbox, site: str = SITE) -> None:
    settings.META_APP_ID = META_APP_ID
    settings.META_APP_SECRET = META_APP_SECRET
    settings.META_INSTAGRAM_APP_ID = IG_APP_ID
    settings.META_INSTAGRAM_APP_SECRET = IG_APP_SECRET
    settings.META_GRAPH_URL = f"{sandbox.url}/facebook"
    settings.META_INSTAGRAM_GRAPH_URL = f"{sandbox.url}/instagram"
    settings.META_FACEBOOK_DIALOG_URL = f"{sandbox.url}/facebook"
    settings.META_INSTAGRAM_AUTHORIZE_URL = f"{sandbox.url}/instagram/oauth/authorize"
    settings.META_INSTAGRAM_API_URL = f"{sandbox.url}/instagram"
    settings.SITE_URL = site


@pytest.fixture
def sandbox(settings: Any) -> Iterator[RunningSandbox]:
    with running_sandbox(relaxed_rate_limits=True) as running:
        point_settings_at(settings, running)
        yield running


@pytest.fixture
def backfills(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, list[Any]]]:
    """History backfills queued by name (the inbox's task), recorded instead of published."""
    from config.celery_app import app as celery_app

    sent: list[tuple[str, list[Any]]] = []
    monkeypatch.setattr(
        celery_app, "send_task", lambda name, args=None, **_: sent.append((name, list(args or [])))
    )
    return sent


@pytest.fixture
def eager_tasks() -> Iterator[None]:
    from config.celery_app import app as celery_app

    celery_app.conf.task_always_eager = True
    try:
        yield
    finally:
        celery_app.conf.task_always_eager = False


def redirect_uri(kind: str) -> str:
    return f"{SITE}/onboarding/callback/{kind}/"


def login_code(kind: str, *, state: str = "state-1", **answer: str) -> str:
    """Go through the sandbox's login dialog, answered automatically; return the code."""
    url = onboarding.login_url(login_kind=kind, redirect_uri=redirect_uri(kind), state=state)
    params = {"sandbox_auto": "approve", **{f"sandbox_{k}": v for k, v in answer.items()}}
    response = requests.get(f"{url}&{urlencode(params)}", allow_redirects=False, timeout=10)
    assert response.status_code in (302, 303), response.text[:300]
    query = parse_qs(urlsplit(response.headers["Location"].split("#")[0]).query)
    assert query["state"] == [state]
    return query["code"][0]


def attempt_for(
    tenant: Tenant,
    kind: str,
    *,
    user: User | None = None,
    link: OnboardingLink | None = None,
    **answer: str,
) -> OnboardingAttempt:
    code = login_code(kind, **answer)
    with scope(tenant=tenant):
        return onboarding.onboarding_attempt_create(
            tenant=tenant,
            login_kind=kind,
            code=code,
            redirect_uri=redirect_uri(kind),
            started_by=user,
            link=link,
        )


def connect(
    tenant: Tenant, kind: str, ig_ids: list[str], *, user: User | None = None, **answer: str
) -> onboarding.ConnectOutcome:
    attempt = attempt_for(tenant, kind, user=user, **answer)
    with scope(tenant=tenant):
        return onboarding.onboarding_connect(attempt=attempt, ig_user_ids=ig_ids, user=user)


def account(tenant: Tenant, ig_user_id: str) -> InstagramAccount:
    with scope(tenant=tenant):
        return InstagramAccount.objects.get(ig_user_id=ig_user_id)


def signed_request(payload: dict[str, Any], secret: str) -> str:
    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    encoded = b64(json.dumps({"algorithm": "HMAC-SHA256", **payload}).encode())
    signature = hmac.new(secret.encode(), encoded.encode(), hashlib.sha256).digest()
    return f"{b64(signature)}.{encoded}"
