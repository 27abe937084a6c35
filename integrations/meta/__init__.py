"""Meta Graph API client for Instagram messaging (plain Python; no Django apart from
``client_from_settings``). See README.md in this folder for the surface."""

from integrations.meta.client import (
    DEFAULT_GRAPH_VERSION,
    INSTAGRAM_INBOX_APP_ID,
    PAGE_INBOX_APP_ID,
    AccountClient,
    Host,
    MetaClient,
    MetaConfig,
    client_from_settings,
)
from integrations.meta.errors import (
    MetaAuthError,
    MetaError,
    MetaPermanentError,
    MetaPermissionError,
    MetaPolicyError,
    MetaRateLimitError,
    MetaTransientError,
    PolicyReason,
    Reason,
    map_error,
)
from integrations.meta.signatures import (
    SignedRequestError,
    appsecret_proof,
    make_signed_request,
    meta_json_bytes,
    parse_signed_request,
    sign_hub_body,
    verify_hub_signature,
)
from integrations.meta.usage import Usage, parse_usage_headers
from integrations.meta.webhooks import WebhookBatch, WebhookEvent, parse_webhook, parse_webhook_body

__all__ = [
    "DEFAULT_GRAPH_VERSION",
    "INSTAGRAM_INBOX_APP_ID",
    "PAGE_INBOX_APP_ID",
    "AccountClient",
    "Host",
    "MetaAuthError",
    "MetaClient",
    "MetaConfig",
    "MetaError",
    "MetaPermanentError",
    "MetaPermissionError",
    "MetaPolicyError",
    "MetaRateLimitError",
    "MetaTransientError",
    "PolicyReason",
    "Reason",
    "SignedRequestError",
    "Usage",
    "WebhookBatch",
    "WebhookEvent",
    "appsecret_proof",
    "client_from_settings",
    "make_signed_request",
    "map_error",
    "meta_json_bytes",
    "parse_signed_request",
    "parse_usage_headers",
    "parse_webhook",
    "parse_webhook_body",
    "sign_hub_body",
    "verify_hub_signature",
]
