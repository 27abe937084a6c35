"""Command line: `python -m integrations.meta.sandbox serve|<control command> ...`."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

DEFAULT_URL = os.environ.get("META_SANDBOX_URL", "http://127.0.0.1:8765")
CUSTOMER_ACTIONS = (
    "react",
    "unreact",
    "unsend",
    "edit",
    "postback",
    "referral",
    "read",
    "block",
    "unblock",
    "follow",
    "unfollow",
)


def _bool(value: str) -> bool:
    return value.lower() in ("1", "true", "yes", "on")


def _extra(pairs: Sequence[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, _, value = pair.partition("=")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def call(base: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    url = f"{base.rstrip('/')}/_sandbox/{path.lstrip('/')}"
    if not url.startswith(("http://", "https://")):
        raise SystemExit(f"bad sandbox URL {base!r}")
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(  # noqa: S310
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")
        raise SystemExit(f"sandbox answered {exc.code}: {detail}") from exc
    except urllib.error.URLError as exc:
        raise SystemExit(f"cannot reach the sandbox at {base}: {exc.reason}") from exc


def serve(args: argparse.Namespace) -> int:
    from .service import SandboxService

    service = SandboxService(
        args.state,
        port=args.port,
        seed=not args.no_seed,
        auto_deliver=not args.no_deliver,
    )
    service.start()
    print(json.dumps({"serving": service.urls(), "state": args.state}), flush=True)
    stop = threading.Event()

    def _stop(*_: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    while not stop.wait(0.5):
        pass
    service.stop()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m integrations.meta.sandbox")
    parser.add_argument(
        "--sandbox-url", dest="sandbox_url", default=DEFAULT_URL, help="sandbox base URL"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the sandbox server")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--state", default=None, help="SQLite file for persisted state")
    p.add_argument("--no-seed", action="store_true", help="start with an empty world")
    p.add_argument("--no-deliver", action="store_true", help="no background webhook delivery")

    sub.add_parser("world", help="show apps, users, pages, accounts, customers, tokens")
    p = sub.add_parser("reset", help="reset to the default world (or empty with --empty)")
    p.add_argument("--empty", action="store_true")
    sub.add_parser("seed", help="reset to the default world")

    p = sub.add_parser("customer-create", help="create a customer")
    p.add_argument("username")
    p.add_argument("--name")
    p.add_argument("--follows", nargs="*", default=[])

    p = sub.add_parser("send", help="a customer sends a DM to an account")
    p.add_argument("customer")
    p.add_argument("account")
    p.add_argument(
        "--kind",
        default="text",
        help="text|image|video|audio|file|story_mention|story_reply|post_share|reel|"
        "quick_reply|ad_referral|ephemeral|unsupported",
    )
    p.add_argument("--text")
    p.add_argument("--url")
    p.add_argument("--payload")
    p.add_argument("--set", nargs="*", metavar="KEY=VALUE")

    for name in CUSTOMER_ACTIONS:
        p = sub.add_parser(name, help=f"a customer does: {name}")
        p.add_argument("customer")
        p.add_argument("account")
        p.add_argument("--mid")
        p.add_argument("--text")
        p.add_argument("--set", nargs="*", metavar="KEY=VALUE")

    p = sub.add_parser("comment", help="a customer comments on a post")
    p.add_argument("customer")
    p.add_argument("media_id")
    p.add_argument("--text", default="How much is it?")
    p.add_argument("--parent-id")

    p = sub.add_parser("received", help="what a customer received from businesses")
    p.add_argument("customer")
    p.add_argument("--account")

    p = sub.add_parser("conversations", help="conversations with messages")
    p.add_argument("--account")

    for name in ("revoke", "expire", "restore"):
        p = sub.add_parser(name, help=f"{name} a token")
        p.add_argument("token")
        if name == "revoke":
            p.add_argument("--subcode", type=int, default=460)

    p = sub.add_parser("fault", help="inject faults into the next N Graph calls")
    p.add_argument("kind", choices=["5xx", "timeout", "rate_limit", "error"])
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--code", type=int)
    p.add_argument("--subcode", type=int)
    p.add_argument("--status", type=int)
    p.add_argument("--match")
    p.add_argument("--host", choices=["facebook", "instagram"])
    p.add_argument("--delay", type=float, default=10.0)
    sub.add_parser("faults-clear", help="remove all pending faults")

    p = sub.add_parser("advance", help="advance the sandbox clock")
    for unit in ("seconds", "minutes", "hours", "days"):
        p.add_argument(f"--{unit}", type=float, default=0)

    p = sub.add_parser("webhooks", help="set the app's webhook callback and subscribe accounts")
    p.add_argument("callback_url")
    p.add_argument("--verify-token", default="sandbox-verify-token")
    p.add_argument("--verify", action="store_true", help="do the hub.challenge GET first")
    p.add_argument("--fields", nargs="*")
    p.add_argument("--no-subscribe", action="store_true")

    p = sub.add_parser("webhook-options", help="duplicates, reordering, retries")
    p.add_argument("--set", nargs="*", metavar="KEY=VALUE", required=True)
    sub.add_parser("flush", help="deliver queued webhooks now")
    p = sub.add_parser("log", help="recent webhook delivery attempts")
    p.add_argument("--limit", type=int, default=20)

    p = sub.add_parser("account", help="show or change an IG account's flags")
    p.add_argument("account")
    p.add_argument("--set", nargs="*", metavar="KEY=VALUE")
    p = sub.add_parser("app", help="show or change an app's flags")
    p.add_argument("app_id", nargs="?", default="880000000000001")
    p.add_argument("--set", nargs="*", metavar="KEY=VALUE")

    p = sub.add_parser("oauth-auto", help="make dialogs approve or deny automatically")
    p.add_argument("mode", choices=["approve", "deny", "off"])
    p.add_argument("--scopes", nargs="*")
    p.add_argument("--targets", nargs="*")

    p = sub.add_parser("rate-limit", help="set a rate rule")
    p.add_argument("category")
    p.add_argument("limit", type=int)
    p.add_argument("window_s", type=float, nargs="?")

    p = sub.add_parser("call", help="raw control call")
    p.add_argument("method")
    p.add_argument("path")
    p.add_argument("body", nargs="?")
    return parser


def run(args: argparse.Namespace) -> Any:
    url = args.sandbox_url
    cmd = args.command
    if cmd == "world":
        return call(url, "GET", "world")
    if cmd == "reset":
        return call(url, "POST", "reset", {"seed": not args.empty})
    if cmd == "seed":
        return call(url, "POST", "seed", {})
    if cmd == "customer-create":
        body = {"username": args.username, "name": args.name, "follows": args.follows}
        return call(url, "POST", "customers", body)
    if cmd == "send":
        body = {"account": args.account, "kind": args.kind, **_extra(args.set)}
        for key in ("text", "url", "payload"):
            if getattr(args, key) is not None:
                body[key] = getattr(args, key)
        return call(url, "POST", f"customers/{args.customer}/send", body)
    if cmd in CUSTOMER_ACTIONS:
        body = {"account": args.account, **_extra(args.set)}
        if args.mid:
            body["mid"] = args.mid
        if args.text:
            body["text"] = args.text
        return call(url, "POST", f"customers/{args.customer}/{cmd}", body)
    if cmd == "comment":
        body = {"media_id": args.media_id, "text": args.text, "parent_id": args.parent_id}
        return call(url, "POST", f"customers/{args.customer}/comment", body)
    if cmd == "received":
        query = f"?account={args.account}" if args.account else ""
        return call(url, "GET", f"customers/{args.customer}/received{query}")
    if cmd == "conversations":
        query = f"?account={args.account}" if args.account else ""
        return call(url, "GET", f"conversations{query}")
    if cmd in ("revoke", "expire", "restore"):
        body = {"token": args.token}
        if cmd == "revoke":
            body["subcode"] = args.subcode
        return call(url, "POST", f"tokens/{cmd}", body)
    if cmd == "fault":
        body = {
            k: v
            for k, v in {
                "kind": args.kind,
                "count": args.count,
                "code": args.code,
                "subcode": args.subcode,
                "status": args.status,
                "match": args.match,
                "host": args.host,
                "delay": args.delay,
            }.items()
            if v is not None
        }
        return call(url, "POST", "faults", body)
    if cmd == "faults-clear":
        return call(url, "DELETE", "faults")
    if cmd == "advance":
        body = {u: getattr(args, u) for u in ("seconds", "minutes", "hours", "days")}
        return call(url, "POST", "clock/advance", body)
    if cmd == "webhooks":
        body = {
            "callback_url": args.callback_url,
            "verify_token": args.verify_token,
            "verify": args.verify,
            "subscribe_all": not args.no_subscribe,
        }
        if args.fields:
            body["fields"] = args.fields
        return call(url, "POST", "webhooks/config", body)
    if cmd == "webhook-options":
        return call(url, "POST", "webhooks/options", _extra(args.set))
    if cmd == "flush":
        return call(url, "POST", "webhooks/flush", {"force": True})
    if cmd == "log":
        return call(url, "GET", f"webhooks/log?limit={args.limit}")
    if cmd == "account":
        method = "POST" if args.set else "GET"
        return call(url, method, f"accounts/{args.account}", _extra(args.set) or None)
    if cmd == "app":
        method = "POST" if args.set else "GET"
        return call(url, method, f"apps/{args.app_id}", _extra(args.set) or None)
    if cmd == "oauth-auto":
        body = {
            "mode": None if args.mode == "off" else args.mode,
            "scopes": args.scopes,
            "targets": args.targets,
        }
        return call(url, "POST", "oauth/auto", body)
    if cmd == "rate-limit":
        rule: dict[str, Any] = {"limit": args.limit}
        if args.window_s is not None:
            rule["window_s"] = args.window_s
        return call(url, "POST", "rate_limits", {args.category: rule, "reset_counters": True})
    if cmd == "call":
        return call(
            url, args.method.upper(), args.path, json.loads(args.body) if args.body else None
        )
    raise SystemExit(f"unknown command {cmd}")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return serve(args)
    result = run(args)
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
