"""OAuth: the Facebook and Instagram consent dialogs (HTML) and the token endpoints."""

from __future__ import annotations

import html
import secrets
from typing import Any
from urllib.parse import urlencode, urlsplit

from .core import HOUR_MS, LONG_LIVED_S, Sandbox
from .errors import FlatOAuthError, GraphError, invalid_param, missing_param
from .graph import token_state_error
from .models import App, AuthCode, Host, Token
from .seed import FB_SCOPES, IG_SCOPES
from .wire import Request, Response

FB_CODE_TTL_MS = 10 * 60_000
IG_CODE_TTL_MS = HOUR_MS
SHORT_USER_TTL_S = 3600
OLD_IG_SCOPES = {
    "business_basic": "instagram_business_basic",
    "business_manage_messages": "instagram_business_manage_messages",
    "business_manage_comments": "instagram_business_manage_comments",
    "business_content_publish": "instagram_business_content_publish",
    "business_manage_insights": "instagram_business_manage_insights",
}

PAGE_STYLE = """
body{font-family:system-ui,sans-serif;background:#f0f2f5;margin:0;padding:2rem}
.card{background:#fff;max-width:34rem;margin:auto;border-radius:8px;padding:1.5rem;
box-shadow:0 1px 3px rgba(0,0,0,.2)}h1{font-size:1.3rem}fieldset{border:1px solid #ddd;
border-radius:6px;margin:1rem 0}label{display:block;margin:.3rem 0}
.actions{display:flex;gap:.5rem;justify-content:flex-end}
button{padding:.5rem 1.2rem;border-radius:6px;border:0;font-size:1rem;cursor:pointer}
button.allow{background:#1877f2;color:#fff}button.deny{background:#e4e6eb}
.note{color:#65676b;font-size:.85rem}
"""


def _split_scopes(value: Any) -> list[str]:
    if isinstance(value, list):
        items = [str(v) for v in value]
    else:
        items = str(value or "").replace(" ", ",").split(",")
    return [s.strip() for s in items if s.strip()]


def _add_query(url: str, params: dict[str, str], fragment: str = "") -> str:
    sep = "&" if urlsplit(url).query else "?"
    base = url.split("#", 1)[0]
    return f"{base}{sep}{urlencode(params)}{fragment}"


def _redirect_allowed(app: App, redirect_uri: str) -> bool:
    if not redirect_uri or urlsplit(redirect_uri).scheme not in ("http", "https"):
        return False
    return not app.redirect_uris or redirect_uri in app.redirect_uris


def _error_page(title: str, detail: str, status: int = 400) -> Response:
    body = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{PAGE_STYLE}</style></head><body><div class='card'><h1>{html.escape(title)}</h1>"
        f"<p>{html.escape(detail)}</p></div></body></html>"
    )
    return Response.html(body, status=status)


def _hidden(params: dict[str, str]) -> str:
    return "".join(
        f"<input type='hidden' name='{html.escape(k)}' value='{html.escape(v)}'>"
        for k, v in params.items()
    )


def _find_app(sb: Sandbox, client_id: str, host: Host) -> App | None:
    for app in sb.world.apps.values():
        if (host == "facebook" and app.id == client_id) or (
            host == "instagram" and app.ig_app_id == client_id
        ):
            return app
    return None


def _new_code(
    sb: Sandbox,
    *,
    host: Host,
    app: App,
    redirect_uri: str,
    scopes: list[str],
    granular: dict[str, list[str]],
    user_id: str | None = None,
    ig_id: str | None = None,
) -> str:
    code = "AQ" + secrets.token_urlsafe(48)
    sb.world.codes[code] = AuthCode(
        code=code,
        host=host,
        app_id=app.id,
        redirect_uri=redirect_uri,
        user_id=user_id,
        ig_id=ig_id,
        scopes=scopes,
        granular=granular,
        created_ms=sb.now_ms(),
        ttl_ms=FB_CODE_TTL_MS if host == "facebook" else IG_CODE_TTL_MS,
    )
    sb.mark_dirty()
    return code


# -- Facebook Login dialog -------------------------------------------------------------------


def facebook_dialog(sb: Sandbox, req: Request) -> Response:
    params = {**req.query, **req.form()}
    with sb.lock:
        app = _find_app(sb, params.get("client_id", ""), "facebook")
        if app is None:
            return _error_page(
                "Invalid App ID", "The provided app ID does not look like a valid app ID."
            )
        redirect_uri = params.get("redirect_uri", "")
        if not _redirect_allowed(app, redirect_uri):
            return _error_page(
                "URL blocked",
                "This redirect failed because the redirect URI is not whitelisted in the app's "
                "Client OAuth Settings.",
            )
        asked = params.get("requested_scope", params.get("scope"))
        requested = _split_scopes(asked) or list(FB_SCOPES)
        state = params.get("state", "")
        auto = sb.world.oauth_auto
        mode = params.get("sandbox_auto") or (auto.mode if req.method == "GET" else None)
        if req.method == "POST" or mode:
            if req.method == "POST":
                action = params.get("action", "deny")
                form = req.form()
                chosen_scopes = _multi(req, "scope")
                targets = _multi(req, "page")
                user_id = form.get("user_id")
            else:
                action = "allow" if mode == "approve" else "deny"
                chosen_scopes = _split_scopes(params.get("sandbox_scopes")) or (
                    auto.scopes if auto.scopes is not None else requested
                )
                targets = _split_scopes(params.get("sandbox_targets")) or (
                    auto.targets if auto.targets is not None else []
                )
                user_id = params.get("sandbox_user") or auto.user_id
            if action != "allow":
                return Response.redirect(
                    _add_query(
                        redirect_uri,
                        {
                            "error": "access_denied",
                            "error_code": "200",
                            "error_description": "Permissions error",
                            "error_reason": "user_denied",
                            "state": state,
                        },
                        "#_=_",
                    )
                )
            user = sb.world.users.get(user_id or "") or next(iter(sb.world.users.values()))
            pages = [p for p in user.page_ids if not targets or p in targets]
            scopes = [s for s in requested if s in chosen_scopes]
            granular: dict[str, list[str]] = {}
            ig_ids = [ig for p in pages if (ig := sb.world.pages[p].ig_account_id) is not None]
            for scope in scopes:
                if scope.startswith("pages_"):
                    granular[scope] = list(pages)
                elif scope.startswith("instagram_"):
                    granular[scope] = list(ig_ids)
                elif scope == "business_management":
                    granular[scope] = [*pages, *ig_ids]
            code = _new_code(
                sb,
                host="facebook",
                app=app,
                redirect_uri=redirect_uri,
                scopes=scopes,
                granular=granular,
                user_id=user.id,
            )
            return Response.redirect(
                _add_query(redirect_uri, {"code": code, "state": state}, "#_=_")
            )
        users = list(sb.world.users.values())
        page_rows = []
        for user in users:
            for page_id in user.page_ids:
                page = sb.world.pages[page_id]
                account = sb.account_for_page(page_id)
                linked = f" &middot; Instagram @{html.escape(account.username)}" if account else ""
                page_rows.append(
                    f"<label><input type='checkbox' name='page' value='{page.id}' checked> "
                    f"{html.escape(page.name)}{linked}</label>"
                )
        user_rows = "".join(
            f"<label><input type='radio' name='user_id' value='{u.id}'"
            f"{' checked' if i == 0 else ''}> {html.escape(u.name)}</label>"
            for i, u in enumerate(users)
        )
        scope_rows = "".join(
            f"<label><input type='checkbox' name='scope' value='{html.escape(s)}' checked> "
            f"{html.escape(s)}</label>"
            for s in requested
        )
        hidden = _hidden(
            {
                k: v
                for k, v in params.items()
                if k in ("client_id", "redirect_uri", "state", "config_id", "response_type")
            }
            | {"requested_scope": ",".join(requested)}
        )
        body = f"""<!doctype html><html><head><meta charset="utf-8">
<title>Log in with Facebook</title><style>{PAGE_STYLE}</style></head><body>
<div class="card"><h1>{html.escape(app.name)} is requesting access</h1>
<p class="note">Facebook Login for Business (sandbox)</p>
<form method="post" action="{html.escape(req.path)}">{hidden}
<fieldset><legend>Continue as</legend>{user_rows}</fieldset>
<fieldset><legend>Choose the Pages and Instagram accounts to share</legend>{"".join(page_rows)}
</fieldset><fieldset><legend>Permissions</legend>{scope_rows}</fieldset>
<div class="actions"><button class="deny" name="action" value="deny">Cancel</button>
<button class="allow" name="action" value="allow">Continue</button></div></form></div>
</body></html>"""
        return Response.html(body)


def _multi(req: Request, name: str) -> list[str]:
    from urllib.parse import parse_qsl

    if req.content_type == "application/x-www-form-urlencoded":
        pairs = parse_qsl(req.body.decode("utf-8", "replace"), keep_blank_values=True)
        return [v for k, v in pairs if k == name]
    value = req.form().get(name)
    return _split_scopes(value) if value else []


# -- Instagram Login dialog ------------------------------------------------------------------


def instagram_dialog(sb: Sandbox, req: Request) -> Response:
    params = {**req.query, **req.form()}
    with sb.lock:
        app = _find_app(sb, params.get("client_id", ""), "instagram")
        if app is None:
            return _error_page("Invalid Request", "Invalid platform app")
        redirect_uri = params.get("redirect_uri", "")
        if not _redirect_allowed(app, redirect_uri):
            return _error_page(
                "Invalid Request", "Invalid redirect_uri: it does not match the app settings."
            )
        asked = params.get("requested_scope", params.get("scope"))
        requested = [OLD_IG_SCOPES.get(s, s) for s in _split_scopes(asked)]
        if not requested:
            return _error_page("Invalid Request", "Invalid scope: []")
        state = params.get("state", "")
        auto = sb.world.oauth_auto
        mode = params.get("sandbox_auto") or (auto.mode if req.method == "GET" else None)
        accounts = [a for a in sb.world.accounts.values() if a.login == "instagram"]
        if req.method == "POST" or mode:
            if req.method == "POST":
                action = params.get("action", "deny")
                chosen = _multi(req, "scope")
                account_id = req.form().get("account_id")
            else:
                action = "allow" if mode == "approve" else "deny"
                chosen = _split_scopes(params.get("sandbox_scopes")) or (
                    auto.scopes if auto.scopes is not None else requested
                )
                account_id = params.get("sandbox_account") or auto.account_id
            extra: dict[str, str] = {"state": state} if state else {}
            if action != "allow":
                return Response.redirect(
                    _add_query(
                        redirect_uri,
                        {
                            "error": "access_denied",
                            "error_reason": "user_denied",
                            "error_description": "The user denied your request",
                            **extra,
                        },
                        "#_",
                    )
                )
            account = sb.find_account(account_id or "") if account_id else None
            if account is None or account.login != "instagram":
                if not accounts:
                    return _error_page("No account", "No Instagram Login account exists.")
                account = accounts[0]
            scopes = [s for s in requested if s in chosen]
            code = _new_code(
                sb,
                host="instagram",
                app=app,
                redirect_uri=redirect_uri,
                scopes=scopes,
                granular={},
                ig_id=account.id,
            )
            return Response.redirect(_add_query(redirect_uri, {"code": code, **extra}, "#_"))
        account_rows = "".join(
            f"<label><input type='radio' name='account_id' value='{a.id}'"
            f"{' checked' if i == 0 else ''}> @{html.escape(a.username)} "
            f"({html.escape(a.account_type)})</label>"
            for i, a in enumerate(accounts)
        )
        scope_rows = "".join(
            f"<label><input type='checkbox' name='scope' value='{html.escape(s)}' checked> "
            f"{html.escape(s)}</label>"
            for s in requested
        )
        hidden = _hidden(
            {
                k: v
                for k, v in params.items()
                if k in ("client_id", "redirect_uri", "state", "response_type")
            }
            | {"requested_scope": ",".join(requested)}
        )
        body = f"""<!doctype html><html><head><meta charset="utf-8">
<title>Instagram</title><style>{PAGE_STYLE}</style></head><body>
<div class="card"><h1>Allow {html.escape(app.name)} to access your Instagram account?</h1>
<p class="note">Business Login for Instagram (sandbox)</p>
<form method="post" action="{html.escape(req.path)}">{hidden}
<fieldset><legend>Log in as</legend>{account_rows}</fieldset>
<fieldset><legend>Permissions</legend>{scope_rows}</fieldset>
<div class="actions"><button class="deny" name="action" value="deny">Cancel</button>
<button class="allow" name="action" value="allow">Allow</button></div></form></div>
</body></html>"""
        return Response.html(body)


# -- token endpoints --------------------------------------------------------------------------


def _mint(
    sb: Sandbox,
    *,
    kind: str,
    app_id: str,
    host: Host,
    ttl_s: int,
    scopes: list[str],
    granular: dict[str, list[str]] | None = None,
    user_id: str | None = None,
    ig_id: str | None = None,
) -> Token:
    now = sb.now_ms()
    prefix = "EAAG" if host == "facebook" else "IGAA"
    token = Token(
        token=sb.new_token(prefix),
        kind=kind,  # type: ignore[arg-type]
        app_id=app_id,
        host=host,
        user_id=user_id,
        ig_id=ig_id,
        scopes=list(scopes),
        granular=dict(granular or {}),
        issued_ms=now,
        expires_ms=now + ttl_s * 1000,
        data_access_expires_ms=now + 90 * 86_400_000,
    )
    sb.world.tokens[token.token] = token
    sb.mark_dirty()
    return token


def facebook_access_token(sb: Sandbox, req: Request) -> Response:
    """GET graph.facebook.com/{ver}/oauth/access_token (code, fb_exchange_token, app token)."""
    params = req.params()
    try:
        with sb.lock:
            app = _find_app(sb, str(params.get("client_id", "")), "facebook")
            if app is None:
                raise GraphError(101, "Error validating application. Invalid application ID.")
            if params.get("client_secret") != app.secret:
                raise GraphError(1, "Error validating client secret.", status=400)
            grant = params.get("grant_type")
            if grant == "client_credentials":
                return Response.json(
                    {"access_token": f"{app.id}|{app.secret}", "token_type": "bearer"}
                )
            if grant == "fb_exchange_token":
                raw = str(params.get("fb_exchange_token") or "")
                if not raw:
                    raise missing_param("fb_exchange_token")
                short = sb.world.tokens.get(raw)
                if short is None or short.host != "facebook" or short.app_id != app.id:
                    raise GraphError(190, "Invalid OAuth access token - Cannot parse access token")
                problem = token_state_error(sb, short)
                if problem:
                    raise problem
                if short.kind != "user_short":
                    remaining = max(0, (short.expires_ms - sb.now_ms()) // 1000)
                    body: dict[str, Any] = {"access_token": short.token, "token_type": "bearer"}
                    if short.expires_ms:
                        body["expires_in"] = remaining
                    return Response.json(body)
                long = _mint(
                    sb,
                    kind="user_long",
                    app_id=app.id,
                    host="facebook",
                    ttl_s=LONG_LIVED_S,
                    scopes=short.scopes,
                    granular=short.granular,
                    user_id=short.user_id,
                )
                return Response.json(
                    {"access_token": long.token, "token_type": "bearer", "expires_in": LONG_LIVED_S}
                )
            code = sb.world.codes.get(str(params.get("code") or ""))
            if not params.get("code"):
                raise missing_param("code")
            if code is None or code.host != "facebook" or code.app_id != app.id:
                raise GraphError(100, "Invalid verification code format.", subcode=36008)
            if code.used:
                raise GraphError(100, "This authorization code has been used.", subcode=36009)
            if sb.now_ms() - code.created_ms > code.ttl_ms:
                raise GraphError(100, "This authorization code has expired.", subcode=36007)
            if params.get("redirect_uri") != code.redirect_uri:
                raise GraphError(
                    100,
                    "Error validating verification code. Please make sure your redirect_uri is "
                    "identical to the one you used in the OAuth dialog request",
                    subcode=36008,
                )
            code.used = True
            token = _mint(
                sb,
                kind="user_short",
                app_id=app.id,
                host="facebook",
                ttl_s=SHORT_USER_TTL_S,
                scopes=code.scopes,
                granular=code.granular,
                user_id=code.user_id,
            )
            return Response.json(
                {
                    "access_token": token.token,
                    "token_type": "bearer",
                    "expires_in": SHORT_USER_TTL_S,
                }
            )
    except GraphError as err:
        return Response.json(err.envelope("facebook"), status=err.http_status("facebook"))


def instagram_code_exchange(sb: Sandbox, req: Request) -> Response:
    """POST api.instagram.com/oauth/access_token (flat error shape)."""
    params = req.params()
    try:
        with sb.lock:
            app = _find_app(sb, str(params.get("client_id", "")), "instagram")
            if app is None:
                raise FlatOAuthError("Invalid platform app")
            if params.get("client_secret") != app.ig_app_secret:
                raise FlatOAuthError("Error validating client secret.")
            if params.get("grant_type") != "authorization_code":
                raise FlatOAuthError("Invalid grant_type: expected authorization_code")
            raw = str(params.get("code") or "").removesuffix("#_")
            code = sb.world.codes.get(raw)
            if (
                code is None
                or code.host != "instagram"
                or code.used
                or sb.now_ms() - code.created_ms > code.ttl_ms
            ):
                raise FlatOAuthError("Matching code was not found or was already used")
            if params.get("redirect_uri") != code.redirect_uri:
                raise FlatOAuthError(
                    "Error validating verification code. Please make sure your redirect_uri is "
                    "identical to the one you used in the OAuth dialog request"
                )
            code.used = True
            account = sb.world.accounts[code.ig_id or ""]
            token = _mint(
                sb,
                kind="ig_short",
                app_id=app.id,
                host="instagram",
                ttl_s=3600,
                scopes=code.scopes,
                ig_id=account.id,
            )
            if sb.world.settings.ig_code_exchange_shape == "data":
                return Response.json(
                    {
                        "data": [
                            {
                                "access_token": token.token,
                                "user_id": account.app_scoped_id,
                                "permissions": ",".join(code.scopes),
                            }
                        ]
                    }
                )
            return Response.json(
                {
                    "access_token": token.token,
                    "user_id": int(account.app_scoped_id),
                    "permissions": list(code.scopes),
                }
            )
    except FlatOAuthError as err:
        return Response.json(err.body(), status=400)


def instagram_token(sb: Sandbox, req: Request, *, refresh: bool) -> Response:
    """GET graph.instagram.com/access_token (ig_exchange_token) and /refresh_access_token."""
    params = req.params()
    try:
        with sb.lock:
            raw = str(params.get("access_token") or "")
            if not raw:
                raise missing_param("access_token")
            token = sb.world.tokens.get(raw)
            if token is None or token.host != "instagram":
                raise GraphError(190, "Invalid OAuth access token - Cannot parse access token")
            problem = token_state_error(sb, token)
            if problem:
                raise problem
            app = sb.world.apps[token.app_id]
            if refresh:
                if params.get("grant_type") != "ig_refresh_token":
                    raise invalid_param("grant_type must be ig_refresh_token")
                if token.kind != "ig_long":
                    raise invalid_param("Only long-lived tokens can be refreshed")
                if sb.now_ms() - token.issued_ms < 24 * HOUR_MS:
                    raise invalid_param("The token is too recent to refresh: wait 24 hours")
                if "instagram_business_basic" not in token.scopes:
                    raise GraphError(
                        10, "(#10) The token needs instagram_business_basic to be refreshed"
                    )
            else:
                if params.get("grant_type") != "ig_exchange_token":
                    raise invalid_param("grant_type must be ig_exchange_token")
                if params.get("client_secret") != app.ig_app_secret:
                    raise GraphError(101, "Error validating client secret.")
                if token.kind != "ig_short":
                    raise invalid_param("Only short-lived tokens can be exchanged")
            new = _mint(
                sb,
                kind="ig_long",
                app_id=app.id,
                host="instagram",
                ttl_s=LONG_LIVED_S,
                scopes=token.scopes,
                ig_id=token.ig_id,
            )
            body: dict[str, Any] = {
                "access_token": new.token,
                "token_type": "bearer",
                "expires_in": LONG_LIVED_S,
            }
            if refresh:
                body["permissions"] = ",".join(token.scopes)
            return Response.json(body)
    except GraphError as err:
        return Response.json(err.envelope("instagram"), status=err.http_status("instagram"))


IG_SCOPE_NAMES = IG_SCOPES
