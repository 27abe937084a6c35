"""Writes of automation management: rules and each account's automation settings.

Every function here checks its input completely before anything is stored, and refuses with an
``AutomationError`` carrying a stable ``code`` (the partner API's error code), a ``message``
for people and the ``field`` it is about. Each change is written to the audit log with counts
and setting names only, never the text a rule sends. A change to the ice breakers or the
persistent menu queues the sync with Meta once the transaction commits.
"""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache, partial
from itertools import pairwise
from typing import Any
from zoneinfo import available_timezones

from django.db import transaction
from django.db.models import Max

from accounts.audit import Action, audit_record
from accounts.models import ApiKey, InstagramAccount, Membership, User
from accounts.roles import Capability, membership_can
from automation.models import AccountAutomation, ActionType, MatchMode, Rule, Trigger
from config.input_guard import is_digits, parse_digits
from messaging.services.outbound import (
    OutboundContent,
    OutboundContentInvalid,
    QuickReplyOption,
    TemplateButton,
    TemplateCard,
)
from webhooks.partner_delivery import UnsafeCallbackUrl, url_check

logger = logging.getLogger("automation.services")

MAX_NAME = 120
MAX_KEYWORDS = 50
MAX_KEYWORD = 100
MAX_PATTERN = 500
MAX_PAYLOAD = 1000
MAX_MEDIA_ID = 64
MAX_ACTIONS = 10
MAX_LABEL = 40
MAX_URL = 2000
MIN_COOLDOWN = timedelta(0)
MAX_COOLDOWN = timedelta(days=30)
DEFAULT_COOLDOWN = timedelta(hours=24)

MAX_ICE_BREAKERS = 4
MAX_ICE_BREAKER_QUESTION = 80
MAX_MENU_ITEMS = 20
MAX_MENU_TITLE = 30
MAX_SPANS_PER_DAY = 4
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_TIME = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")  # fullmatch; \d takes any script's digits

# Which actions each trigger may take. A commenter has no conversation yet: the one thing a
# comment rule can do is Meta's private reply to the comment (which opens the conversation).
_COMMENT_ACTIONS = frozenset({ActionType.PRIVATE_REPLY})
_CONVERSATION_ACTIONS = frozenset(ActionType) - {ActionType.PRIVATE_REPLY}


class AutomationError(ValueError):
    """Input the automation rules refuse; ``message`` is for people, ``code`` for programs."""

    def __init__(self, code: str, message: str, field_name: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field_name


# Every code an ``AutomationError`` can carry (documented in the partner API's schema).
ERROR_CODES: dict[str, str] = {
    "name_invalid": "400: a rule's name is 1 to 120 characters.",
    "trigger_invalid": "400: unknown trigger.",
    "match_mode_invalid": "400: unknown match mode.",
    "keywords_invalid": "400: keywords are 1 to 50 words or phrases of at most 100 characters.",
    "pattern_invalid": "400: the pattern is not a valid regular expression (at most 500).",
    "media_invalid": "400: a post id is digits only.",
    "payload_invalid": "400: a payload rule needs the payload, at most 1000 characters.",
    "cooldown_invalid": "400: the cooldown is 0 seconds to 30 days.",
    "actions_invalid": "400: a rule takes 1 to 10 actions, each an object with a known type.",
    "action_not_allowed": "400: that action cannot follow that trigger.",
    "action_field_invalid": "400: an action's field is missing or not valid.",
    "assignee_invalid": "400: the member does not exist or may not answer conversations.",
    "bot_url_not_allowed": "400: the bot's URL must be a public http(s) address.",
    "account_unavailable": "400: the Instagram account is disconnected.",
    "position_invalid": "400: rule ids must be the account's rules, each once.",
    "rule_invalid": "400: an unknown field, or enabled / stop_after not true or false.",
    "settings_invalid": "400: an unknown setting, or a yes/no setting not true or false.",
    "timezone_invalid": "400: not an IANA time zone name (such as Europe/Lisbon).",
    "hours_invalid": "400: business hours map weekdays to spans of HH:MM times.",
    "ice_breakers_invalid": "400: at most 4 ice breakers, each with a question and a payload.",
    "menu_invalid": "400: at most 20 menu items: postback (payload) or web_url (https url).",
}


@dataclass(frozen=True)
class RuleSaved:
    """A saved rule, and its bot secret when one was just made (shown once, never again)."""

    rule: Rule
    new_bot_secret: str = ""


# -- cleaning ----------------------------------------------------------------------------------


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def name_clean(value: Any) -> str:
    name = " ".join(_text(value).split())
    if not 0 < len(name) <= MAX_NAME:
        raise AutomationError(
            "name_invalid", "Give the rule a name of 1 to 120 characters.", "name"
        )
    return name


def keywords_clean(value: Any) -> list[str]:
    """Keywords without blanks and repeats (compared case-insensitively), in their order."""
    if isinstance(value, str):
        value = value.replace("\n", ",").split(",")
    if not isinstance(value, list | tuple):
        raise AutomationError("keywords_invalid", "Keywords are a list of words.", "keywords")
    kept: list[str] = []
    seen: set[str] = set()
    for item in value:
        if not isinstance(item, str):
            raise AutomationError("keywords_invalid", "Each keyword is text.", "keywords")
        word = " ".join(item.split())
        if not word:
            continue
        if len(word) > MAX_KEYWORD:
            raise AutomationError(
                "keywords_invalid",
                f"A keyword is at most {MAX_KEYWORD} characters.",
                "keywords",
            )
        if word.casefold() not in seen:
            seen.add(word.casefold())
            kept.append(word)
    if len(kept) > MAX_KEYWORDS:
        raise AutomationError(
            "keywords_invalid", f"At most {MAX_KEYWORDS} keywords per rule.", "keywords"
        )
    return kept


def pattern_clean(value: Any) -> str:
    pattern = _text(value)
    if not pattern:
        return ""
    if len(pattern) > MAX_PATTERN:
        raise AutomationError(
            "pattern_invalid", f"A pattern is at most {MAX_PATTERN} characters.", "pattern"
        )
    try:
        re.compile(pattern)
    except (re.error, RecursionError, OverflowError) as exc:
        raise AutomationError(
            "pattern_invalid", f"The pattern is not a valid regular expression: {exc}.", "pattern"
        ) from None
    return pattern


def cooldown_clean(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        cooldown = value
    elif isinstance(value, int) and not isinstance(value, bool):
        cooldown = timedelta(seconds=value)
    else:
        raise AutomationError(
            "cooldown_invalid", "The cooldown is a number of seconds.", "cooldown"
        )
    if not MIN_COOLDOWN <= cooldown <= MAX_COOLDOWN:
        raise AutomationError(
            "cooldown_invalid", "The cooldown is between 0 seconds and 30 days.", "cooldown"
        )
    return cooldown


def _field_error(index: int, message: str) -> AutomationError:
    return AutomationError("action_field_invalid", f"Action {index + 1}: {message}", "actions")


def _content_check(index: int, content: OutboundContent) -> None:
    try:
        content.validate()
    except OutboundContentInvalid as exc:
        raise _field_error(index, exc.message) from None


def _quick_replies(index: int, value: Any) -> tuple[QuickReplyOption, ...]:
    if not isinstance(value, list) or not value:
        raise _field_error(index, "give at least one quick reply.")
    options = []
    for item in value:
        if not isinstance(item, dict):
            raise _field_error(index, "each quick reply is a title and a payload.")
        payload = _text(item.get("payload"))
        if len(payload) > MAX_PAYLOAD:
            raise _field_error(index, f"a quick reply's payload is at most {MAX_PAYLOAD} chars.")
        options.append(QuickReplyOption(title=_text(item.get("title")), payload=payload))
    return tuple(options)


def _cards(index: int, value: Any) -> tuple[TemplateCard, ...]:
    if not isinstance(value, list):
        raise _field_error(index, "a card reply needs its cards (elements).")
    cards = []
    for item in value:
        if not isinstance(item, dict):
            raise _field_error(index, "each card is an object with a title.")
        buttons_in = item.get("buttons") or []
        if not isinstance(buttons_in, list) or not all(isinstance(b, dict) for b in buttons_in):
            raise _field_error(index, "a card's buttons are a list of objects.")
        buttons = tuple(
            TemplateButton(
                type=_text(b.get("type")),
                title=_text(b.get("title")),
                url=_text(b.get("url")),
                payload=_text(b.get("payload")),
            )
            for b in buttons_in
        )
        for url in (_text(item.get("image_url")), _text(item.get("default_action_url"))):
            if url and (not url.startswith("https://") or len(url) > MAX_URL):
                raise _field_error(index, "a card's image and link are https URLs.")
        cards.append(
            TemplateCard(
                title=_text(item.get("title")),
                subtitle=_text(item.get("subtitle")),
                image_url=_text(item.get("image_url")),
                default_action_url=_text(item.get("default_action_url")),
                buttons=buttons,
            )
        )
    return tuple(cards)


def _card_json(card: TemplateCard) -> dict[str, Any]:
    data: dict[str, Any] = {"title": card.title}
    for key in ("subtitle", "image_url", "default_action_url"):
        if getattr(card, key):
            data[key] = getattr(card, key)
    if card.buttons:
        data["buttons"] = [
            {"type": b.type, "title": b.title, **({"url": b.url} if b.type == "web_url" else {})}
            | ({"payload": b.payload} if b.type == "postback" else {})
            for b in card.buttons
        ]
    return data


def _membership_can_answer(membership_id: Any) -> int:
    if not isinstance(membership_id, int) or isinstance(membership_id, bool):
        membership_id = parse_digits(membership_id)
        if membership_id is None:
            raise AutomationError(
                "assignee_invalid", "Choose the teammate to assign (membership_id).", "actions"
            )
    membership = Membership.objects.filter(pk=membership_id).first()
    if membership is None or not membership_can(membership, Capability.REPLY):
        raise AutomationError(
            "assignee_invalid",
            "That teammate is not a member of this workspace who can answer conversations.",
            "actions",
        )
    return membership.pk


def _action_clean(index: int, trigger: str, raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise AutomationError("actions_invalid", "Each action is an object with a type.", "actions")
    try:
        kind = ActionType(str(raw.get("type")))
    except ValueError:
        raise AutomationError(
            "actions_invalid", f"Action {index + 1}: unknown type {raw.get('type')!r}.", "actions"
        ) from None
    allowed = _COMMENT_ACTIONS if trigger == Trigger.COMMENT else _CONVERSATION_ACTIONS
    if kind not in allowed:
        message = (
            "a comment rule can only answer with a private reply to the comment."
            if trigger == Trigger.COMMENT
            else "a private reply answers a comment: use it with the comment trigger."
        )
        raise AutomationError("action_not_allowed", f"Action {index + 1}: {message}", "actions")
    if kind in (ActionType.REPLY_TEXT, ActionType.PRIVATE_REPLY):
        text = _text(raw.get("text"))
        _content_check(index, OutboundContent(kind="text", text=text))
        return {"type": kind.value, "text": text}
    if kind == ActionType.REPLY_QUICK_REPLIES:
        text = _text(raw.get("text"))
        options = _quick_replies(index, raw.get("quick_replies"))
        _content_check(index, OutboundContent(kind="text", text=text, quick_replies=options))
        return {
            "type": kind.value,
            "text": text,
            "quick_replies": [{"title": o.title, "payload": o.payload} for o in options],
        }
    if kind == ActionType.REPLY_TEMPLATE:
        cards = _cards(index, raw.get("elements"))
        _content_check(index, OutboundContent(kind="generic_template", elements=cards))
        return {"type": kind.value, "elements": [_card_json(c) for c in cards]}
    if kind == ActionType.ASSIGN:
        return {
            "type": kind.value,
            "membership_id": _membership_can_answer(raw.get("membership_id")),
        }
    if kind == ActionType.LABEL:
        label = " ".join(_text(raw.get("label")).split())
        if not 0 < len(label) <= MAX_LABEL:
            raise _field_error(index, f"a label's name is 1 to {MAX_LABEL} characters.")
        return {"type": kind.value, "label": label}
    if kind == ActionType.HANDOVER:
        return {"type": kind.value}
    # partner_bot
    url = _text(raw.get("url"))
    if not url or len(url) > MAX_URL:
        raise AutomationError("bot_url_not_allowed", "Give the bot's URL.", "actions")
    try:
        url_check(url)
    except UnsafeCallbackUrl as exc:
        raise AutomationError("bot_url_not_allowed", str(exc), "actions") from None
    return {"type": kind.value, "url": url}


def actions_clean(trigger: str, actions: Any) -> list[dict[str, Any]]:
    """The rule's actions, checked against the trigger and Meta's limits, in a stored shape.

    Fields an action type does not take are dropped; a partner bot appears at most once.
    """
    if not isinstance(actions, list) or not 0 < len(actions) <= MAX_ACTIONS:
        raise AutomationError(
            "actions_invalid", f"A rule takes 1 to {MAX_ACTIONS} actions.", "actions"
        )
    cleaned = [_action_clean(i, trigger, raw) for i, raw in enumerate(actions)]
    if sum(1 for a in cleaned if a["type"] == ActionType.PARTNER_BOT) > 1:
        raise AutomationError("actions_invalid", "A rule asks at most one partner bot.", "actions")
    return cleaned


@dataclass(frozen=True)
class _Matching:
    match_mode: str
    keywords: list[str]
    pattern: str
    media_id: str
    payload: str


def _matching_clean(trigger: str, values: dict[str, Any]) -> _Matching:
    """The fields that say what fires the rule, checked for its trigger (others are blanked)."""
    mode = values.get("match_mode") or MatchMode.CONTAINS
    if mode not in MatchMode.values:
        raise AutomationError("match_mode_invalid", "Unknown match mode.", "match_mode")
    keywords: list[str] = []
    pattern = media_id = payload = ""
    if trigger in (Trigger.KEYWORD, Trigger.COMMENT):
        if mode == MatchMode.REGEX:
            pattern = pattern_clean(values.get("pattern"))
        else:
            keywords = keywords_clean(values.get("keywords", []))
    if trigger == Trigger.KEYWORD and not (keywords or pattern):
        if mode == MatchMode.REGEX:
            raise AutomationError("pattern_invalid", "Give the pattern to match.", "pattern")
        raise AutomationError(
            "keywords_invalid", "A keyword rule needs at least one keyword.", "keywords"
        )
    if trigger == Trigger.COMMENT:
        media_id = _text(values.get("media_id"))
        if media_id and (not is_digits(media_id) or len(media_id) > MAX_MEDIA_ID):
            raise AutomationError("media_invalid", "A post id is digits only.", "media_id")
        if not (media_id or keywords or pattern):
            raise AutomationError(
                "keywords_invalid",
                "Choose a post, or keywords for comments on any post.",
                "keywords",
            )
    if trigger == Trigger.PAYLOAD:
        payload = _text(values.get("payload"))
        if not 0 < len(payload) <= MAX_PAYLOAD:
            raise AutomationError(
                "payload_invalid",
                f"Give the button's payload, at most {MAX_PAYLOAD} characters.",
                "payload",
            )
    if trigger not in (Trigger.KEYWORD, Trigger.COMMENT):
        mode = MatchMode.CONTAINS
    return _Matching(
        match_mode=str(mode), keywords=keywords, pattern=pattern, media_id=media_id, payload=payload
    )


def _trigger_clean(value: Any) -> str:
    if value not in Trigger.values:
        raise AutomationError("trigger_invalid", "Unknown trigger.", "trigger")
    return str(value)


# -- rules -------------------------------------------------------------------------------------

_RULE_FIELDS = (
    "name",
    "enabled",
    "stop_after",
    "trigger",
    "match_mode",
    "keywords",
    "pattern",
    "media_id",
    "payload",
    "actions",
    "cooldown",
)


def _bot_secret() -> str:
    return "botsec_" + secrets.token_urlsafe(32)


def _audit_rule(
    rule: Rule, action: str, user: User | None, api_key: ApiKey | None, **detail: Any
) -> None:
    audit_record(
        tenant=rule.tenant_id,
        action=action,
        actor_user=user,
        actor_api_key=api_key,
        target_type="automation_rule",
        target_id=rule.pk,
        detail={"account_id": rule.account_id, **detail},
    )


def _rule_values(values: dict[str, Any]) -> dict[str, Any]:
    """Every stored field of a rule from a complete set of values, checked."""
    trigger = _trigger_clean(values.get("trigger"))
    matching = _matching_clean(trigger, values)
    enabled, stop_after = values.get("enabled", True), values.get("stop_after", True)
    if not isinstance(enabled, bool) or not isinstance(stop_after, bool):
        raise AutomationError("rule_invalid", "enabled and stop_after are true or false.")
    return {
        "name": name_clean(values.get("name")),
        "enabled": enabled,
        "stop_after": stop_after,
        "trigger": trigger,
        "match_mode": matching.match_mode,
        "keywords": matching.keywords,
        "pattern": matching.pattern,
        "media_id": matching.media_id,
        "payload": matching.payload,
        "actions": actions_clean(trigger, values.get("actions")),
        "cooldown": cooldown_clean(values.get("cooldown", DEFAULT_COOLDOWN)),
    }


def _has_bot(actions: list[dict[str, Any]]) -> bool:
    return any(a.get("type") == ActionType.PARTNER_BOT for a in actions)


def rule_create(
    *,
    account: InstagramAccount,
    values: dict[str, Any],
    actor_user: User | None = None,
    actor_api_key: ApiKey | None = None,
) -> RuleSaved:
    """A new rule, last in the account's order. ``values`` holds the rule's fields by name."""
    if account.status == InstagramAccount.Status.DISCONNECTED:
        raise AutomationError(
            "account_unavailable", "The Instagram account is disconnected.", "account"
        )
    cleaned = _rule_values(values)
    secret = _bot_secret() if _has_bot(cleaned["actions"]) else ""
    with transaction.atomic():
        # Lock the account so two rules created at once do not take the same position.
        InstagramAccount.objects.select_for_update().filter(pk=account.pk).first()
        last = Rule.objects.filter(account=account).aggregate(m=Max("position"))["m"]
        rule = Rule.objects.create(
            tenant_id=account.tenant_id,
            account=account,
            position=0 if last is None else last + 1,
            bot_secret=secret,
            **cleaned,
        )
        _audit_rule(
            rule,
            Action.AUTOMATION_RULE_CREATED,
            actor_user,
            actor_api_key,
            trigger=rule.trigger,
            actions=[a["type"] for a in rule.actions],
            enabled=rule.enabled,
        )
    return RuleSaved(rule=rule, new_bot_secret=secret)


def rule_update(
    *,
    rule: Rule,
    changes: dict[str, Any],
    actor_user: User | None = None,
    actor_api_key: ApiKey | None = None,
) -> RuleSaved:
    """Change some of a rule's fields; the rule is checked whole again after the change.

    A rule that gains a partner bot gets a new secret (returned once); one that loses it drops
    its secret.
    """
    unknown = sorted(set(changes) - set(_RULE_FIELDS))
    if unknown:
        raise AutomationError("rule_invalid", f"Unknown fields: {', '.join(unknown)}.")
    with transaction.atomic():
        locked = Rule.objects.select_for_update().get(pk=rule.pk)
        current = {name: getattr(locked, name) for name in _RULE_FIELDS}
        if "trigger" in changes and changes["trigger"] != locked.trigger:
            # A new trigger starts from blank matching fields unless they come with it.
            for name in ("keywords", "pattern", "media_id", "payload"):
                current[name] = [] if name == "keywords" else ""
        cleaned = _rule_values({**current, **changes})
        changed = sorted(n for n in _RULE_FIELDS if cleaned[n] != getattr(locked, n))
        secret = ""
        if _has_bot(cleaned["actions"]) and not locked.bot_secret:
            secret = _bot_secret()
            locked.bot_secret = secret
            changed.append("bot_secret")
        elif not _has_bot(cleaned["actions"]) and locked.bot_secret:
            locked.bot_secret = ""
            changed.append("bot_secret")
        if not changed:
            return RuleSaved(rule=locked)
        for name, value in cleaned.items():
            setattr(locked, name, value)
        locked.save()
        _audit_rule(
            locked, Action.AUTOMATION_RULE_CHANGED, actor_user, actor_api_key, fields=changed
        )
    return RuleSaved(rule=locked, new_bot_secret=secret)


def rule_enable(
    *,
    rule: Rule,
    enabled: bool,
    actor_user: User | None = None,
    actor_api_key: ApiKey | None = None,
) -> Rule:
    """Turn a rule on or off (nothing else about it is checked or changed)."""
    with transaction.atomic():
        locked = Rule.objects.select_for_update().get(pk=rule.pk)
        if locked.enabled != enabled:
            locked.enabled = enabled
            locked.save(update_fields=["enabled", "updated_at"])
            _audit_rule(
                locked,
                Action.AUTOMATION_RULE_CHANGED,
                actor_user,
                actor_api_key,
                fields=["enabled"],
                enabled=enabled,
            )
    return locked


def rule_delete(
    *, rule: Rule, actor_user: User | None = None, actor_api_key: ApiKey | None = None
) -> None:
    """Delete a rule and its history."""
    with transaction.atomic():
        _audit_rule(
            rule, Action.AUTOMATION_RULE_DELETED, actor_user, actor_api_key, trigger=rule.trigger
        )
        Rule.objects.filter(pk=rule.pk).delete()


def rules_reorder(
    *,
    account: InstagramAccount,
    rule_ids: list[int],
    actor_user: User | None = None,
    actor_api_key: ApiKey | None = None,
) -> list[Rule]:
    """Put the account's rules in the order of ``rule_ids`` (every rule of it, each once)."""
    with transaction.atomic():
        rules = {r.pk: r for r in Rule.objects.select_for_update().filter(account=account)}
        if sorted(rule_ids) != sorted(rules) or len(set(rule_ids)) != len(rule_ids):
            raise AutomationError(
                "position_invalid", "List each of the account's rules once.", "rule_ids"
            )
        for position, rule_id in enumerate(rule_ids):
            rule = rules[rule_id]
            if rule.position != position:
                rule.position = position
                rule.save(update_fields=["position", "updated_at"])
        audit_record(
            tenant=account.tenant_id,
            action=Action.AUTOMATION_RULE_CHANGED,
            actor_user=actor_user,
            actor_api_key=actor_api_key,
            target_type="instagram_account",
            target_id=account.pk,
            detail={"fields": ["position"], "rules": len(rule_ids)},
        )
    return [rules[i] for i in rule_ids]


def rule_move(
    *, rule: Rule, step: int, actor_user: User | None = None, actor_api_key: ApiKey | None = None
) -> None:
    """Move a rule one place up (``step=-1``) or down (``step=1``) in its account's order."""
    order = list(Rule.objects.filter(account_id=rule.account_id).values_list("pk", flat=True))
    index = order.index(rule.pk)
    target = index + (1 if step > 0 else -1)
    if not 0 <= target < len(order):
        return
    order[index], order[target] = order[target], order[index]
    rules_reorder(
        account=rule.account, rule_ids=order, actor_user=actor_user, actor_api_key=actor_api_key
    )


# -- the account's automation settings --------------------------------------------------------


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def timezone_clean(value: Any) -> str:
    zone = _text(value)
    if zone not in _zones():
        raise AutomationError(
            "timezone_invalid",
            "Choose a time zone by its IANA name, such as Europe/Lisbon or America/New_York.",
            "timezone",
        )
    return zone


def _minutes(value: Any, *, end: bool) -> int:
    if end and value == "24:00":
        return 24 * 60
    match = _TIME.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise AutomationError(
            "hours_invalid", f"{value!r} is not a time: use HH:MM, 00:00 to 23:59.", "hours"
        )
    return int(match[1]) * 60 + int(match[2])


def hours_clean(value: Any) -> dict[str, list[list[str]]]:
    """``{"mon": [["09:00", "17:30"]], ...}``: spans sorted, none overlapping, empty days left out.

    A span ends after it starts (``24:00`` ends at midnight); at most 4 spans a day.
    """
    if value in (None, ""):
        return {}
    if not isinstance(value, dict):
        raise AutomationError("hours_invalid", "Business hours map weekdays to spans.", "hours")
    unknown = sorted(set(value) - set(DAYS))
    if unknown:
        raise AutomationError(
            "hours_invalid", f"Unknown days {', '.join(unknown)}: use mon to sun.", "hours"
        )
    cleaned: dict[str, list[list[str]]] = {}
    for day in DAYS:
        spans = value.get(day) or []
        if not isinstance(spans, list) or len(spans) > MAX_SPANS_PER_DAY:
            raise AutomationError(
                "hours_invalid", f"{day}: at most {MAX_SPANS_PER_DAY} spans a day.", "hours"
            )
        parsed: list[tuple[int, int, list[str]]] = []
        for span in spans:
            if not isinstance(span, list | tuple) or len(span) != 2:
                raise AutomationError(
                    "hours_invalid", f"{day}: each span is [start, end].", "hours"
                )
            start, stop = _minutes(span[0], end=False), _minutes(span[1], end=True)
            if stop <= start:
                raise AutomationError(
                    "hours_invalid",
                    f"{day}: {span[0]} to {span[1]} ends before it starts.",
                    "hours",
                )
            parsed.append((start, stop, [str(span[0]), str(span[1])]))
        parsed.sort()
        for before, after in pairwise(parsed):
            if after[0] < before[1]:
                raise AutomationError("hours_invalid", f"{day}: spans overlap.", "hours")
        if parsed:
            cleaned[day] = [span for _, _, span in parsed]
    return cleaned


def ice_breakers_clean(value: Any) -> list[dict[str, str]]:
    if value in (None, ""):
        return []
    if not isinstance(value, list) or len(value) > MAX_ICE_BREAKERS:
        raise AutomationError(
            "ice_breakers_invalid", f"At most {MAX_ICE_BREAKERS} ice breakers.", "ice_breakers"
        )
    cleaned = []
    for item in value:
        if not isinstance(item, dict):
            raise AutomationError(
                "ice_breakers_invalid",
                "Each ice breaker is a question and a payload.",
                "ice_breakers",
            )
        question = " ".join(_text(item.get("question")).split())
        payload = _text(item.get("payload"))
        if not 0 < len(question) <= MAX_ICE_BREAKER_QUESTION:
            raise AutomationError(
                "ice_breakers_invalid",
                f"An ice breaker's question is 1 to {MAX_ICE_BREAKER_QUESTION} characters.",
                "ice_breakers",
            )
        if not 0 < len(payload) <= MAX_PAYLOAD:
            raise AutomationError(
                "ice_breakers_invalid",
                f"An ice breaker's payload is 1 to {MAX_PAYLOAD} characters.",
                "ice_breakers",
            )
        cleaned.append({"question": question, "payload": payload})
    return cleaned


def persistent_menu_clean(value: Any) -> list[dict[str, str]]:
    if value in (None, ""):
        return []
    if not isinstance(value, list) or len(value) > MAX_MENU_ITEMS:
        raise AutomationError(
            "menu_invalid", f"At most {MAX_MENU_ITEMS} menu items.", "persistent_menu"
        )
    cleaned = []
    for item in value:
        if not isinstance(item, dict):
            raise AutomationError("menu_invalid", "Each menu item is an object.", "persistent_menu")
        kind = item.get("type")
        title = " ".join(_text(item.get("title")).split())
        if not 0 < len(title) <= MAX_MENU_TITLE:
            raise AutomationError(
                "menu_invalid",
                f"A menu item's title is 1 to {MAX_MENU_TITLE} characters.",
                "persistent_menu",
            )
        if kind == "postback":
            payload = _text(item.get("payload"))
            if not 0 < len(payload) <= MAX_PAYLOAD:
                raise AutomationError(
                    "menu_invalid",
                    f"A postback item's payload is 1 to {MAX_PAYLOAD} characters.",
                    "persistent_menu",
                )
            cleaned.append({"type": "postback", "title": title, "payload": payload})
        elif kind == "web_url":
            url = _text(item.get("url"))
            if not url.startswith("https://") or len(url) > MAX_URL:
                raise AutomationError(
                    "menu_invalid", "A link item's url is an https URL.", "persistent_menu"
                )
            cleaned.append({"type": "web_url", "title": title, "url": url})
        else:
            raise AutomationError(
                "menu_invalid",
                "Instagram's menu takes postback and web_url items only.",
                "persistent_menu",
            )
    return cleaned


_SETTINGS_CLEANERS = {
    "timezone": timezone_clean,
    "hours": hours_clean,
    "ice_breakers": ice_breakers_clean,
    "persistent_menu": persistent_menu_clean,
}
PROFILE_FIELDS = ("ice_breakers", "persistent_menu")


def _bool(value: Any, field_name: str) -> bool:
    if not isinstance(value, bool):
        raise AutomationError("settings_invalid", "Give true or false.", field_name)
    return value


def account_automation_update(
    *,
    account: InstagramAccount,
    changes: dict[str, Any],
    actor_user: User | None = None,
    actor_api_key: ApiKey | None = None,
) -> AccountAutomation:
    """Change the account's automation settings given in ``changes`` (the others stay).

    Keys: ``timezone``, ``hours``, ``resolve_returns_to_automation``, ``ice_breakers``,
    ``persistent_menu``. A changed ice breaker list or menu is synced to Meta after commit.
    """
    allowed = {*_SETTINGS_CLEANERS, "resolve_returns_to_automation"}
    unknown = sorted(set(changes) - allowed)
    if unknown:
        raise AutomationError("settings_invalid", f"Unknown settings: {', '.join(unknown)}.")
    cleaned: dict[str, Any] = {}
    for name, value in changes.items():
        if name == "resolve_returns_to_automation":
            cleaned[name] = _bool(value, name)
        else:
            cleaned[name] = _SETTINGS_CLEANERS[name](value)
    with transaction.atomic():
        row, _ = AccountAutomation.objects.select_for_update().get_or_create(
            account=account, defaults={"tenant_id": account.tenant_id}
        )
        changed = sorted(n for n, v in cleaned.items() if getattr(row, n) != v)
        if not changed:
            return row
        for name in changed:
            setattr(row, name, cleaned[name])
        profile_changed = any(n in PROFILE_FIELDS for n in changed)
        if profile_changed:
            row.profile_synced_at = None
            row.profile_sync_error = ""
        row.save()
        audit_record(
            tenant=account.tenant_id,
            action=Action.AUTOMATION_SETTINGS_CHANGED,
            actor_user=actor_user,
            actor_api_key=actor_api_key,
            target_type="instagram_account",
            target_id=account.pk,
            detail={
                "fields": changed,
                "timezone": row.timezone,
                "days_with_hours": len(row.hours),
                "ice_breakers": len(row.ice_breakers),
                "menu_items": len(row.persistent_menu),
                "resolve_returns_to_automation": row.resolve_returns_to_automation,
            },
        )
        if profile_changed:
            transaction.on_commit(partial(profile_sync_enqueue, account.tenant_id, account.pk))
    return row


def profile_sync_enqueue(tenant_id: int, account_id: int) -> None:
    """Queue the sync with Meta; a broker problem leaves the status "waiting" to retry by hand."""
    from automation import tasks_profile

    try:
        tasks_profile.account_profile_sync.apply_async(args=(tenant_id, account_id), retry=False)
    except Exception:
        logger.warning("profile sync of account %s not queued", account_id, exc_info=True)


def account_profile_resync(
    *,
    account: InstagramAccount,
    actor_user: User | None = None,
    actor_api_key: ApiKey | None = None,
) -> AccountAutomation:
    """Send the ice breakers and menu to Meta again (after reconnecting, or a failed sync)."""
    with transaction.atomic():
        row, _ = AccountAutomation.objects.select_for_update().get_or_create(
            account=account, defaults={"tenant_id": account.tenant_id}
        )
        row.profile_synced_at = None
        row.profile_sync_error = ""
        row.save(update_fields=["profile_synced_at", "profile_sync_error", "updated_at"])
        transaction.on_commit(partial(profile_sync_enqueue, account.tenant_id, account.pk))
    return row
