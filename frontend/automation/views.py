"""Automation pages: an account's rules in order, a rule's form and history, business hours,
ice breakers and the persistent menu.

Owners and admins (the settings capability) change them; agents and viewers read. An agent
limited to some Instagram accounts sees only those. Another workspace's ids are not found (404).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from zoneinfo import available_timezones

from django.contrib import messages
from django.core.exceptions import ObjectDoesNotExist
from django.core.exceptions import PermissionDenied as Forbidden
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import selectors as accounts_selectors
from accounts.models import InstagramAccount, Membership
from accounts.roles import Capability, membership_can
from automation import selectors_manage, services
from automation.models import AccountAutomation, ActionType, MatchMode, Rule, RuleRun, Trigger
from config.input_guard import parse_digits
from frontend.views import member_required
from messaging import selectors_inbox

MIN_SLOTS = 3
MAX_SLOTS = services.MAX_ACTIONS
MENU_SLOTS = 6
HISTORY_PAGE = 50
DAY_NAMES = {
    "mon": "Monday",
    "tue": "Tuesday",
    "wed": "Wednesday",
    "thu": "Thursday",
    "fri": "Friday",
    "sat": "Saturday",
    "sun": "Sunday",
}
TEXT_ACTIONS = (ActionType.REPLY_TEXT, ActionType.REPLY_QUICK_REPLIES, ActionType.PRIVATE_REPLY)


# -- guards ------------------------------------------------------------------------------------


def _membership(request: HttpRequest) -> Membership:
    membership: Membership | None = getattr(request, "membership", None)
    if membership is None:
        raise Forbidden
    return membership


def _can_manage(request: HttpRequest) -> bool:
    return membership_can(_membership(request), Capability.MANAGE_SETTINGS)


def _require_manage(request: HttpRequest) -> None:
    if not _can_manage(request):
        raise Forbidden


def _account(request: HttpRequest, account_id: int) -> InstagramAccount:
    try:
        return accounts_selectors.instagram_account_get(
            account_id=account_id, membership=_membership(request)
        )
    except ObjectDoesNotExist as exc:
        raise Http404 from exc


def _rule(request: HttpRequest, rule_id: int) -> Rule:
    try:
        return selectors_manage.rule_get(
            rule_id=rule_id,
            account_ids=accounts_selectors.visible_account_ids(_membership(request)),
        )
    except ObjectDoesNotExist as exc:
        raise Http404 from exc


def _actor(request: HttpRequest) -> Any:
    return request.user


def _base(request: HttpRequest, account: InstagramAccount, tab: str) -> dict[str, Any]:
    return {
        "section": "automation",
        "tab": tab,
        "account": account,
        "can_manage": _can_manage(request),
    }


# -- summaries ---------------------------------------------------------------------------------


def _quoted(words: list[str]) -> str:
    return ", ".join(f"“{w}”" for w in words[:5]) + ("…" if len(words) > 5 else "")


def trigger_summary(rule: Rule) -> str:
    """One line saying what fires the rule."""
    if rule.trigger == Trigger.KEYWORD:
        if rule.match_mode == MatchMode.REGEX:
            return f"A message matches /{rule.pattern}/"
        if rule.match_mode == MatchMode.EXACT:
            return f"A message is exactly {_quoted(rule.keywords)}"
        return f"A message contains {_quoted(rule.keywords)}"
    if rule.trigger == Trigger.COMMENT:
        where = f"post {rule.media_id}" if rule.media_id else "any post"
        if rule.pattern:
            return f"A comment on {where} matches /{rule.pattern}/"
        if rule.keywords:
            return f"A comment on {where} contains {_quoted(rule.keywords)}"
        return f"A comment on {where}"
    if rule.trigger == Trigger.PAYLOAD:
        return f"A button with payload “{rule.payload}” is tapped"
    return str(Trigger(rule.trigger).label)


def actions_summary(actions: list[dict[str, Any]]) -> list[str]:
    labels = dict(ActionType.choices)
    return [str(labels.get(a.get("type", ""), a.get("type", ""))) for a in actions]


@dataclass
class RuleRow:
    rule: Rule
    trigger: str
    actions: list[str]


# -- the index and an account's overview -------------------------------------------------------


@require_GET
@member_required()
def index(request: HttpRequest) -> HttpResponse:
    accounts = list(accounts_selectors.instagram_account_list(membership=_membership(request)))
    if len(accounts) == 1:
        return redirect("frontend:automation_overview", account_id=accounts[0].pk)
    return render(
        request,
        "automation/index.html",
        {"section": "automation", "accounts": accounts},
    )


@require_GET
@member_required()
def overview(request: HttpRequest, account_id: int) -> HttpResponse:
    account = _account(request, account_id)
    rules = list(selectors_manage.rule_list(account=account))
    context = _base(request, account, "rules")
    settings_row = selectors_manage.account_automation_get(account=account)
    context.update(
        {
            "rows": [RuleRow(r, trigger_summary(r), actions_summary(r.actions)) for r in rules],
            "settings_row": settings_row,
            "sync_status": selectors_manage.profile_sync_status(settings_row),
            "away_rules": selectors_manage.outside_hours_rule_count(account=account),
            "accounts": list(
                accounts_selectors.instagram_account_list(membership=_membership(request))
            ),
        }
    )
    return render(request, "automation/overview.html", context)


# -- a rule's form -----------------------------------------------------------------------------


def _lines(value: str) -> list[str]:
    return [line.strip() for line in value.replace("\r", "").split("\n") if line.strip()]


def _quick_replies_from(text: str) -> list[dict[str, str]]:
    """``Title | PAYLOAD`` per line (the title doubles as payload when none is given)."""
    options = []
    for line in _lines(text):
        title, _, payload = line.partition("|")
        options.append({"title": title.strip(), "payload": payload.strip() or title.strip()})
    return options


def _quick_replies_text(options: list[dict[str, Any]]) -> str:
    return "\n".join(f"{o.get('title', '')} | {o.get('payload', '')}" for o in options)


def _slot_from_action(action: dict[str, Any]) -> dict[str, Any]:
    slot: dict[str, Any] = {"type": action.get("type", "")}
    slot["text"] = action.get("text", "")
    slot["quick_replies"] = _quick_replies_text(action.get("quick_replies", []))
    cards = action.get("elements") or [{}]
    card = cards[0]
    button = (card.get("buttons") or [{}])[0]
    slot.update(
        {
            "card_title": card.get("title", ""),
            "card_subtitle": card.get("subtitle", ""),
            "card_image_url": card.get("image_url", ""),
            "card_button_title": button.get("title", ""),
            "card_button_url": button.get("url", ""),
            "extra_cards": json.dumps(cards[1:]) if len(cards) > 1 else "",
            "extra_buttons": json.dumps(card.get("buttons", [])[1:])
            if len(card.get("buttons", [])) > 1
            else "",
            "membership_id": str(action.get("membership_id", "")),
            "label": action.get("label", ""),
            "url": action.get("url", ""),
        }
    )
    return slot


def _json_list(value: str) -> list[Any]:
    try:
        parsed = json.loads(value) if value else []
    except ValueError:
        return []
    return parsed if isinstance(parsed, list) else []


def _action_from_post(post: Any, i: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The action in slot ``i`` (for the service) and the slot's values (to show again)."""
    field = lambda name: str(post.get(f"action-{i}-{name}", "")).strip()  # noqa: E731
    slot = {
        name: field(name)
        for name in (
            "type",
            "text",
            "quick_replies",
            "card_title",
            "card_subtitle",
            "card_image_url",
            "card_button_title",
            "card_button_url",
            "extra_cards",
            "extra_buttons",
            "membership_id",
            "label",
            "url",
        )
    }
    kind = slot["type"]
    action: dict[str, Any] = {"type": kind}
    if kind in TEXT_ACTIONS:
        action["text"] = slot["text"]
    if kind == ActionType.REPLY_QUICK_REPLIES:
        action["quick_replies"] = _quick_replies_from(slot["quick_replies"])
    if kind == ActionType.REPLY_TEMPLATE:
        buttons = []
        if slot["card_button_title"] or slot["card_button_url"]:
            buttons.append(
                {
                    "type": "web_url",
                    "title": slot["card_button_title"],
                    "url": slot["card_button_url"],
                }
            )
        buttons += _json_list(slot["extra_buttons"])
        card: dict[str, Any] = {"title": slot["card_title"], "buttons": buttons}
        for key in ("subtitle", "image_url"):
            if slot[f"card_{key}"]:
                card[key] = slot[f"card_{key}"]
        action["elements"] = [card, *_json_list(slot["extra_cards"])]
    if kind == ActionType.ASSIGN:
        action["membership_id"] = slot["membership_id"]
    if kind == ActionType.LABEL:
        action["label"] = slot["label"]
    if kind == ActionType.PARTNER_BOT:
        action["url"] = slot["url"]
    return action, slot


def _cooldown_from(value: str) -> Any:
    """Minutes in the form, seconds for the service (text the service refuses stays text)."""
    try:
        return round(float(value) * 60)
    except ValueError:
        return value


def _form_from_post(request: HttpRequest) -> tuple[dict[str, Any], dict[str, Any]]:
    post = request.POST
    count = parse_digits(post.get("action_count"))
    slots_count = min(max(MIN_SLOTS if count is None else count, 1), MAX_SLOTS)
    actions, slots = [], []
    for i in range(slots_count):
        action, slot = _action_from_post(post, i)
        slots.append(slot)
        if action["type"]:
            actions.append(action)
    trigger = post.get("trigger", "")
    values: dict[str, Any] = {
        "name": post.get("name", ""),
        "trigger": trigger,
        "match_mode": post.get("match_mode", MatchMode.CONTAINS),
        "keywords": post.get("keywords", ""),
        "pattern": post.get("pattern", ""),
        "media_id": post.get("media_id", ""),
        "payload": post.get("payload", ""),
        "cooldown": _cooldown_from(post.get("cooldown_minutes", "")),
        "enabled": post.get("enabled") == "on",
        "stop_after": post.get("stop_after") == "on",
        "actions": actions,
    }
    form = {
        **values,
        "cooldown_minutes": post.get("cooldown_minutes", ""),
        "slots": slots,
    }
    return values, form


def _form_from_rule(rule: Rule | None, trigger: str = "") -> dict[str, Any]:
    if rule is None:
        slots = [_slot_from_action({}) for _ in range(MIN_SLOTS)]
        return {
            "name": "",
            "trigger": trigger if trigger in Trigger.values else Trigger.KEYWORD,
            "match_mode": MatchMode.CONTAINS,
            "keywords": "",
            "pattern": "",
            "media_id": "",
            "payload": "",
            "cooldown_minutes": str(int(services.DEFAULT_COOLDOWN.total_seconds() // 60)),
            "enabled": True,
            "stop_after": True,
            "slots": slots,
        }
    slots = [_slot_from_action(a) for a in rule.actions]
    while len(slots) < max(MIN_SLOTS, min(len(rule.actions) + 1, MAX_SLOTS)):
        slots.append(_slot_from_action({}))
    minutes = rule.cooldown.total_seconds() / 60
    return {
        "name": rule.name,
        "trigger": rule.trigger,
        "match_mode": rule.match_mode,
        "keywords": ", ".join(rule.keywords),
        "pattern": rule.pattern,
        "media_id": rule.media_id,
        "payload": rule.payload,
        "cooldown_minutes": f"{minutes:g}",
        "enabled": rule.enabled,
        "stop_after": rule.stop_after,
        "slots": slots,
    }


def _form_context(
    request: HttpRequest, account: InstagramAccount, form: dict[str, Any]
) -> dict[str, Any]:
    members = [
        m for m in accounts_selectors.membership_list() if membership_can(m, Capability.REPLY)
    ]
    return {
        **_base(request, account, "rules"),
        "form": form,
        "triggers": Trigger.choices,
        "match_modes": MatchMode.choices,
        "action_types": [
            (value, label, "comment" if value == ActionType.PRIVATE_REPLY else "conversation")
            for value, label in ActionType.choices
        ],
        "members": members,
        "labels": list(selectors_inbox.label_list()),
    }


def _bot_secret_page(request: HttpRequest, rule: Rule, secret: str) -> HttpResponse:
    context = _base(request, rule.account, "rules")
    context.update({"rule": rule, "secret": secret})
    return render(request, "automation/bot_secret.html", context)


@require_http_methods(["GET", "POST"])
@member_required()
def rule_create(request: HttpRequest, account_id: int) -> HttpResponse:
    account = _account(request, account_id)
    _require_manage(request)
    if request.method == "GET":
        form = _form_from_rule(None, trigger=request.GET.get("trigger", ""))
        context = _form_context(request, account, form)
        return render(request, "automation/rule_form.html", context)
    values, form = _form_from_post(request)
    try:
        saved = services.rule_create(account=account, values=values, actor_user=_actor(request))
    except services.AutomationError as exc:
        context = _form_context(request, account, form)
        context.update({"error": exc.message, "error_field": exc.field})
        return render(request, "automation/rule_form.html", context, status=400)
    if saved.new_bot_secret:
        return _bot_secret_page(request, saved.rule, saved.new_bot_secret)
    messages.success(request, f"Rule “{saved.rule.name}” created.")
    return redirect("frontend:automation_overview", account_id=account.pk)


@require_http_methods(["GET", "POST"])
@member_required()
def rule_edit(request: HttpRequest, rule_id: int) -> HttpResponse:
    rule = _rule(request, rule_id)
    if request.method == "GET":
        context = _form_context(request, rule.account, _form_from_rule(rule))
        context["rule"] = rule
        return render(request, "automation/rule_form.html", context)
    _require_manage(request)
    values, form = _form_from_post(request)
    try:
        saved = services.rule_update(rule=rule, changes=values, actor_user=_actor(request))
    except services.AutomationError as exc:
        context = _form_context(request, rule.account, form)
        context.update({"rule": rule, "error": exc.message, "error_field": exc.field})
        return render(request, "automation/rule_form.html", context, status=400)
    if saved.new_bot_secret:
        return _bot_secret_page(request, saved.rule, saved.new_bot_secret)
    messages.success(request, f"Rule “{saved.rule.name}” saved.")
    return redirect("frontend:automation_overview", account_id=rule.account_id)


@require_POST
@member_required()
def rule_toggle(request: HttpRequest, rule_id: int) -> HttpResponse:
    rule = _rule(request, rule_id)
    _require_manage(request)
    enabled = request.POST.get("enabled") == "on"
    services.rule_enable(rule=rule, enabled=enabled, actor_user=_actor(request))
    messages.success(request, f"Rule “{rule.name}” turned {'on' if enabled else 'off'}.")
    return redirect("frontend:automation_overview", account_id=rule.account_id)


@require_POST
@member_required()
def rule_move(request: HttpRequest, rule_id: int) -> HttpResponse:
    rule = _rule(request, rule_id)
    _require_manage(request)
    step = -1 if request.POST.get("direction") == "up" else 1
    services.rule_move(rule=rule, step=step, actor_user=_actor(request))
    return redirect("frontend:automation_overview", account_id=rule.account_id)


@require_http_methods(["GET", "POST"])
@member_required()
def rule_delete(request: HttpRequest, rule_id: int) -> HttpResponse:
    rule = _rule(request, rule_id)
    _require_manage(request)
    if request.method == "GET":
        context = _base(request, rule.account, "rules")
        context.update({"rule": rule, "trigger": trigger_summary(rule)})
        return render(request, "automation/rule_delete.html", context)
    services.rule_delete(rule=rule, actor_user=_actor(request))
    messages.success(request, f"Rule “{rule.name}” deleted.")
    return redirect("frontend:automation_overview", account_id=rule.account_id)


# -- a rule's history --------------------------------------------------------------------------


@dataclass
class RunRow:
    run: RuleRun
    sent: list[tuple[str, str]]  # (what, detail)


def _run_rows(runs: list[RuleRun]) -> list[RunRow]:
    texts = selectors_manage.rule_run_sent_texts(runs)
    labels = dict(ActionType.choices)
    rows = []
    for run in runs:
        sent = []
        for item in run.done or []:
            if not isinstance(item, dict):
                continue
            what = str(labels.get(item.get("action", ""), item.get("action", "")))
            if "message_id" in item:
                detail = texts.get(item["message_id"], "")
            elif "refused" in item:
                detail = f"refused: {item['refused']}"
            elif "skipped" in item:
                detail = f"skipped: {item['skipped']}"
            elif "job_id" in item:
                detail = "queued"
            else:
                detail = ""
            sent.append((what, detail))
        rows.append(RunRow(run=run, sent=sent))
    return rows


@require_GET
@member_required()
def history(request: HttpRequest, rule_id: int) -> HttpResponse:
    rule = _rule(request, rule_id)
    runs_qs = selectors_manage.rule_run_list(rule=rule)
    before = parse_digits(request.GET.get("before"))
    if before is not None:
        runs_qs = runs_qs.filter(pk__lt=before)
    runs = list(runs_qs[: HISTORY_PAGE + 1])
    more = len(runs) > HISTORY_PAGE
    runs = runs[:HISTORY_PAGE]
    context = _base(request, rule.account, "rules")
    context.update(
        {
            "rule": rule,
            "trigger": trigger_summary(rule),
            "rows": _run_rows(runs),
            "older": runs[-1].pk if more and runs else None,
        }
    )
    return render(request, "automation/history.html", context)


# -- business hours ----------------------------------------------------------------------------


def _spans_text(spans: list[list[str]]) -> str:
    return ", ".join(f"{a}-{b}" for a, b in spans)


def _spans_from(text: str) -> list[list[str]] | str:
    """``09:00-12:30, 13:30-18:00`` as spans; text that is no span is passed on to be refused."""
    spans: list[list[str]] = []
    for part in text.replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        start, sep, end = part.partition("-")
        if not sep:
            return part
        spans.append([start.strip(), end.strip()])
    return spans


@require_http_methods(["GET", "POST"])
@member_required()
def hours(request: HttpRequest, account_id: int) -> HttpResponse:
    account = _account(request, account_id)
    row = selectors_manage.account_automation_get(account=account)
    days = {day: _spans_text(row.hours.get(day, [])) for day in DAY_NAMES}
    timezone_value = row.timezone
    resolve = row.resolve_returns_to_automation
    status = 200
    error = ""
    if request.method == "POST":
        _require_manage(request)
        days = {day: request.POST.get(f"hours-{day}", "") for day in DAY_NAMES}
        timezone_value = request.POST.get("timezone", "")
        resolve = request.POST.get("resolve_returns_to_automation") == "on"
        hours_value: dict[str, Any] = {}
        for day, text in days.items():
            spans = _spans_from(text)
            hours_value[day] = spans if isinstance(spans, list) else [[spans, ""]]
        try:
            services.account_automation_update(
                account=account,
                changes={
                    "timezone": timezone_value,
                    "hours": hours_value,
                    "resolve_returns_to_automation": resolve,
                },
                actor_user=_actor(request),
            )
        except services.AutomationError as exc:
            error, status = exc.message, 400
        else:
            messages.success(request, "Business hours saved.")
            return redirect("frontend:automation_hours", account_id=account.pk)
    context = _base(request, account, "hours")
    context.update(
        {
            "days": [(day, DAY_NAMES[day], days[day]) for day in DAY_NAMES],
            "timezone": timezone_value,
            "timezones": sorted(available_timezones()),
            "resolve": resolve,
            "error": error,
            "away_rules": selectors_manage.outside_hours_rule_count(account=account),
        }
    )
    return render(request, "automation/hours.html", context, status=status)


# -- ice breakers and the persistent menu ------------------------------------------------------


def _profile_rows(row: AccountAutomation) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    ice = [dict(i) for i in row.ice_breakers]
    ice += [{"question": "", "payload": ""}] * (services.MAX_ICE_BREAKERS - len(ice))
    menu = [dict(i) for i in row.persistent_menu]
    menu += [{"type": "postback", "title": "", "payload": "", "url": ""}] * max(
        MENU_SLOTS - len(menu), 1
    )
    return ice, menu


def _profile_from_post(post: Any) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    ice = []
    for i in range(services.MAX_ICE_BREAKERS):
        question = post.get(f"ice-{i}-question", "").strip()
        payload = post.get(f"ice-{i}-payload", "").strip()
        if question or payload:
            ice.append({"question": question, "payload": payload})
    count = parse_digits(post.get("menu_count"))
    menu = []
    for i in range(min(MENU_SLOTS if count is None else count, services.MAX_MENU_ITEMS)):
        kind = post.get(f"menu-{i}-type", "postback")
        title = post.get(f"menu-{i}-title", "").strip()
        value = post.get(f"menu-{i}-value", "").strip()
        if not (title or value):
            continue
        item = {"type": kind, "title": title}
        item["url" if kind == "web_url" else "payload"] = value
        menu.append(item)
    return ice, menu


@require_http_methods(["GET", "POST"])
@member_required()
def profile(request: HttpRequest, account_id: int) -> HttpResponse:
    account = _account(request, account_id)
    row = selectors_manage.account_automation_get(account=account)
    ice, menu = _profile_rows(row)
    status, error = 200, ""
    if request.method == "POST":
        _require_manage(request)
        if request.POST.get("resync"):
            services.account_profile_resync(account=account, actor_user=_actor(request))
            messages.success(request, "Sending the ice breakers and menu to Instagram again.")
            return redirect("frontend:automation_profile", account_id=account.pk)
        ice, menu = _profile_from_post(request.POST)
        try:
            services.account_automation_update(
                account=account,
                changes={"ice_breakers": ice, "persistent_menu": menu},
                actor_user=_actor(request),
            )
        except services.AutomationError as exc:
            error, status = exc.message, 400
            ice += [{"question": "", "payload": ""}] * (services.MAX_ICE_BREAKERS - len(ice))
            menu += [{"type": "postback", "title": "", "payload": "", "url": ""}]
        else:
            messages.success(request, "Saved. Sending them to Instagram…")
            return redirect("frontend:automation_profile", account_id=account.pk)
    context = _base(request, account, "profile")
    context.update(
        {
            "row": row,
            "sync_status": selectors_manage.profile_sync_status(row),
            "ice": ice,
            "menu": menu,
            "error": error,
        }
    )
    return render(request, "automation/profile.html", context, status=status)
