"""Graph API endpoints for both hosts (graph.facebook.com and graph.instagram.com)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from . import sending
from .core import DAY_MS, Sandbox, iso
from .errors import (
    GraphError,
    invalid_param,
    missing_param,
    missing_permission,
    no_object,
    nonexisting_field,
)
from .fields import FieldSel, parse_fields, render_fields
from .models import (
    INSTAGRAM_INBOX_APP_ID,
    App,
    AppSubscription,
    Comment,
    Conversation,
    Customer,
    Host,
    IgAccount,
    Media,
    Message,
    Page,
    Token,
)
from .wire import Request, Response

PAGE_FIELDS = {
    "messages",
    "messaging_postbacks",
    "messaging_optins",
    "message_deliveries",
    "message_reads",
    "message_echoes",
    "messaging_referrals",
    "messaging_handovers",
    "messaging_policy_enforcement",
    "message_reactions",
    "message_edits",
    "messaging_account_linking",
    "messaging_feedback",
    "response_feedback",
    "standby",
    "feed",
    "mention",
    "name",
    "picture",
    "inbox_labels",
    "messaging_customer_information",
    "messaging_integrity",
    "send_cart",
}
IG_FIELDS = {
    "messages",
    "message_echoes",
    "message_edit",
    "message_reactions",
    "messaging_seen",
    "messaging_postbacks",
    "messaging_referral",
    "messaging_optins",
    "messaging_handover",
    "standby",
    "response_feedback",
    "comments",
    "live_comments",
    "mentions",
    "story_insights",
}
SCOPES = {
    "messages": {
        "facebook": "instagram_manage_messages",
        "instagram": "instagram_business_manage_messages",
    },
    "comments": {
        "facebook": "instagram_manage_comments",
        "instagram": "instagram_business_manage_comments",
    },
    "basic": {"facebook": "instagram_basic", "instagram": "instagram_business_basic"},
    "metadata": {"facebook": "pages_manage_metadata", "instagram": "instagram_business_basic"},
}
DEFAULT_LIMIT = 25
CURSOR_PREFIX = "QVFI"


@dataclass
class Ctx:
    sb: Sandbox
    req: Request
    host: Host
    params: dict[str, Any]
    token: Token | None = None
    app: App | None = None
    business_id: str | None = None
    business_type: str = "instagram"
    throttle: dict[str, int] = field(default_factory=dict)

    @property
    def now(self) -> int:
        return self.sb.now_ms()

    def require_app(self) -> App:
        if self.app is None:
            raise invalid_token_error()
        return self.app


# -- authentication -------------------------------------------------------------------------


def _raw_token(ctx: Ctx) -> str | None:
    auth = ctx.req.header("authorization")
    if auth.lower().startswith("bearer ") or auth.lower().startswith("oauth "):
        return auth.split(" ", 1)[1].strip()
    value = ctx.params.get("access_token")
    return str(value) if value else None


def invalid_token_error(message: str = "Invalid OAuth access token - Cannot parse access token"):
    return GraphError(190, message, type_="OAuthException")


def token_state_error(sb: Sandbox, token: Token) -> GraphError | None:
    """Why a stored token cannot be used now (190 with Meta's subcodes), or None."""
    if token.revoked:
        subcode = token.revoked_subcode or 460
        texts = {
            458: f"Error validating access token: The user has not authorized application "
            f"{token.app_id}.",
            460: "Error validating access token: The session has been invalidated because the "
            "user changed their password or Facebook has changed the session for security "
            "reasons.",
            467: "Error validating access token: The session is invalid because the user "
            "logged out.",
        }
        return GraphError(
            190, texts.get(subcode, texts[467]), subcode=subcode, type_="OAuthException"
        )
    now = sb.now_ms()
    if token.expires_ms and token.expires_ms <= now:
        return GraphError(
            190,
            f"Error validating access token: Session has expired on {iso(token.expires_ms)}. "
            f"The current time is {iso(now)}.",
            subcode=463,
            type_="OAuthException",
        )
    return None


def authenticate(ctx: Ctx, *, kinds: Iterable[str] | None = None) -> Token:
    raw = _raw_token(ctx)
    if not raw:
        raise GraphError(
            104, "An access token is required to request this resource.", type_="OAuthException"
        )
    sb = ctx.sb
    token: Token | None
    if "|" in raw:
        token = _app_token(ctx, raw)
    else:
        token = sb.world.tokens.get(raw)
        if token is None or token.host != ctx.host:
            raise invalid_token_error()
        problem = token_state_error(sb, token)
        if problem:
            raise problem
        _check_proof(ctx, token)
    ctx.token = token
    ctx.app = sb.world.apps.get(token.app_id)
    if kinds is not None and token.kind not in set(kinds):
        if ctx.host == "facebook" and "page" in set(kinds):
            raise GraphError(
                210, "(#210) A page access token is required to request this resource."
            )
        raise GraphError(
            190, "Invalid OAuth access token for this resource.", type_="OAuthException"
        )
    return token


def _app_token(ctx: Ctx, raw: str) -> Token:
    app_id, _, secret = raw.partition("|")
    for app in ctx.sb.world.apps.values():
        ids = (app.id, app.secret) if ctx.host == "facebook" else (app.ig_app_id, app.ig_app_secret)
        if (app_id, secret) == ids:
            return Token(token=raw, kind="app", app_id=app.id, host=ctx.host)
        if app_id in (app.id, app.ig_app_id):
            raise GraphError(
                190, "Error validating client secret.", subcode=None, type_="OAuthException"
            )
    raise invalid_token_error()


def _check_proof(ctx: Ctx, token: Token) -> None:
    app = ctx.sb.world.apps.get(token.app_id)
    if app is None:
        raise invalid_token_error()
    proof = ctx.params.get("appsecret_proof")
    if proof is None:
        if app.require_appsecret_proof:
            raise GraphError(
                100,
                "API calls from the server require an appsecret_proof argument",
                type_="GraphMethodException",
            )
        return
    secret = ctx.sb.app_secret_for(app.id, ctx.host)
    expected = hmac.new(secret.encode(), token.token.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(str(proof), expected):
        raise GraphError(
            100,
            "Invalid appsecret_proof provided in the API argument",
            type_="GraphMethodException",
        )


def require_scope(ctx: Ctx, kind: str) -> None:
    token = ctx.token
    if token is None or token.kind == "app":
        return
    scope = SCOPES[kind][ctx.host]
    if scope not in token.scopes:
        raise missing_permission(scope)


# -- rate limits ------------------------------------------------------------------------------


def hit_rate(ctx: Ctx, category: str, *, code: int = 613, subcode: int | None = None) -> None:
    sb = ctx.sb
    rule = sb.world.rate_rules.get(category)
    if rule is None or ctx.business_id is None:
        return
    key = (ctx.business_id, category)
    now = sb.now_ms()
    if not sb.rates.hit(key, rule, now):
        _, wait_ms = sb.rates.usage(key, rule, now)
        ctx.throttle[ctx.business_id] = max(1, math.ceil(wait_ms / 60_000))
        raise GraphError(
            code,
            "(#613) Calls to this api have exceeded the rate limit."
            if code == 613
            else f"(#{code}) Application request limit reached",
            subcode=subcode,
        )


def usage_headers(ctx: Ctx) -> dict[str, str]:
    sb = ctx.sb
    now = sb.now_ms()
    headers: dict[str, str] = {}
    if ctx.app is not None:
        rule = sb.world.rate_rules["app"]
        used, _ = sb.rates.usage(("app", ctx.app.id), rule, now)
        pct = min(100, round(100 * used / max(rule.limit, 1)))
        headers["X-App-Usage"] = json.dumps(
            {"call_count": pct, "total_time": pct // 2, "total_cputime": pct // 3}
        )
    if ctx.business_id is not None:
        pct = 0
        for category, rule in sb.world.rate_rules.items():
            if category == "app":
                continue
            used, _ = sb.rates.usage((ctx.business_id, category), rule, now)
            pct = max(pct, round(100 * used / max(rule.limit, 1)))
        regain = ctx.throttle.get(ctx.business_id, 0)
        if regain:
            pct = 100
        headers["X-Business-Use-Case-Usage"] = json.dumps(
            {
                ctx.business_id: [
                    {
                        "type": ctx.business_type,
                        "call_count": min(pct, 100),
                        "total_cputime": min(pct, 100) // 3,
                        "total_time": min(pct, 100) // 2,
                        "estimated_time_to_regain_access": regain,
                    }
                ]
            }
        )
    return headers


def count_call(ctx: Ctx) -> None:
    sb = ctx.sb
    now = sb.now_ms()
    if ctx.app is not None:
        rule = sb.world.rate_rules["app"]
        if not sb.rates.hit(("app", ctx.app.id), rule, now):
            raise GraphError(4, "(#4) Application request limit reached")
    if ctx.business_id is not None:
        rule = sb.world.rate_rules["buc"]
        key = (ctx.business_id, "buc")
        if not sb.rates.hit(key, rule, now):
            _, wait_ms = sb.rates.usage(key, rule, now)
            ctx.throttle[ctx.business_id] = max(1, math.ceil(wait_ms / 60_000))
            raise GraphError(
                80002,
                "(#80002) There have been too many calls to this Instagram account. Wait a bit "
                "and try again.",
            )


# -- business resolution ---------------------------------------------------------------------


def business_account(ctx: Ctx, node: str, *, edge: str) -> IgAccount:
    """The IG professional account addressed by `/{node}/{edge}` with the current token."""
    sb = ctx.sb
    world = sb.world
    if ctx.host == "facebook":
        if node != "me" and node in world.accounts and node not in world.pages:
            raise GraphError(
                3, "(#3) Application does not have the capability to make this API call."
            )
        token = authenticate(ctx, kinds={"page"})
        page_id = token.page_id if node == "me" else node
        if page_id != token.page_id or page_id not in world.pages:
            raise no_object(node, "post" if ctx.req.method == "POST" else "get")
        account = sb.account_for_page(page_id or "")
        ctx.business_id = page_id
        ctx.business_type = "pages"
        if account is None:
            raise GraphError(
                100,
                "(#100) This Page is not connected to an Instagram professional account.",
                subcode=2534013,
            )
        ctx.business_id = account.id
        ctx.business_type = "instagram"
        return account
    token = authenticate(ctx, kinds={"ig_short", "ig_long"})
    account = world.accounts.get(token.ig_id or "")
    if account is None:
        raise invalid_token_error()
    if node not in ("me", account.id, account.app_scoped_id):
        raise no_object(node, "post" if ctx.req.method == "POST" else "get")
    ctx.business_id = account.id
    return account


def check_messaging_allowed(account: IgAccount) -> None:
    if not account.eligible:
        raise GraphError(
            36103,
            "(#36103) This Instagram account is not yet eligible to use the messaging API.",
        )
    if not account.message_access:
        raise GraphError(
            200,
            "(#200) The account owner has disabled access to instagram direct messages.",
            subcode=2534041,
            user_title="Messaging Access Disabled",
            user_msg="The account owner turned off Allow access to messages in Instagram settings.",
        )


# -- pagination -------------------------------------------------------------------------------


def encode_cursor(key: Any) -> str:
    raw = json.dumps(key, separators=(",", ":")).encode()
    return CURSOR_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> Any:
    if not cursor.startswith(CURSOR_PREFIX):
        raise invalid_param("Invalid cursor")
    body = cursor[len(CURSOR_PREFIX) :]
    try:
        return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except ValueError as exc:
        raise invalid_param("Invalid cursor") from exc


def paginate(
    ctx: Ctx,
    items: list[Any],
    key: Callable[[Any], list[Any]],
    render: Callable[[Any], dict[str, Any]],
    *,
    limit: int | None = None,
    after: str | None = None,
    before: str | None = None,
    next_path: str | None = None,
    next_query: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Cursor pagination over items already in display order; `key` must be increasing.

    `next_path`/`next_query` serve nested edges: their `next`/`previous` links address the
    edge itself with the edge's own selection, as Meta's do (the outer query is not copied).
    """
    size = limit or DEFAULT_LIMIT
    size = max(1, min(size, 100))
    if after:
        mark = decode_cursor(after)
        items = [item for item in items if key(item) > mark]
        window = items[:size]
        has_more_after = len(items) > size
        has_prev = True
    elif before:
        mark = decode_cursor(before)
        items = [item for item in items if key(item) < mark]
        window = items[-size:]
        has_more_after = True
        has_prev = len(items) > size
    else:
        window = items[:size]
        has_more_after = len(items) > size
        has_prev = False
    result: dict[str, Any] = {"data": [render(item) for item in window]}
    if window:
        first, last = encode_cursor(key(window[0])), encode_cursor(key(window[-1]))
        paging: dict[str, Any] = {"cursors": {"before": first, "after": last}}
        base = next_path or ctx.req.path
        if next_query is not None:
            token_keys = ("access_token", "appsecret_proof")
            query = {k: v for k, v in ctx.req.query.items() if k in token_keys}
            query.update(next_query)
        else:
            query = {k: v for k, v in ctx.req.query.items() if k not in ("after", "before")}
        if limit is not None:
            query["limit"] = str(size)
        if has_more_after:
            paging["next"] = f"{ctx.req.base_url}{base}?{urlencode({**query, 'after': last})}"
        if has_prev:
            paging["previous"] = f"{ctx.req.base_url}{base}?{urlencode({**query, 'before': first})}"
        result["paging"] = paging
    return result


def _limit(value: Any) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise invalid_param("Param limit must be an integer") from exc


# -- node renderers ---------------------------------------------------------------------------


def _select(
    sel: dict[str, FieldSel],
    default: str,
    available: dict[str, Callable[[FieldSel], Any]],
    node_type: str,
) -> dict[str, Any]:
    chosen = sel or parse_fields(default)
    out: dict[str, Any] = {}
    for name, fsel in chosen.items():
        getter = available.get(name)
        if getter is None:
            raise nonexisting_field(name, node_type)
        value = getter(fsel)
        if value is not None:
            out[name] = value
    if "id" in available and "id" not in out:
        out["id"] = available["id"](FieldSel("id"))
    return out


def ig_user_node(ctx: Ctx, account: IgAccount, sel: dict[str, FieldSel]) -> dict[str, Any]:
    on_ig = ctx.host == "instagram"
    available: dict[str, Callable[[FieldSel], Any]] = {
        "id": lambda _: account.app_scoped_id if on_ig else account.id,
        "user_id": lambda _: account.id,
        "ig_id": lambda _: int(account.id[-10:]),
        "username": lambda _: account.username,
        "name": lambda _: account.name,
        "account_type": lambda _: account.account_type,
        "profile_picture_url": lambda _: account.profile_picture_url,
        "followers_count": lambda _: account.followers_count,
        "follows_count": lambda _: account.follows_count,
        "media_count": lambda _: account.media_count,
        "biography": lambda _: f"{account.name} on the sandbox",
        "website": lambda _: f"https://{account.username.replace('.', '-')}.example.com",
    }
    return _select(sel, "id", available, "User" if on_ig else "IGUser")


def page_node(ctx: Ctx, page: Page, sel: dict[str, FieldSel]) -> dict[str, Any]:
    sb = ctx.sb

    def ig(fsel: FieldSel) -> Any:
        account = sb.account_for_page(page.id)
        if account is None:
            return None
        token = ctx.token
        if token is not None and token.kind != "app":
            if "instagram_basic" not in token.scopes:
                return None
            targets = token.granular.get("instagram_basic")
            if targets and account.id not in targets:
                return None
        return ig_user_node(ctx, account, fsel.sub or parse_fields("id"))

    available: dict[str, Callable[[FieldSel], Any]] = {
        "id": lambda _: page.id,
        "name": lambda _: page.name,
        "category": lambda _: page.category,
        "category_list": lambda _: [{"id": "200600219953504", "name": page.category}],
        "tasks": lambda _: page.tasks,
        "link": lambda _: f"https://www.facebook.com/{page.id}",
        "instagram_business_account": ig,
        "connected_instagram_account": ig,
        "messaging_feature_status": lambda _: {
            "hop_v2": True,
            "msgr_multi_app": True,
            "ig_multi_app": True,
        },
    }
    return _select(sel, "id,name", available, "Page")


def participants(ctx: Ctx, conv: Conversation) -> dict[str, Any]:
    account = ctx.sb.world.accounts[conv.ig_id]
    customer = ctx.sb.world.customers[conv.customer_id]
    return {
        "data": [
            {"username": account.username, "id": account.id},
            {"username": customer.username, "id": conv.igsid},
        ]
    }


def message_node(ctx: Ctx, msg: Message, sel: dict[str, FieldSel]) -> dict[str, Any]:
    sb = ctx.sb
    account = sb.world.accounts[msg.ig_id]
    customer = sb.customer_by_igsid(msg.ig_id, msg.igsid)
    business = {"username": account.username, "id": account.id}
    person = {"username": customer.username if customer else "", "id": msg.igsid}
    sender, receiver = (person, business) if msg.direction == "in" else (business, person)

    def attachments(_: FieldSel) -> Any:
        items = []
        for index, att in enumerate(msg.attachments):
            url = (att.get("payload") or {}).get("url")
            kind = att.get("type")
            entry: dict[str, Any] = {"id": f"{msg.mid}_{index}"}
            if kind == "image" and url:
                entry["mime_type"] = "image/jpeg"
                entry["image_data"] = {
                    "url": url,
                    "preview_url": url,
                    "width": 1080,
                    "height": 1080,
                }
            elif kind == "video" and url:
                entry["mime_type"] = "video/mp4"
                entry["video_data"] = {"url": url, "preview_url": url, "width": 720, "height": 1280}
            elif kind in ("audio", "file") and url:
                entry["mime_type"] = "audio/mpeg" if kind == "audio" else "application/pdf"
                entry["file_url"] = url
            else:
                continue
            items.append(entry)
        return {"data": items} if items else None

    def shares(_: FieldSel) -> Any:
        links = [
            {"link": (att.get("payload") or {}).get("url")}
            for att in msg.attachments
            if att.get("type") in ("share", "ig_post", "ig_reel", "MEDIA_SHARE")
        ]
        return {"data": links} if links else None

    available: dict[str, Callable[[FieldSel], Any]] = {
        "id": lambda _: msg.mid,
        "created_time": lambda _: iso(msg.created_ms),
        "from": lambda _: sender,
        "to": lambda _: {"data": [receiver]},
        "message": lambda _: msg.text or "",
        "attachments": attachments,
        "shares": shares,
        "story": lambda _: msg.story,
        "reply_to": lambda _: (
            {**msg.reply_to, "is_self_reply": False}
            if msg.reply_to and "mid" in msg.reply_to
            else None
        ),
        "is_unsupported": lambda _: msg.kind == "unsupported",
        "reactions": lambda _: {
            "data": [
                {"reaction": r.get("reaction"), "emoji": r.get("emoji")} for r in msg.reactions
            ]
        },
    }
    return _select(sel, "id,created_time", available, "Message")


def conversation_messages(
    ctx: Ctx, conv: Conversation, fsel: FieldSel, *, top_level: bool = False
) -> dict[str, Any]:
    msgs = [ctx.sb.world.messages[mid] for mid in reversed(conv.message_ids)]
    msgs = [m for m in msgs if not (m.deleted and m.direction == "in")]
    sub = fsel.sub or {}
    limit = fsel.limit
    after = before = None
    if top_level:
        limit = _limit(ctx.params.get("limit"))
        after, before = ctx.params.get("after"), ctx.params.get("before")
    order = {mid: index for index, mid in enumerate(reversed(conv.message_ids))}
    return paginate(
        ctx,
        msgs,
        key=lambda m: [order[m.mid]],
        render=lambda m: message_node(ctx, m, sub),
        limit=limit,
        after=after,
        before=before,
        next_path=None if top_level else _edge_path(ctx, conv.id, "messages"),
        next_query=None if top_level else ({"fields": render_fields(sub)} if sub else {}),
    )


def _edge_path(ctx: Ctx, node_id: str, edge: str) -> str:
    prefix = ctx.req.path.split("/")
    keep = [p for p in prefix[:3] if p]
    return "/" + "/".join([*keep, node_id, edge])


def conversation_node(ctx: Ctx, conv: Conversation, sel: dict[str, FieldSel]) -> dict[str, Any]:
    app_id = ctx.app.id if ctx.app else None
    available: dict[str, Callable[[FieldSel], Any]] = {
        "id": lambda _: conv.id,
        "updated_time": lambda _: iso(conv.updated_ms),
        "participants": lambda _: participants(ctx, conv),
        "messages": lambda fsel: conversation_messages(ctx, conv, fsel),
        "message_count": lambda _: len(conv.message_ids),
        "unread_count": lambda _: 0,
        "can_reply": lambda _: sending.window_open(ctx.sb, conv, ctx.sb.now_ms()),
        "is_owner": lambda _: ctx.sb.thread_owner(conv) in (None, app_id),
        "folder": lambda _: conv.folder,
    }
    return _select(sel, "id,updated_time", available, "Conversation")


def customer_profile(
    ctx: Ctx, account: IgAccount, customer: Customer, igsid: str, sel: dict[str, FieldSel]
) -> dict[str, Any]:
    if account.id not in customer.consent:
        raise GraphError(230, "(#230) User consent is required to access user profile")
    available: dict[str, Callable[[FieldSel], Any]] = {
        "id": lambda _: igsid,
        "name": lambda _: customer.name,
        "username": lambda _: customer.username,
        "profile_pic": lambda _: customer.profile_pic,
        "follower_count": lambda _: customer.follower_count,
        "is_user_follow_business": lambda _: account.id in customer.follows,
        "is_business_follow_user": lambda _: account.id in customer.followed_by,
        "is_verified_user": lambda _: customer.is_verified_user,
    }
    return _select(sel, "name,username,profile_pic", available, "InstagramUser")


def media_node(ctx: Ctx, media: Media, sel: dict[str, FieldSel]) -> dict[str, Any]:
    account = ctx.sb.world.accounts[media.ig_id]
    available: dict[str, Callable[[FieldSel], Any]] = {
        "id": lambda _: media.id,
        "caption": lambda _: media.caption,
        "media_type": lambda _: media.media_type,
        "media_product_type": lambda _: media.media_product_type,
        "media_url": lambda _: media.media_url,
        "permalink": lambda _: media.permalink,
        "timestamp": lambda _: iso(media.created_ms),
        "username": lambda _: account.username,
        "comments_count": lambda _: sum(
            1 for c in ctx.sb.world.comments.values() if c.media_id == media.id and not c.deleted
        ),
    }
    return _select(sel, "id", available, "IGMedia")


def comment_node(ctx: Ctx, comment: Comment, sel: dict[str, FieldSel]) -> dict[str, Any]:
    sb = ctx.sb
    account = sb.world.accounts[comment.ig_id]
    customer = sb.world.customers.get(comment.customer_id or "")
    author = (
        {"id": account.id, "username": account.username}
        if customer is None
        else {"id": customer.ig_user_id, "username": customer.username}
    )
    available: dict[str, Callable[[FieldSel], Any]] = {
        "id": lambda _: comment.id,
        "text": lambda _: comment.text,
        "timestamp": lambda _: iso(comment.created_ms),
        "from": lambda _: author,
        "username": lambda _: author["username"],
        "media": lambda _: {"id": comment.media_id},
        "parent_id": lambda _: comment.parent_id,
    }
    return _select(sel, "id,text,timestamp", available, "IGComment")


# -- endpoint handlers ------------------------------------------------------------------------


def get_me(ctx: Ctx) -> dict[str, Any]:
    token = authenticate(ctx)
    count_call(ctx)
    sb = ctx.sb
    sel = parse_fields(ctx.params.get("fields"))
    if ctx.host == "instagram":
        account = sb.world.accounts[token.ig_id or ""]
        ctx.business_id = account.id
        return ig_user_node(ctx, account, sel)
    if token.kind == "page":
        ctx.business_id = token.page_id
        ctx.business_type = "pages"
        return page_node(ctx, sb.world.pages[token.page_id or ""], sel)
    if token.kind == "app":
        app = sb.world.apps[token.app_id]
        return {"id": app.id, "name": app.name}
    user = sb.world.users[token.user_id or ""]
    available: dict[str, Callable[[FieldSel], Any]] = {
        "id": lambda _: user.id,
        "name": lambda _: user.name,
        "first_name": lambda _: user.name.split()[0],
        "last_name": lambda _: user.name.split()[-1],
    }
    return _select(sel, "id,name", available, "User")


def get_permissions(ctx: Ctx) -> dict[str, Any]:
    token = authenticate(ctx)
    return {"data": [{"permission": s, "status": "granted"} for s in token.scopes]}


def get_accounts(ctx: Ctx) -> dict[str, Any]:
    sb = ctx.sb
    if ctx.host != "facebook":
        raise nonexisting_field("accounts", "User")
    token = authenticate(ctx, kinds={"user_short", "user_long", "system_user"})
    count_call(ctx)
    user = sb.world.users[token.user_id or ""]
    pages: list[Page] = []
    if "pages_show_list" in token.scopes:
        targets = token.granular.get("pages_show_list")
        pages = [
            sb.world.pages[pid]
            for pid in user.page_ids
            if pid in sb.world.pages and (not targets or pid in targets)
        ]
    sel = parse_fields(
        ctx.params.get("fields") or "id,name,access_token,category,category_list,tasks"
    )

    def render(page: Page) -> dict[str, Any]:
        wanted = dict(sel)
        want_token = wanted.pop("access_token", None) is not None
        node = page_node(ctx, page, wanted)
        if want_token:
            node["access_token"] = page_token_for(sb, token, page)
        return node

    return paginate(
        ctx,
        pages,
        key=lambda p: [p.id],
        render=render,
        limit=_limit(ctx.params.get("limit")),
        after=ctx.params.get("after"),
        before=ctx.params.get("before"),
    )


def page_token_for(sb: Sandbox, user_token: Token, page: Page) -> str:
    for existing in sb.world.tokens.values():
        if (
            existing.kind == "page"
            and existing.page_id == page.id
            and existing.parent == user_token.token
            and not existing.revoked
        ):
            return existing.token
    value = sb.new_token("EAAGpage")
    sb.world.tokens[value] = Token(
        token=value,
        kind="page",
        app_id=user_token.app_id,
        host="facebook",
        user_id=user_token.user_id,
        page_id=page.id,
        ig_id=page.ig_account_id,
        scopes=list(user_token.scopes),
        issued_ms=sb.now_ms(),
        expires_ms=0 if user_token.kind != "user_short" else user_token.expires_ms,
        data_access_expires_ms=user_token.data_access_expires_ms,
        parent=user_token.token,
    )
    sb.mark_dirty()
    return value


def debug_token(ctx: Ctx) -> dict[str, Any]:
    token = authenticate(ctx)
    count_call(ctx)
    sb = ctx.sb
    raw = ctx.params.get("input_token")
    if not raw:
        raise missing_param("input_token")
    raw = str(raw)
    if "|" in raw:
        app_id = raw.split("|", 1)[0]
        app = sb.world.apps.get(app_id)
        if app is not None and raw == f"{app.id}|{app.secret}":
            return {
                "data": {
                    "app_id": app.id,
                    "type": "APP",
                    "application": app.name,
                    "is_valid": True,
                    "scopes": [],
                }
            }
    target = sb.world.tokens.get(raw)
    if target is None or target.host != "facebook" or target.app_id != token.app_id:
        return {
            "data": {
                "error": {"code": 190, "message": "Invalid OAuth access token."},
                "is_valid": False,
                "scopes": [],
            }
        }
    app = sb.world.apps[target.app_id]
    kinds = {
        "user_short": "USER",
        "user_long": "USER",
        "page": "PAGE",
        "system_user": "SYSTEM_USER",
    }
    data: dict[str, Any] = {
        "app_id": app.id,
        "type": kinds.get(target.kind, "USER"),
        "application": app.name,
        "data_access_expires_at": target.data_access_expires_ms // 1000,
        "expires_at": target.expires_ms // 1000,
        "is_valid": True,
        "issued_at": target.issued_ms // 1000,
        "scopes": list(target.scopes),
        "granular_scopes": [
            {"scope": s, "target_ids": target.granular[s]}
            if target.granular.get(s)
            else {"scope": s}
            for s in target.scopes
        ],
        "user_id": target.user_id,
    }
    if target.kind == "page":
        data["profile_id"] = target.page_id
    problem = token_state_error(sb, target)
    if problem is not None:
        data["is_valid"] = False
        data["error"] = {"code": 190, "message": problem.message, "subcode": problem.subcode}
    return {"data": data}


def _fields_list(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return []


def subscribed_apps(ctx: Ctx, node: str) -> dict[str, Any]:
    sb = ctx.sb
    account: IgAccount | None = None
    page: Page | None = None
    if ctx.host == "facebook":
        if node != "me" and node in sb.world.accounts:
            raise GraphError(
                3, "(#3) Application does not have the capability to make this API call."
            )
        token = authenticate(ctx, kinds={"page"})
        page_id = token.page_id if node == "me" else node
        if page_id != token.page_id or page_id not in sb.world.pages:
            raise no_object(node, ctx.req.method.lower())
        page = sb.world.pages[page_id or ""]
        ctx.business_id, ctx.business_type = page.id, "pages"
        store = page.subscribed_fields
        valid = PAGE_FIELDS
    else:
        account = business_account(ctx, node, edge="subscribed_apps")
        store = account.subscribed_fields
        valid = IG_FIELDS
    count_call(ctx)
    app = ctx.require_app()
    method = ctx.req.method
    if method == "GET":
        fields = store.get(app.id)
        if not fields:
            return {"data": []}
        item: dict[str, Any] = {"subscribed_fields": list(fields)}
        if page is not None:
            item = {
                "category": "Business",
                "link": f"https://sandbox.example.com/apps/{app.id}",
                "name": app.name,
                "id": app.id,
                **item,
            }
        else:
            item = {"id": app.id, "name": app.name, **item}
        return {"data": [item]}
    require_scope(ctx, "metadata")
    if method == "DELETE":
        store.pop(app.id, None)
        sb.mark_dirty()
        return {"success": True}
    fields = _fields_list(ctx.params.get("subscribed_fields"))
    if not fields:
        raise missing_param("subscribed_fields")
    for index, name in enumerate(fields):
        if name not in valid:
            raise invalid_param(
                f"Param subscribed_fields[{index}] must be one of {{{', '.join(sorted(valid))}}} "
                f'- got "{name}".'
            )
    store[app.id] = fields
    sb.mark_dirty()
    return {"success": True}


def app_subscriptions(ctx: Ctx, node: str) -> dict[str, Any] | Callable[[], dict[str, Any]]:
    """`/{app-id}/subscriptions`. POST returns a callable run outside the lock (verification)."""
    sb = ctx.sb
    token = authenticate(ctx, kinds={"app"})
    app = sb.world.apps.get(token.app_id)
    if app is None or node not in (app.id, app.ig_app_id):
        raise no_object(node, ctx.req.method.lower())
    method = ctx.req.method
    if method == "GET":
        return {
            "data": [
                {
                    "object": sub.object,
                    "callback_url": sub.callback_url,
                    "active": sub.active,
                    "fields": [{"name": f, "version": "v25.0"} for f in sub.fields],
                }
                for sub in app.subscriptions.values()
            ]
        }
    obj = str(ctx.params.get("object") or "")
    if not obj:
        raise missing_param("object")
    if method == "DELETE":
        app.subscriptions.pop(obj, None)
        sb.mark_dirty()
        return {"success": True}
    callback = str(ctx.params.get("callback_url") or "")
    verify_token = str(ctx.params.get("verify_token") or "")
    fields = _fields_list(ctx.params.get("fields"))
    if not callback:
        raise missing_param("callback_url")
    if not fields:
        raise missing_param("fields")
    app_id = app.id

    def finish() -> dict[str, Any]:
        from .delivery import verify_callback

        problem = verify_callback(callback, verify_token)
        if problem:
            raise GraphError(
                2200, f"(#2200) callback verification failed: {problem}", type_="OAuthException"
            )
        with sb.lock:
            target = sb.world.apps[app_id]
            target.subscriptions[obj] = AppSubscription(
                object=obj, callback_url=callback, verify_token=verify_token, fields=fields
            )
            sb.world.callback_failing_since.pop(callback, None)
            sb.mark_dirty()
        return {"success": True}

    return finish


def list_conversations(ctx: Ctx, node: str) -> dict[str, Any]:
    sb = ctx.sb
    account = business_account(ctx, node, edge="conversations")
    count_call(ctx)
    require_scope(ctx, "messages")
    check_messaging_allowed(account)
    hit_rate(ctx, "conversations")
    platform = ctx.params.get("platform")
    if ctx.host == "facebook" and platform != "instagram":
        return {"data": []}
    now = sb.now_ms()
    convs = [
        c
        for c in sb.world.conversations.values()
        if c.ig_id == account.id
        and c.message_ids
        and not (c.folder == "requests" and now - c.updated_ms > 30 * DAY_MS)
    ]
    user_id = ctx.params.get("user_id")
    if user_id:
        convs = [c for c in convs if c.igsid == str(user_id)]
    convs.sort(key=lambda c: (-c.updated_ms, c.id))
    sel = parse_fields(ctx.params.get("fields"))
    return paginate(
        ctx,
        convs,
        key=lambda c: [-c.updated_ms, c.id],
        render=lambda c: conversation_node(ctx, c, sel),
        limit=_limit(ctx.params.get("limit")),
        after=ctx.params.get("after"),
        before=ctx.params.get("before"),
    )


def _token_business(ctx: Ctx) -> IgAccount | None:
    token = ctx.token
    if token is None:
        return None
    world = ctx.sb.world
    if token.kind == "page":
        return ctx.sb.account_for_page(token.page_id or "")
    return world.accounts.get(token.ig_id or "")


def get_node(ctx: Ctx, node: str) -> dict[str, Any]:
    sb = ctx.sb
    world = sb.world
    token = authenticate(ctx)
    sel = parse_fields(ctx.params.get("fields"))
    business = _token_business(ctx)
    if business is not None:
        ctx.business_id = business.id
    count_call(ctx)
    if ctx.host == "facebook" and node in world.pages:
        return page_node(ctx, world.pages[node], sel)
    if node in world.accounts:
        account = world.accounts[node]
        if ctx.host == "instagram" and (business is None or business.id != node):
            raise no_object(node)
        return ig_user_node(ctx, account, sel)
    if token.kind == "app":
        app = world.apps[token.app_id]
        if node in (app.id, app.ig_app_id):
            return {"id": app.id, "name": app.name}
        raise no_object(node)
    if business is None:
        raise no_object(node)
    conv = world.conversations.get(node)
    if conv is not None and conv.ig_id == business.id:
        require_scope(ctx, "messages")
        check_messaging_allowed(business)
        return conversation_node(ctx, conv, sel)
    msg = world.messages.get(node)
    if msg is not None and msg.ig_id == business.id:
        require_scope(ctx, "messages")
        conv = world.conversations[msg.conversation_id]
        recent = list(reversed(conv.message_ids))[: world.settings.message_detail_limit]
        if msg.mid not in recent or (msg.deleted and msg.direction == "in"):
            raise GraphError(
                100,
                "(#100) The message has been deleted or is no longer available.",
                type_="GraphMethodException" if ctx.host == "facebook" else None,
            )
        return message_node(ctx, msg, sel)
    customer = sb.customer_by_igsid(business.id, node)
    if customer is not None:
        require_scope(ctx, "messages")
        return customer_profile(ctx, business, customer, node, sel)
    media = world.media.get(node)
    if media is not None and media.ig_id == business.id:
        return media_node(ctx, media, sel)
    comment = world.comments.get(node)
    if comment is not None and comment.ig_id == business.id:
        require_scope(ctx, "comments")
        return comment_node(ctx, comment, sel)
    raise no_object(node)


def get_edge(ctx: Ctx, node: str, edge: str) -> dict[str, Any]:
    """Read-only edges: `/{conversation}/messages`, `/{ig}/media`, `/{media}/comments`."""
    sb = ctx.sb
    world = sb.world
    authenticate(ctx)
    business = _token_business(ctx)
    if business is None:
        raise no_object(node)
    ctx.business_id = business.id
    count_call(ctx)
    if edge == "messages":
        conv = world.conversations.get(node)
        if conv is None or conv.ig_id != business.id:
            raise no_object(node)
        require_scope(ctx, "messages")
        edge_sel = FieldSel("messages", sub=parse_fields(ctx.params.get("fields")))
        return conversation_messages(ctx, conv, edge_sel, top_level=True)
    if edge == "media" and node in ("me", business.id, business.app_scoped_id):
        items = sorted(
            (m for m in world.media.values() if m.ig_id == business.id),
            key=lambda m: (-m.created_ms, m.id),
        )
        sel = parse_fields(ctx.params.get("fields"))
        return paginate(
            ctx,
            items,
            key=lambda m: [-m.created_ms, m.id],
            render=lambda m: media_node(ctx, m, sel),
            limit=_limit(ctx.params.get("limit")),
            after=ctx.params.get("after"),
            before=ctx.params.get("before"),
        )
    if edge in ("comments", "replies"):
        require_scope(ctx, "comments")
        media = world.media.get(node)
        parent = world.comments.get(node)
        if media is not None and media.ig_id == business.id:
            comments = [
                c
                for c in world.comments.values()
                if c.media_id == media.id and c.parent_id is None and not c.deleted
            ]
        elif parent is not None and parent.ig_id == business.id:
            comments = [c for c in world.comments.values() if c.parent_id == parent.id]
        else:
            raise no_object(node)
        comments.sort(key=lambda c: (-c.created_ms, c.id))
        sel = parse_fields(ctx.params.get("fields"))
        return paginate(
            ctx,
            comments,
            key=lambda c: [-c.created_ms, c.id],
            render=lambda c: comment_node(ctx, c, sel),
            limit=_limit(ctx.params.get("limit")),
            after=ctx.params.get("after"),
            before=ctx.params.get("before"),
        )
    raise no_object(f"{node}/{edge}")


def messenger_profile(ctx: Ctx, node: str) -> dict[str, Any]:
    sb = ctx.sb
    account = business_account(ctx, node, edge="messenger_profile")
    count_call(ctx)
    require_scope(ctx, "messages")
    profile = account.messenger_profile
    method = ctx.req.method
    if method == "GET":
        wanted = _fields_list(ctx.params.get("fields")) or list(profile)
        item = {name: profile[name] for name in wanted if name in profile}
        return {"data": [item] if item else []}
    if method == "DELETE":
        names = _fields_list(ctx.params.get("fields"))
        if not names:
            raise missing_param("fields")
        for name in names:
            profile.pop(name, None)
        sb.mark_dirty()
        return {"success": True}
    changed = False
    if "ice_breakers" in ctx.params:
        profile["ice_breakers"] = sending.validate_ice_breakers(ctx.params["ice_breakers"])
        changed = True
    if "persistent_menu" in ctx.params:
        profile["persistent_menu"] = sending.validate_persistent_menu(ctx.params["persistent_menu"])
        changed = True
    for name in ("get_started", "greeting"):
        if name in ctx.params:
            profile[name] = ctx.params[name]
            changed = True
    if not changed:
        raise invalid_param("No messenger profile properties were provided")
    sb.mark_dirty()
    return {"success": True}


def thread_control(ctx: Ctx, node: str, action: str) -> dict[str, Any]:
    sb = ctx.sb
    account = business_account(ctx, node, edge=action)
    count_call(ctx)
    require_scope(ctx, "messages")
    app = ctx.require_app()
    recipient = ctx.params.get("recipient")
    if action == "thread_owner":
        igsid = str(ctx.params.get("recipient") or "")
        if not igsid:
            raise missing_param("recipient")
    else:
        if not isinstance(recipient, dict) or not recipient.get("id"):
            raise missing_param("recipient")
        igsid = str(recipient["id"])
    customer = sb.customer_by_igsid(account.id, igsid)
    if customer is None:
        raise GraphError(100, "(#100) No matching user found", subcode=2534014)
    conv = sb.conversation_for(account, customer)
    owner = sb.thread_owner(conv)
    metadata = ctx.params.get("metadata")
    now = sb.now_ms()
    if action == "thread_owner":
        if owner is None:
            return {"data": []}
        return {
            "data": [
                {
                    "thread_owner": {"app_id": owner},
                    "expiration": conv.owner_expires_ms // 1000,
                }
            ]
        }
    if action == "pass_thread_control":
        target = str(ctx.params.get("target_app_id") or INSTAGRAM_INBOX_APP_ID)
        if owner not in (None, app.id):
            raise GraphError(100, "(#100) The app is not the thread owner", subcode=2534037)
        sending.set_owner(sb, account, conv, target, previous=app.id, metadata=metadata)
    elif action == "take_thread_control":
        if not account.take_thread_allowed and owner not in (None, app.id):
            raise GraphError(
                10,
                "(#10) Conversation routing does not allow this app to take control of the thread.",
                subcode=2018300,
            )
        sending.set_owner(
            sb, account, conv, app.id, previous=owner, metadata=metadata, action="take"
        )
    elif action == "release_thread_control":
        if owner != app.id:
            raise GraphError(100, "(#100) The app is not the thread owner", subcode=2534037)
        conv.owner_app_id = None
        conv.owner_expires_ms = 0
    elif action == "request_thread_control":
        if owner == app.id:
            return {"success": True}
        conv.actions.append(
            {"type": "request_thread_control", "app_id": app.id, "metadata": metadata, "at": now}
        )
    elif action == "extend_thread_control":
        if owner != app.id:
            raise GraphError(100, "(#100) The app is not the thread owner", subcode=2534037)
        try:
            duration = int(ctx.params.get("duration") or 86400)
        except (TypeError, ValueError) as exc:
            raise invalid_param("duration must be an integer") from exc
        if not 0 < duration <= 7 * 86400:
            raise invalid_param("duration must be between 1 and 604800 seconds")
        conv.owner_expires_ms = max(conv.owner_expires_ms, now) + duration * 1000
    sb.mark_dirty()
    return {"success": True}


ROUTING = {
    "pass_thread_control",
    "take_thread_control",
    "release_thread_control",
    "request_thread_control",
    "extend_thread_control",
}


def route(ctx: Ctx, parts: list[str]) -> dict[str, Any] | Callable[[], dict[str, Any]]:
    method = ctx.req.method
    if parts == ["debug_token"] and method == "GET" and ctx.host == "facebook":
        return debug_token(ctx)
    if parts == ["me"] and method == "GET":
        return get_me(ctx)
    if parts == ["me", "accounts"] and method == "GET":
        return get_accounts(ctx)
    if parts == ["me", "permissions"] and method == "GET":
        return get_permissions(ctx)
    if len(parts) == 1 and method == "GET":
        return get_node(ctx, parts[0])
    if len(parts) == 2:
        node, edge = parts
        if edge == "subscriptions":
            return app_subscriptions(ctx, node)
        if edge == "subscribed_apps" and method in ("GET", "POST", "DELETE"):
            return subscribed_apps(ctx, node)
        if edge == "messages" and method == "POST":
            return sending.send(ctx, node)
        if edge == "message_attachments" and method == "POST":
            return sending.upload_attachment(ctx, node)
        if edge == "conversations" and method == "GET":
            return list_conversations(ctx, node)
        if edge == "messenger_profile" and method in ("GET", "POST", "DELETE"):
            return messenger_profile(ctx, node)
        if edge in ROUTING and method == "POST":
            return thread_control(ctx, node, edge)
        if edge == "thread_owner" and method == "GET":
            return thread_control(ctx, node, "thread_owner")
        if method == "GET":
            return get_edge(ctx, node, edge)
    raise GraphError(
        100,
        f"Unknown path components: /{'/'.join(parts)}",
        type_="OAuthException",
    )


def handle(sb: Sandbox, req: Request, host: Host, parts: list[str]) -> Response:
    ctx = Ctx(sb=sb, req=req, host=host, params=req.params())
    try:
        with sb.lock:
            result = route(ctx, parts)
        if callable(result):
            result = result()
        with sb.lock:
            headers = usage_headers(ctx)
        return Response.json(result, headers=headers)
    except GraphError as err:
        with sb.lock:
            headers = usage_headers(ctx)
        headers.update(err.headers)
        headers["WWW-Authenticate"] = (
            'OAuth "Facebook Platform" "invalid_token"'
            if (err.code == 190)
            else headers.get("WWW-Authenticate", "")
        )
        if not headers["WWW-Authenticate"]:
            del headers["WWW-Authenticate"]
        return Response.json(err.envelope(host), status=err.http_status(host), headers=headers)
