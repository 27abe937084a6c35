"""Control API under `/_sandbox/...`: script the world from tests, the demo and the CLI."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import actions
from .actions import ActionError
from .core import iso
from .models import (
    INSTAGRAM_INBOX_APP_ID,
    AppSubscription,
    Customer,
    Fault,
    IgAccount,
    OAuthAuto,
    Page,
    RateRule,
    Token,
    WebhookOptions,
)
from .seed import ALL_WEBHOOK_FIELDS, seed_default_world
from .wire import Request, Response

if TYPE_CHECKING:
    from .service import SandboxService


class ControlError(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _body(req: Request) -> dict[str, Any]:
    data = req.json_body()
    merged: dict[str, Any] = dict(req.query)
    if isinstance(data, dict):
        merged.update(data)
    else:
        merged.update(req.form())
    return merged


def _customer(svc: SandboxService, ref: str) -> Customer:
    customer = svc.sb.find_customer(ref)
    if customer is None:
        raise ControlError(f"unknown customer {ref!r}", 404)
    return customer


def _account(svc: SandboxService, ref: Any) -> IgAccount:
    if not ref:
        raise ControlError("account is required (IG id, Page id or username)")
    account = svc.sb.find_account(str(ref))
    if account is None:
        raise ControlError(f"unknown account {ref!r}", 404)
    return account


def customer_view(svc: SandboxService, customer: Customer) -> dict[str, Any]:
    return {
        "id": customer.id,
        "username": customer.username,
        "name": customer.name,
        "ig_user_id": customer.ig_user_id,
        "igsids": customer.igsids,
        "follows": customer.follows,
        "blocked": customer.blocked,
    }


def account_view(svc: SandboxService, account: IgAccount) -> dict[str, Any]:
    data = account.model_dump(exclude={"messenger_profile"})
    data["token"] = next(
        (
            t.token
            for t in svc.sb.world.tokens.values()
            if t.ig_id == account.id and not t.revoked and t.kind in ("page", "ig_long", "ig_short")
        ),
        None,
    )
    return data


def _account_create(svc: SandboxService, body: dict[str, Any]) -> dict[str, Any]:
    """A new Page-linked business account of the default user, with its Page token; every
    existing customer gets an IGSID for it. Takes ``{"username", "name"}``."""
    from .seed import APP_ID, FB_SCOPES, FB_USER_ID, FB_USER_TOKEN
    from .seed import _account as make_account

    sb = svc.sb
    world = sb.world
    username = str(body.get("username") or "").strip()
    if not username:
        raise ControlError("username is required")
    if any(a.username == username for a in world.accounts.values()):
        raise ControlError(f"account {username!r} exists", 409)
    name = str(body.get("name") or username.replace(".", " ").title())
    seq = sb.seq("account")
    ig_id = str(17_841_400_000_000_000 + seq)
    page_id = str(200_000_000_000_000 + seq)
    token = f"EAAGsbxPage{page_id}"
    world.pages[page_id] = Page(
        id=page_id, name=name, ig_account_id=ig_id, owner_user_id=FB_USER_ID
    )
    account = make_account(seq, ig_id, username, name, login="facebook", page_id=page_id)
    world.accounts[ig_id] = account
    owner = world.users.get(FB_USER_ID)
    if owner is not None:
        owner.page_ids.append(page_id)
    now = sb.now_ms()
    world.tokens[token] = Token(
        token=token,
        kind="page",
        app_id=APP_ID,
        host="facebook",
        user_id=FB_USER_ID,
        page_id=page_id,
        ig_id=ig_id,
        scopes=list(FB_SCOPES),
        issued_ms=now,
        expires_ms=0,
        data_access_expires_ms=now + 89 * 86_400_000,
        parent=FB_USER_TOKEN,
    )
    for customer in world.customers.values():
        sb.igsid_for(customer, account)
    sb.mark_dirty()
    return {**account_view(svc, account), "page_id": page_id, "page_token": token}


def world_view(svc: SandboxService) -> dict[str, Any]:
    world = svc.sb.world
    return {
        "now": iso(svc.sb.now_ms()),
        "now_ms": svc.sb.now_ms(),
        "urls": svc.urls(),
        "apps": [app.model_dump() for app in world.apps.values()],
        "users": [user.model_dump() for user in world.users.values()],
        "pages": [
            {
                **page.model_dump(),
                "tokens": [t.token for t in world.tokens.values() if t.page_id == page.id],
            }
            for page in world.pages.values()
        ],
        "accounts": [account_view(svc, a) for a in world.accounts.values()],
        "customers": [customer_view(svc, c) for c in world.customers.values()],
        "media": [m.model_dump() for m in world.media.values()],
        "comments": [c.model_dump() for c in world.comments.values()],
        "webhook_options": world.webhook_options.model_dump(),
        "pending_events": len(world.events),
        "pending_deliveries": len(world.deliveries),
    }


def received(svc: SandboxService, customer: Customer, account_ref: Any) -> dict[str, Any]:
    sb = svc.sb
    accounts = (
        [_account(svc, account_ref)]
        if account_ref
        else [sb.world.accounts[a] for a in customer.igsids if a in sb.world.accounts]
    )
    items: list[dict[str, Any]] = []
    for account in accounts:
        igsid = customer.igsids.get(account.id)
        conv = sb.world.conversations.get(sb.new_conversation_id(account.id, igsid or ""))
        if conv is None:
            continue
        for mid in conv.message_ids:
            msg = sb.world.messages[mid]
            if msg.direction != "out":
                continue
            items.append(
                {
                    "account": account.id,
                    "type": "message",
                    "mid": msg.mid,
                    "kind": msg.kind,
                    "text": msg.text,
                    "attachments": msg.attachments,
                    "tag": msg.tag,
                    "comment_id": msg.comment_id,
                    "reply_to": msg.reply_to,
                    "app_id": msg.app_id,
                    "quick_replies": ((msg.body or {}).get("message") or {}).get("quick_replies"),
                    "created_ms": msg.created_ms,
                    "created_time": iso(msg.created_ms),
                }
            )
        for action in conv.actions:
            items.append({"account": account.id, **action, "created_ms": action.get("at")})
    items.sort(key=lambda i: i.get("created_ms") or 0)
    return {"customer": customer.username, "received": items}


def conversations_view(svc: SandboxService, account_ref: Any) -> dict[str, Any]:
    sb = svc.sb
    convs = list(sb.world.conversations.values())
    if account_ref:
        account = _account(svc, account_ref)
        convs = [c for c in convs if c.ig_id == account.id]
    out = []
    for conv in sorted(convs, key=lambda c: -c.updated_ms):
        out.append(
            {
                "id": conv.id,
                "account": conv.ig_id,
                "igsid": conv.igsid,
                "customer": sb.world.customers[conv.customer_id].username,
                "updated_time": iso(conv.updated_ms),
                "last_inbound_ms": conv.last_inbound_ms,
                "folder": conv.folder,
                "thread_owner": sb.thread_owner(conv),
                "messages": [
                    {
                        "mid": m.mid,
                        "direction": m.direction,
                        "kind": m.kind,
                        "text": m.text,
                        "deleted": m.deleted,
                        "created_time": iso(m.created_ms),
                    }
                    for m in (sb.world.messages[mid] for mid in conv.message_ids)
                ],
            }
        )
    return {"data": out}


CUSTOMER_ACTIONS: dict[
    str, Callable[[SandboxService, IgAccount | None, Customer, dict[str, Any]], dict[str, Any]]
] = {}


def _action(name: str) -> Callable[[Callable[..., dict[str, Any]]], Callable[..., dict[str, Any]]]:
    def register(fn: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
        CUSTOMER_ACTIONS[name] = fn
        return fn

    return register


@_action("send")
def _send(svc: SandboxService, account: IgAccount, customer: Customer, body: dict[str, Any]):
    msg = actions.customer_send(svc.sb, account, customer, body)
    return {"mid": msg.mid, "igsid": msg.igsid, "conversation_id": msg.conversation_id}


@_action("react")
def _react(svc: SandboxService, account: IgAccount, customer: Customer, body: dict[str, Any]):
    return actions.customer_react(svc.sb, account, customer, body, react=True)


@_action("unreact")
def _unreact(svc: SandboxService, account: IgAccount, customer: Customer, body: dict[str, Any]):
    return actions.customer_react(svc.sb, account, customer, body, react=False)


@_action("unsend")
def _unsend(svc: SandboxService, account: IgAccount, customer: Customer, body: dict[str, Any]):
    return actions.customer_unsend(svc.sb, account, customer, body)


@_action("edit")
def _edit(svc: SandboxService, account: IgAccount, customer: Customer, body: dict[str, Any]):
    return actions.customer_edit(svc.sb, account, customer, body)


@_action("postback")
def _postback(svc: SandboxService, account: IgAccount, customer: Customer, body: dict[str, Any]):
    return actions.customer_postback(svc.sb, account, customer, body)


@_action("referral")
def _referral(svc: SandboxService, account: IgAccount, customer: Customer, body: dict[str, Any]):
    return actions.customer_referral(svc.sb, account, customer, body)


@_action("read")
def _read(svc: SandboxService, account: IgAccount, customer: Customer, body: dict[str, Any]):
    return actions.customer_read(svc.sb, account, customer, body)


@_action("block")
def _block(svc: SandboxService, account: IgAccount, customer: Customer, body: dict[str, Any]):
    return actions.customer_block(svc.sb, account, customer, blocked=True)


@_action("unblock")
def _unblock(svc: SandboxService, account: IgAccount, customer: Customer, body: dict[str, Any]):
    return actions.customer_block(svc.sb, account, customer, blocked=False)


@_action("follow")
def _follow(svc: SandboxService, account: IgAccount, customer: Customer, body: dict[str, Any]):
    return actions.customer_follow(svc.sb, account, customer, follows=True)


@_action("unfollow")
def _unfollow(svc: SandboxService, account: IgAccount, customer: Customer, body: dict[str, Any]):
    return actions.customer_follow(svc.sb, account, customer, follows=False)


def _comment(svc: SandboxService, customer: Customer, body: dict[str, Any]) -> dict[str, Any]:
    media_id = body.get("media_id")
    if not media_id:
        raise ControlError("media_id is required")
    comment = actions.comment_create(
        svc.sb,
        customer,
        str(media_id),
        text=str(body.get("text") or "Nice!"),
        parent_id=body.get("parent_id"),
        live=bool(body.get("live")),
    )
    return {"comment_id": comment.id, "media_id": comment.media_id, "ig_id": comment.ig_id}


def _update_model(model: Any, body: dict[str, Any], allowed: set[str]) -> None:
    for key, value in body.items():
        if key in allowed:
            setattr(model, key, value)


def handle(svc: SandboxService, req: Request, parts: list[str]) -> Response:
    try:
        data = _dispatch(svc, req, parts)
    except ControlError as err:
        return Response.json({"error": str(err)}, status=err.status)
    except ActionError as err:
        return Response.json({"error": str(err)}, status=400)
    except (KeyError, TypeError, ValueError) as err:
        return Response.json({"error": f"bad request: {err!r}"}, status=400)
    return Response.json(data)


def _dispatch(svc: SandboxService, req: Request, parts: list[str]) -> Any:
    sb = svc.sb
    method = req.method
    body = _body(req)
    head = parts[0] if parts else ""
    if head in ("", "health"):
        return {"ok": True, "urls": svc.urls(), "now_ms": sb.now_ms()}
    if head == "webhooks" and parts[1:] == ["flush"]:
        return svc.dispatcher.flush(force=bool(body.get("force", True)))
    if head == "webhooks" and parts[1:] == ["config"] and method == "POST":
        return _webhook_config(svc, body)
    with sb.lock:
        if head == "world" or head == "state":
            return world_view(svc)
        if head in ("reset", "seed") and method == "POST":
            if head == "seed" or body.get("seed", True):
                seed_default_world(sb)
            else:
                from .models import World

                sb.world = World(clock_offset_s=sb.world.clock_offset_s)
                sb.rates.clear()
            svc.dispatcher.reseed(sb.world.webhook_options.seed)
            sb.mark_dirty()
            return {"ok": True}
        if head == "clock":
            if parts[1:] == ["advance"] and method == "POST":
                seconds = float(body.get("seconds", 0))
                seconds += float(body.get("minutes", 0)) * 60
                seconds += float(body.get("hours", 0)) * 3600
                seconds += float(body.get("days", 0)) * 86400
                now = sb.advance(seconds)
                return {"now_ms": now, "now": iso(now), "offset_s": sb.world.clock_offset_s}
            return {"now_ms": sb.now_ms(), "now": iso(sb.now_ms())}
        if head == "customers":
            if len(parts) == 1:
                if method == "POST":
                    customer = actions.customer_create(
                        sb,
                        username=str(body["username"]),
                        name=body.get("name"),
                        follows=[_account(svc, a).id for a in body.get("follows", [])],
                    )
                    return customer_view(svc, customer)
                return {"data": [customer_view(svc, c) for c in sb.world.customers.values()]}
            customer = _customer(svc, parts[1])
            if len(parts) == 2:
                return customer_view(svc, customer)
            action = parts[2]
            if action == "received":
                return received(svc, customer, body.get("account"))
            if action == "comment" and method == "POST":
                return _comment(svc, customer, body)
            handler = CUSTOMER_ACTIONS.get(action)
            if handler is None or method != "POST":
                raise ControlError(f"unknown customer action {action!r}", 404)
            return handler(svc, _account(svc, body.get("account")), customer, body)
        if head == "conversations":
            return conversations_view(svc, body.get("account"))
        if head == "accounts":
            if len(parts) == 1:
                if method == "POST":
                    return _account_create(svc, body)
                return {"data": [account_view(svc, a) for a in sb.world.accounts.values()]}
            account = _account(svc, parts[1])
            if method in ("POST", "PATCH"):
                _update_model(
                    account,
                    body,
                    {"eligible", "message_access", "take_thread_allowed", "followers_count"},
                )
                sb.mark_dirty()
            return account_view(svc, account)
        if head == "apps":
            if len(parts) == 1:
                return {"data": [a.model_dump() for a in sb.world.apps.values()]}
            app = sb.world.apps.get(parts[1])
            if app is None:
                raise ControlError("unknown app", 404)
            if method in ("POST", "PATCH"):
                _update_model(
                    app, body, {"human_agent", "require_appsecret_proof", "redirect_uris"}
                )
                sb.mark_dirty()
            return app.model_dump()
        if head == "tokens":
            return _tokens(svc, req, parts, body)
        if head == "faults":
            if method == "POST":
                fault = Fault(
                    id=f"fault_{sb.seq('fault')}",
                    kind=body.get("kind", "5xx"),
                    remaining=int(body.get("count", 1)),
                    status=body.get("status"),
                    code=body.get("code"),
                    subcode=body.get("subcode"),
                    message=body.get("message"),
                    match=body.get("match"),
                    host=body.get("host"),
                    delay=min(float(body.get("delay", 10.0)), 120.0),
                    every=max(1, int(body.get("every", 1))),
                )
                sb.world.faults.append(fault)
                sb.mark_dirty()
                return fault.model_dump()
            if method == "DELETE":
                sb.world.faults.clear()
                sb.mark_dirty()
                return {"ok": True}
            return {"data": [f.model_dump() for f in sb.world.faults]}
        if head == "rate_limits":
            if method == "POST":
                for category, rule in body.items():
                    if category in sb.world.rate_rules and isinstance(rule, dict):
                        current = sb.world.rate_rules[category]
                        sb.world.rate_rules[category] = RateRule(
                            limit=int(rule.get("limit", current.limit)),
                            window_s=float(rule.get("window_s", current.window_s)),
                        )
                if body.get("reset_counters"):
                    sb.rates.clear()
                sb.mark_dirty()
            return {k: v.model_dump() for k, v in sb.world.rate_rules.items()}
        if head == "settings":
            if method == "POST":
                merged = {**sb.world.settings.model_dump(), **body}
                sb.world.settings = type(sb.world.settings).model_validate(merged)
                sb.mark_dirty()
            return sb.world.settings.model_dump()
        if head == "webhooks":
            sub = parts[1] if len(parts) > 1 else ""
            if sub == "options":
                if method == "POST":
                    merged = {**sb.world.webhook_options.model_dump(), **body}
                    sb.world.webhook_options = WebhookOptions.model_validate(merged)
                    svc.dispatcher.reseed(sb.world.webhook_options.seed)
                    sb.mark_dirty()
                return sb.world.webhook_options.model_dump()
            if sub == "log":
                limit = int(body.get("limit", 100))
                return {"data": sb.world.delivery_log[-limit:]}
            if sub == "pending":
                return {
                    "events": [e.model_dump() for e in sb.world.events],
                    "deliveries": [d.model_dump() for d in sb.world.deliveries],
                }
            if sub == "test" and method == "POST":
                svc.dispatcher.send_test(
                    str(body.get("app_id") or sb.default_app_id()),
                    shape=str(body.get("shape", "changes")),
                )
                return {"ok": True}
            if sub == "clear" and method == "POST":
                sb.world.events.clear()
                sb.world.deliveries.clear()
                sb.world.delivery_log.clear()
                sb.mark_dirty()
                return {"ok": True}
        if head == "oauth" and parts[1:] == ["auto"]:
            if method == "POST":
                sb.world.oauth_auto = OAuthAuto.model_validate(
                    {k: v for k, v in body.items() if k in OAuthAuto.model_fields}
                )
                sb.mark_dirty()
            return sb.world.oauth_auto.model_dump()
        if head == "threads" and parts[1:] == ["owner"] and method == "POST":
            account = _account(svc, body.get("account"))
            customer = _customer(svc, str(body.get("customer")))
            conv = sb.conversation_for(account, customer)
            owner = body.get("app_id", INSTAGRAM_INBOX_APP_ID)
            previous = sb.thread_owner(conv)
            if owner is None:
                conv.owner_app_id = None
                conv.owner_expires_ms = 0
            else:
                from .sending import set_owner

                set_owner(
                    sb,
                    account,
                    conv,
                    str(owner),
                    previous=previous,
                    metadata=body.get("metadata"),
                    action="take",
                )
            sb.mark_dirty()
            return {"conversation_id": conv.id, "thread_owner": conv.owner_app_id}
    raise ControlError(f"unknown control endpoint /_sandbox/{'/'.join(parts)}", 404)


def _tokens(svc: SandboxService, req: Request, parts: list[str], body: dict[str, Any]) -> Any:
    sb = svc.sb
    if len(parts) == 1:
        return {"data": [t.model_dump() for t in sb.world.tokens.values()]}
    op = parts[1]
    raw = str(body.get("token") or "")
    token = sb.world.tokens.get(raw)
    if token is None:
        raise ControlError("unknown token", 404)
    if op == "revoke":
        subcode = int(body.get("subcode", 460))
        targets = [token]
        if body.get("cascade", True):
            targets += [t for t in sb.world.tokens.values() if t.parent == token.token]
        for target in targets:
            target.revoked = True
            target.revoked_subcode = subcode
        sb.mark_dirty()
        return {"revoked": [t.token for t in targets]}
    if op == "expire":
        token.expires_ms = sb.now_ms() - 1000
        sb.mark_dirty()
        return {"expired": token.token}
    if op == "restore":
        token.revoked = False
        token.revoked_subcode = None
        sb.mark_dirty()
        return {"restored": token.token}
    raise ControlError(f"unknown token operation {op!r}", 404)


def _webhook_config(svc: SandboxService, body: dict[str, Any]) -> dict[str, Any]:
    """Set the app-level callback (optionally verifying it) and subscribe accounts."""
    from .delivery import verify_callback

    sb = svc.sb
    callback = str(body.get("callback_url") or "")
    if not callback:
        raise ControlError("callback_url is required")
    verify_token = str(body.get("verify_token") or "sandbox-verify-token")
    if body.get("verify"):
        problem = verify_callback(callback, verify_token)
        if problem:
            raise ControlError(f"callback verification failed: {problem}")
    with sb.lock:
        app_id = str(body.get("app_id") or sb.default_app_id())
        app = sb.world.apps[app_id]
        fields = body.get("fields") or list(ALL_WEBHOOK_FIELDS)
        app.subscriptions["instagram"] = AppSubscription(
            callback_url=callback, verify_token=verify_token, fields=list(fields)
        )
        sb.world.callback_failing_since.pop(callback, None)
        subscribed: list[str] = []
        if body.get("subscribe_all", True):
            for account in sb.world.accounts.values():
                if account.login == "instagram":
                    account.subscribed_fields[app.id] = list(fields)
                    subscribed.append(account.id)
                elif account.page_id in sb.world.pages:
                    sb.world.pages[account.page_id].subscribed_fields[app.id] = [
                        "messages",
                        "messaging_postbacks",
                        "message_reactions",
                        "messaging_handovers",
                        "standby",
                    ]
                    subscribed.append(account.id)
        sb.mark_dirty()
        return {
            "app_id": app.id,
            "callback_url": callback,
            "fields": fields,
            "subscribed": subscribed,
        }
