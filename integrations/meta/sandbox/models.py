"""State of the simulated Meta world, persisted as one JSON document."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

Host = Literal["facebook", "instagram"]

INSTAGRAM_INBOX_APP_ID = "1217981644879628"
PAGE_INBOX_APP_ID = "263902037430900"


class AppSubscription(BaseModel):
    object: str = "instagram"
    callback_url: str
    verify_token: str = ""
    fields: list[str] = Field(default_factory=list)
    active: bool = True
    include_values: bool = True


class App(BaseModel):
    id: str
    secret: str
    name: str
    ig_app_id: str
    ig_app_secret: str
    human_agent: bool = True
    require_appsecret_proof: bool = False
    redirect_uris: list[str] = Field(default_factory=list)
    subscriptions: dict[str, AppSubscription] = Field(default_factory=dict)


class FbUser(BaseModel):
    id: str
    name: str
    page_ids: list[str] = Field(default_factory=list)


class Page(BaseModel):
    id: str
    name: str
    category: str = "Retail"
    tasks: list[str] = Field(
        default_factory=lambda: [
            "ADVERTISE",
            "ANALYZE",
            "CREATE_CONTENT",
            "MESSAGING",
            "MODERATE",
            "MANAGE",
        ]
    )
    ig_account_id: str | None = None
    owner_user_id: str | None = None
    subscribed_fields: dict[str, list[str]] = Field(default_factory=dict)


class IgAccount(BaseModel):
    id: str
    seq: int
    app_scoped_id: str
    username: str
    name: str
    account_type: Literal["Business", "Media_Creator"] = "Business"
    login: Host = "facebook"
    page_id: str | None = None
    eligible: bool = True
    message_access: bool = True
    take_thread_allowed: bool = False
    followers_count: int = 1200
    follows_count: int = 10
    media_count: int = 0
    profile_picture_url: str = ""
    subscribed_fields: dict[str, list[str]] = Field(default_factory=dict)
    messenger_profile: dict[str, Any] = Field(default_factory=dict)


class Customer(BaseModel):
    id: str
    seq: int
    username: str
    name: str
    ig_user_id: str
    profile_pic: str = ""
    follower_count: int = 100
    is_verified_user: bool = False
    igsids: dict[str, str] = Field(default_factory=dict)
    follows: list[str] = Field(default_factory=list)
    followed_by: list[str] = Field(default_factory=list)
    blocked: list[str] = Field(default_factory=list)
    consent: list[str] = Field(default_factory=list)


class Conversation(BaseModel):
    id: str
    ig_id: str
    igsid: str
    customer_id: str
    updated_ms: int
    last_inbound_ms: int | None = None
    folder: Literal["inbox", "requests"] = "requests"
    owner_app_id: str | None = None
    owner_expires_ms: int = 0
    message_ids: list[str] = Field(default_factory=list)
    actions: list[dict[str, Any]] = Field(default_factory=list)


class Message(BaseModel):
    mid: str
    conversation_id: str
    ig_id: str
    igsid: str
    direction: Literal["in", "out"]
    created_ms: int
    text: str | None = None
    attachments: list[dict[str, Any]] = Field(default_factory=list)
    kind: str = "text"
    reply_to: dict[str, Any] | None = None
    quick_reply: dict[str, Any] | None = None
    referral: dict[str, Any] | None = None
    story: dict[str, Any] | None = None
    deleted: bool = False
    num_edit: int = 0
    reactions: list[dict[str, Any]] = Field(default_factory=list)
    app_id: str | None = None
    tag: str | None = None
    comment_id: str | None = None
    metadata: str | None = None
    body: dict[str, Any] | None = None


class Media(BaseModel):
    id: str
    ig_id: str
    caption: str = ""
    media_type: str = "IMAGE"
    media_product_type: str = "FEED"
    media_url: str = ""
    permalink: str = ""
    created_ms: int = 0


class Comment(BaseModel):
    id: str
    media_id: str
    ig_id: str
    customer_id: str | None = None
    from_business: bool = False
    text: str = ""
    created_ms: int = 0
    parent_id: str | None = None
    private_reply_mid: str | None = None
    deleted: bool = False


class Token(BaseModel):
    token: str
    kind: Literal["user_short", "user_long", "page", "system_user", "ig_short", "ig_long", "app"]
    app_id: str
    host: Host
    user_id: str | None = None
    page_id: str | None = None
    ig_id: str | None = None
    scopes: list[str] = Field(default_factory=list)
    granular: dict[str, list[str]] = Field(default_factory=dict)
    issued_ms: int = 0
    expires_ms: int = 0
    data_access_expires_ms: int = 0
    revoked: bool = False
    revoked_subcode: int | None = None
    parent: str | None = None


class AuthCode(BaseModel):
    code: str
    host: Host
    app_id: str
    redirect_uri: str
    user_id: str | None = None
    ig_id: str | None = None
    scopes: list[str] = Field(default_factory=list)
    granular: dict[str, list[str]] = Field(default_factory=dict)
    created_ms: int = 0
    ttl_ms: int = 600_000
    used: bool = False


class Attachment(BaseModel):
    id: str
    ig_id: str
    type: str
    url: str | None = None
    size: int = 0
    created_ms: int = 0


class Fault(BaseModel):
    id: str
    kind: Literal["error", "5xx", "timeout", "rate_limit"]
    remaining: int = 1
    status: int | None = None
    code: int | None = None
    subcode: int | None = None
    message: str | None = None
    match: str | None = None
    host: Host | None = None
    delay: float = 10.0
    # Fail every Nth matching call (1: each one); ``seen`` counts the matching calls so far.
    every: int = 1
    seen: int = 0


class WebhookEvent(BaseModel):
    app_id: str
    account_id: str
    channel: Literal["messaging", "standby", "changes"]
    field: str
    item: dict[str, Any]
    created_ms: int


class Delivery(BaseModel):
    id: str
    app_id: str
    url: str
    signer: Literal["meta", "instagram"]
    body: str
    attempts: int = 0
    next_at: float = 0.0
    status: Literal["pending", "delivered", "dropped"] = "pending"
    duplicate: bool = False
    last_status: int | None = None
    last_error: str | None = None


class WebhookOptions(BaseModel):
    duplicate: float = 0.0
    reorder: bool = False
    batch_max: int = 50
    max_attempts: int = 6
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    timeout: float = 10.0
    disable_after_s: int = 3600
    seed: int = 7


class OAuthAuto(BaseModel):
    mode: Literal["approve", "deny"] | None = None
    scopes: list[str] | None = None
    targets: list[str] | None = None
    user_id: str | None = None
    account_id: str | None = None


class RateRule(BaseModel):
    limit: int
    window_s: float


def default_rate_rules() -> dict[str, RateRule]:
    return {
        "send_text": RateRule(limit=100, window_s=1),
        "send_media": RateRule(limit=10, window_s=1),
        "conversations": RateRule(limit=2, window_s=1),
        "private_reply": RateRule(limit=750, window_s=3600),
        "buc": RateRule(limit=4800, window_s=3600),
        "app": RateRule(limit=20000, window_s=3600),
    }


class Settings(BaseModel):
    ig_code_exchange_shape: Literal["flat", "data"] = "flat"
    latency_ms: int = 0
    message_detail_limit: int = 20


class World(BaseModel):
    apps: dict[str, App] = Field(default_factory=dict)
    users: dict[str, FbUser] = Field(default_factory=dict)
    pages: dict[str, Page] = Field(default_factory=dict)
    accounts: dict[str, IgAccount] = Field(default_factory=dict)
    customers: dict[str, Customer] = Field(default_factory=dict)
    conversations: dict[str, Conversation] = Field(default_factory=dict)
    messages: dict[str, Message] = Field(default_factory=dict)
    media: dict[str, Media] = Field(default_factory=dict)
    comments: dict[str, Comment] = Field(default_factory=dict)
    tokens: dict[str, Token] = Field(default_factory=dict)
    codes: dict[str, AuthCode] = Field(default_factory=dict)
    attachments: dict[str, Attachment] = Field(default_factory=dict)
    faults: list[Fault] = Field(default_factory=list)
    events: list[WebhookEvent] = Field(default_factory=list)
    deliveries: list[Delivery] = Field(default_factory=list)
    delivery_log: list[dict[str, Any]] = Field(default_factory=list)
    webhook_options: WebhookOptions = Field(default_factory=WebhookOptions)
    oauth_auto: OAuthAuto = Field(default_factory=OAuthAuto)
    rate_rules: dict[str, RateRule] = Field(default_factory=default_rate_rules)
    settings: Settings = Field(default_factory=Settings)
    clock_offset_s: float = 0.0
    counters: dict[str, int] = Field(default_factory=dict)
    callback_failing_since: dict[str, int] = Field(default_factory=dict)
