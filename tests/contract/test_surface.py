"""Guards that keep this suite complete: every public client method is exercised here, every
customer action the sandbox offers has a webhook test, and the settings factory reaches the
sandbox."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
from django.test import override_settings

from integrations.meta.client import AccountClient, MetaClient, client_from_settings
from integrations.meta.sandbox import control
from integrations.meta.sandbox.testing import RunningSandbox
from tests.contract import support as w

HERE = Path(__file__).resolve().parent
# Transport internals every other call goes through; no contract of their own.
TRANSPORT = {"url_for", "fetch_page", "next_page", "iterate", "close", "request", "last_usage"}
# Messages a customer can send through the control API (`customers/{ref}/send` kinds).
SEND_KINDS = {
    "text",
    "image",
    "video",
    "audio",
    "file",
    "story_mention",
    "story_reply",
    "post_share",
    "reel",
    "quick_reply",
    "ad_referral",
    "ephemeral",
    "unsupported",
}


def _sources(exclude: str = "test_surface.py") -> str:
    return "\n".join(p.read_text() for p in sorted(HERE.glob("test_*.py")) if p.name != exclude)


def _public(cls: type) -> set[str]:
    return {
        name
        for name, member in inspect.getmembers(cls)
        if not name.startswith("_") and (callable(member) or isinstance(member, property))
    }


@pytest.mark.parametrize("cls", [MetaClient, AccountClient])
def test_every_public_client_method_is_called_against_the_sandbox(cls: type) -> None:
    sources = _sources()
    missing = sorted(
        name for name in _public(cls) - TRANSPORT if not re.search(rf"\.{name}\(", sources)
    )
    assert missing == []


def test_every_customer_action_has_a_webhook_test() -> None:
    webhook_tests = (HERE / "test_webhooks.py").read_text()
    relationship_only = {"block", "unblock", "follow", "unfollow"}  # no webhook in Meta either
    for action in set(control.CUSTOMER_ACTIONS) - relationship_only - {"send"}:
        assert f'"{action}"' in webhook_tests, action
    assert '"comment"' in webhook_tests
    for kind in SEND_KINDS:
        assert f'"{kind}"' in webhook_tests, kind


def test_client_from_settings_reaches_the_sandbox(sbx: RunningSandbox) -> None:
    with override_settings(
        META_APP_ID=w.APP_ID,
        META_APP_SECRET=w.APP_SECRET,
        META_INSTAGRAM_APP_ID=w.IG_APP_ID,
        META_INSTAGRAM_APP_SECRET=w.IG_APP_SECRET,
        META_GRAPH_VERSION="v24.0",
        META_GRAPH_URL=sbx.facebook_url,
        META_INSTAGRAM_GRAPH_URL=sbx.instagram_url,
        META_FACEBOOK_DIALOG_URL=sbx.facebook_url,
        META_INSTAGRAM_AUTHORIZE_URL=f"{sbx.instagram_url}/oauth/authorize",
        META_INSTAGRAM_API_URL=sbx.instagram_url,
        META_TIMEOUT_SECONDS=5,
    ):
        meta = client_from_settings()
    with meta:
        assert meta.config.graph_version == "v24.0"  # any version prefix is accepted
        assert meta.facebook_me(w.USER_TOKEN).id == w.FB_USER_ID
        assert meta.instagram_me(w.CREATOR_TOKEN).user_id == w.IG_CREATOR
        url = meta.facebook_login_url(redirect_uri="https://app.example.com/cb", state="s")
        assert url.startswith(f"{sbx.facebook_url}/v24.0/dialog/oauth?")
