"""The default sandbox world as the contract tests see it, and small helpers."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from integrations.meta.client import AccountClient, MetaClient, MetaConfig
from integrations.meta.errors import MetaError
from integrations.meta.sandbox import seed
from integrations.meta.sandbox.testing import RunningSandbox
from integrations.meta.signatures import SIGNATURE_HEADER, verify_hub_signature
from integrations.meta.webhooks import WebhookEvent, parse_webhook_body

if TYPE_CHECKING:
    from tests.webhook_receiver import Received, Receiver

E = TypeVar("E", bound=WebhookEvent)

VERSION = "v25.0"
APP_ID = seed.APP_ID
APP_SECRET = seed.APP_SECRET
IG_APP_ID = seed.IG_APP_ID
IG_APP_SECRET = seed.IG_APP_SECRET
VERIFY_TOKEN = seed.VERIFY_TOKEN
FB_USER_ID = seed.FB_USER_ID
USER_TOKEN = seed.FB_USER_TOKEN
PAGE_ACME = seed.PAGE_ACME
PAGE_BELLA = seed.PAGE_BELLA
ACME_TOKEN = seed.PAGE_TOKENS[PAGE_ACME]
BELLA_TOKEN = seed.PAGE_TOKENS[PAGE_BELLA]
IG_ACME = seed.IG_ACME
IG_BELLA = seed.IG_BELLA
IG_CREATOR = seed.IG_CREATOR
IG_NOT_ELIGIBLE = seed.IG_NOT_ELIGIBLE
IG_NO_ACCESS = seed.IG_NO_ACCESS
CREATOR_TOKEN = seed.IG_TOKENS[IG_CREATOR]
NOT_ELIGIBLE_TOKEN = seed.IG_TOKENS[IG_NOT_ELIGIBLE]
NO_ACCESS_TOKEN = seed.IG_TOKENS[IG_NO_ACCESS]
CREATOR_APP_SCOPED_ID = "7190000000000003"
MEDIA_ACME_POST = seed.MEDIA_ACME_POST
MEDIA_ACME_REEL = seed.MEDIA_ACME_REEL
MEDIA_BELLA_POST = seed.MEDIA_BELLA_POST
MEDIA_CREATOR_POST = seed.MEDIA_CREATOR_POST
COMMENT_DMITRI_ACME = "17950000000000001"  # 1 h old
COMMENT_BOB_ACME_OLD = "17950000000000002"  # 8 days old
COMMENT_ALICE_CREATOR = "17950000000000003"  # 10 min old
INSTAGRAM_INBOX_APP_ID = "1217981644879628"

# IGSID = 6000000000 + account seq + 0000 + customer seq.
ALICE_AT_ACME = "6000000000100001"  # wrote 1 h ago: window open
BOB_AT_ACME = "6000000000100002"  # wrote 2 days ago: HUMAN_AGENT only
CARLA_AT_ACME = "6000000000100003"  # wrote 10 days ago: closed
DMITRI_AT_ACME = "6000000000100004"  # commented, never wrote
ALICE_AT_BELLA = "6000000000200001"
DMITRI_AT_CREATOR = "6000000000300004"  # wrote 2 h ago
ALICE_AT_CREATOR = "6000000000300001"  # commented 10 min ago, never wrote
ALICE_AT_NOT_ELIGIBLE = "6000000000400001"
BOB_AT_NO_ACCESS = "6000000000500002"

ALL_INSTAGRAM_FIELDS = list(seed.ALL_WEBHOOK_FIELDS)


def sandbox_config(sbx: RunningSandbox, **overrides: Any) -> MetaConfig:
    """The product's client configuration pointed at the sandbox (only base URLs change)."""
    values: dict[str, Any] = {
        "app_id": APP_ID,
        "app_secret": APP_SECRET,
        "instagram_app_id": IG_APP_ID,
        "instagram_app_secret": IG_APP_SECRET,
        "graph_version": VERSION,
        "graph_url": sbx.facebook_url,
        "instagram_graph_url": sbx.instagram_url,
        "facebook_dialog_url": sbx.facebook_url,
        "instagram_authorize_url": f"{sbx.instagram_url}/oauth/authorize",
        "instagram_api_url": sbx.instagram_url,
        "read_timeout": 5.0,
    }
    values.update(overrides)
    return MetaConfig(**values)


def raw_send(meta: MetaClient, account: AccountClient, body: dict[str, Any]) -> dict[str, Any]:
    """POST a hand-built Send API body (skips the client's own pre-flight limits)."""
    token = ACCOUNT_TOKENS[(account.host.value, account.node_id)]
    return meta.request(
        "POST", account.host, f"{account.node_id}/messages", token=token, json_body=body
    )


ACCOUNT_TOKENS: dict[tuple[str, str], str] = {
    ("facebook", PAGE_ACME): ACME_TOKEN,
    ("facebook", PAGE_BELLA): BELLA_TOKEN,
    ("instagram", "me"): CREATOR_TOKEN,
    ("instagram", IG_CREATOR): CREATOR_TOKEN,
}


def assert_error(
    exc: MetaError,
    cls: type[MetaError],
    reason: str,
    code: int | None,
    subcode: int | None = None,
) -> None:
    assert type(exc) is cls, f"{type(exc).__name__} != {cls.__name__}: {exc}"
    assert exc.reason == reason, str(exc)
    assert exc.code == code, str(exc)
    assert exc.subcode == subcode, str(exc)
    assert exc.fbtrace_id, "Graph errors carry an fbtrace_id"
    assert exc.user_message


def subscribe_webhooks(
    meta: MetaClient,
    receiver: Receiver,
    accounts: Iterable[AccountClient],
    fields: Sequence[str] = ALL_INSTAGRAM_FIELDS,
) -> None:
    """App-level ``instagram`` subscription (verified by the sandbox) + per-account install."""
    assert meta.set_app_subscription(
        object="instagram",
        callback_url=receiver.url,
        verify_token=receiver.verify_token,
        fields=fields,
    )
    for account in accounts:
        assert account.subscribe_app()


def deliver(sbx: RunningSandbox, receiver: Receiver) -> list[Received]:
    """Deliver everything the sandbox queued and hand back the raw POSTs."""
    result = sbx.flush()
    assert result["pending"] == 0, result
    return receiver.take()


def signed_events(posts: Iterable[Received], secret: str) -> list[WebhookEvent]:
    """Check every POST's X-Hub-Signature-256 with ``secret`` and parse it."""
    events: list[WebhookEvent] = []
    for post in posts:
        header = post.header(SIGNATURE_HEADER)
        assert verify_hub_signature(post.body, header, [secret]), "signature must verify"
        batch = parse_webhook_body(post.body)
        assert batch.object == "instagram"
        assert not batch.unknown, batch.unknown
        events.extend(batch)
    return events


def only(events: Sequence[WebhookEvent], cls: type[E]) -> E:
    matching = [e for e in events if type(e) is cls]
    assert len(matching) == 1, f"expected one {cls.__name__} in {events!r}"
    return matching[0]


class DialogForm:
    """The consent form of a sandbox OAuth dialog, as a browser would submit it."""

    def __init__(self, html_text: str) -> None:
        from html.parser import HTMLParser

        self.action = ""
        self.fields: list[tuple[str, str]] = []
        self.options: dict[str, list[str]] = {}
        form = self

        class Parser(HTMLParser):
            def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
                data = {k: v or "" for k, v in attrs}
                if tag == "form":
                    form.action = data.get("action", "")
                if tag != "input":
                    return
                name, value, kind = data.get("name", ""), data.get("value", ""), data.get("type")
                if kind in ("checkbox", "radio"):
                    form.options.setdefault(name, []).append(value)
                    if "checked" in data:
                        form.fields.append((name, value))
                elif name:
                    form.fields.append((name, value))

        Parser().feed(html_text)

    def submit(self, **choices: list[str] | str) -> list[tuple[str, str]]:
        """Form pairs with ``choices`` replacing the default ticks (``action`` picks a button)."""
        pairs = [(k, v) for k, v in self.fields if k not in choices]
        for name, value in choices.items():
            values = [value] if isinstance(value, str) else value
            pairs.extend((name, v) for v in values)
        return pairs
