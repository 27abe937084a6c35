"""Managing automation: rules and their actions checked against Meta's limits, account settings,
the audit log, and the sync of ice breakers and the persistent menu to Meta."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
import responses
from django_scopes import scope

from accounts.models import AuditEntry, InstagramAccount, Membership, Role, Tenant
from automation import services, tasks_profile
from automation.models import AccountAutomation, Rule
from automation.services import AutomationError
from tests.factories import InstagramAccountFactory, MembershipFactory

pytestmark = pytest.mark.django_db

PROFILE_URL = "https://graph.facebook.com/v25.0/1234567890/messenger_profile"
TEXT = [{"type": "reply_text", "text": "Thanks for writing!"}]


@pytest.fixture
def account(tenant: Tenant) -> InstagramAccount:
    return InstagramAccountFactory(tenant=tenant, page_id="1234567890", access_token="EAAG-token")


@pytest.fixture
def scoped(tenant: Tenant) -> Iterator[None]:
    with scope(tenant=tenant):
        yield


def _refused(code: str, trigger: str, actions: Any) -> None:
    with pytest.raises(AutomationError) as caught:
        services.actions_clean(trigger, actions)
    assert caught.value.code == code


def _rule(account: InstagramAccount, **values: Any) -> Rule:
    values = {
        "name": "Price",
        "trigger": "keyword",
        "keywords": ["price"],
        "actions": TEXT,
    } | values
    return services.rule_create(account=account, values=values).rule


# -- actions -----------------------------------------------------------------------------------


@pytest.mark.usefixtures("scoped")
def test_reply_text_is_limited_to_1000_bytes_of_utf8() -> None:
    assert services.actions_clean("keyword", [{"type": "reply_text", "text": "é" * 500}])
    _refused("action_field_invalid", "keyword", [{"type": "reply_text", "text": "é" * 501}])
    _refused("action_field_invalid", "keyword", [{"type": "reply_text", "text": "   "}])


@pytest.mark.usefixtures("scoped")
def test_quick_replies_follow_metas_limits() -> None:
    def qr(n: int, title: str = "Yes", payload: str = "YES") -> list[dict[str, Any]]:
        options = [{"title": title, "payload": payload}] * n
        return [{"type": "reply_quick_replies", "text": "Pick one", "quick_replies": options}]

    cleaned = services.actions_clean("keyword", qr(13))
    assert len(cleaned[0]["quick_replies"]) == 13
    _refused("action_field_invalid", "keyword", qr(14))
    _refused("action_field_invalid", "keyword", qr(1, title="x" * 21))
    _refused("action_field_invalid", "keyword", qr(1, payload="x" * 1001))
    _refused("action_field_invalid", "keyword", qr(0))


@pytest.mark.usefixtures("scoped")
def test_template_cards_are_checked_like_any_outbound_template() -> None:
    card = {
        "title": "Linen shirt",
        "subtitle": "€49",
        "image_url": "https://shop.example.com/shirt.jpg",
        "buttons": [{"type": "web_url", "title": "Buy", "url": "https://shop.example.com/shirt"}],
        "unknown": "dropped",
    }
    cleaned = services.actions_clean("keyword", [{"type": "reply_template", "elements": [card]}])
    assert cleaned == [
        {
            "type": "reply_template",
            "elements": [{k: v for k, v in card.items() if k != "unknown"}],
        }
    ]
    too_long = {**card, "title": "x" * 81}
    _refused(
        "action_field_invalid", "keyword", [{"type": "reply_template", "elements": [too_long]}]
    )
    plain_http = {**card, "buttons": [{"type": "web_url", "title": "Buy", "url": "http://x.io"}]}
    _refused(
        "action_field_invalid", "keyword", [{"type": "reply_template", "elements": [plain_http]}]
    )
    _refused("action_field_invalid", "keyword", [{"type": "reply_template", "elements": []}])


@pytest.mark.usefixtures("scoped")
def test_private_reply_only_answers_comments() -> None:
    private = [{"type": "private_reply", "text": "Sent you the price in Direct!"}]
    assert services.actions_clean("comment", private) == private
    _refused("action_not_allowed", "keyword", private)
    _refused("action_not_allowed", "comment", TEXT)


@pytest.mark.usefixtures("scoped")
def test_assign_needs_a_member_of_this_workspace_who_can_answer(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    agent = MembershipFactory(tenant=tenant, role=Role.AGENT)
    viewer = MembershipFactory(tenant=tenant, role=Role.VIEWER)
    theirs: Membership = MembershipFactory(tenant=other_tenant, role=Role.AGENT)
    assert services.actions_clean("keyword", [{"type": "assign", "membership_id": agent.pk}]) == [
        {"type": "assign", "membership_id": agent.pk}
    ]
    for member_id in (viewer.pk, theirs.pk, 2_147_000_001, "someone", "\u00b2", "9" * 5000):
        _refused("assignee_invalid", "keyword", [{"type": "assign", "membership_id": member_id}])


@pytest.mark.usefixtures("scoped")
def test_partner_bot_urls_must_be_public(settings: Any) -> None:
    _refused("bot_url_not_allowed", "keyword", [{"type": "partner_bot", "url": "ftp://bot.io/x"}])
    _refused("bot_url_not_allowed", "keyword", [{"type": "partner_bot", "url": ""}])
    settings.CALLBACKS_ALLOW_PRIVATE_URLS = False
    _refused(
        "bot_url_not_allowed", "keyword", [{"type": "partner_bot", "url": "http://127.0.0.1/b"}]
    )
    bot = [{"type": "partner_bot", "url": "https://bot.example.com/hook"}]
    assert services.actions_clean("keyword", bot) == bot
    _refused("actions_invalid", "keyword", bot * 2)


@pytest.mark.usefixtures("scoped")
def test_unknown_or_missing_actions_are_refused() -> None:
    _refused("actions_invalid", "keyword", [])
    _refused("actions_invalid", "keyword", [{"type": "teleport"}])
    _refused("actions_invalid", "keyword", ["reply_text"])
    _refused("actions_invalid", "keyword", TEXT * 11)
    _refused("action_field_invalid", "keyword", [{"type": "label", "label": "x" * 41}])


# -- rules -------------------------------------------------------------------------------------


@pytest.mark.usefixtures("scoped")
def test_rules_are_created_in_order_and_audited_without_their_text(
    account: InstagramAccount,
) -> None:
    first = _rule(account)
    second = _rule(account, name="Hello", trigger="new_conversation")
    assert (first.position, second.position) == (0, 1)
    assert second.keywords == []  # matching fields of other triggers are not kept
    entry = AuditEntry.objects.filter(action="automation.rule_created").latest("id")
    assert entry.detail == {
        "account_id": account.pk,
        "trigger": "new_conversation",
        "actions": ["reply_text"],
        "enabled": True,
    }
    assert "Thanks" not in json.dumps(entry.detail)


@pytest.mark.usefixtures("scoped")
@pytest.mark.parametrize(
    ("values", "code"),
    [
        ({"name": " "}, "name_invalid"),
        ({"trigger": "birthday"}, "trigger_invalid"),
        ({"keywords": []}, "keywords_invalid"),
        ({"keywords": ["x" * 101]}, "keywords_invalid"),
        ({"match_mode": "regex", "pattern": "(unclosed"}, "pattern_invalid"),
        ({"match_mode": "regex", "pattern": ""}, "pattern_invalid"),
        ({"match_mode": "fuzzy"}, "match_mode_invalid"),
        ({"cooldown": -1}, "cooldown_invalid"),
        ({"cooldown": int(timedelta(days=31).total_seconds())}, "cooldown_invalid"),
        ({"cooldown": "soon"}, "cooldown_invalid"),
        ({"trigger": "payload"}, "payload_invalid"),
        ({"trigger": "comment", "keywords": [], "media_id": ""}, "keywords_invalid"),
        ({"trigger": "comment", "media_id": "abc"}, "media_invalid"),
        ({"trigger": "comment", "media_id": "\u2460"}, "media_invalid"),  # CIRCLED DIGIT ONE
        ({"trigger": "comment", "media_id": "\u0661\u0667"}, "media_invalid"),  # Arabic-Indic
        ({"enabled": "yes"}, "rule_invalid"),
    ],
)
def test_bad_rules_are_refused_with_a_stable_code(
    account: InstagramAccount, values: dict[str, Any], code: str
) -> None:
    if values.get("trigger") == "comment":
        values["actions"] = [{"type": "private_reply", "text": "See your DMs"}]
    with pytest.raises(AutomationError) as caught:
        _rule(account, **values)
    assert caught.value.code == code
    assert not Rule.objects.exists()


@pytest.mark.usefixtures("scoped")
def test_keywords_are_trimmed_and_deduplicated(account: InstagramAccount) -> None:
    rule = _rule(account, keywords="Price,  how   much ,price,\nPRICE")
    assert rule.keywords == ["Price", "how much"]


@pytest.mark.usefixtures("scoped")
def test_a_partner_bot_rule_gets_a_secret_shown_once(account: InstagramAccount) -> None:
    bot = [{"type": "partner_bot", "url": "https://bot.example.com/hook"}]
    saved = services.rule_create(
        account=account,
        values={"name": "Bot", "trigger": "new_conversation", "actions": bot},
    )
    assert saved.new_bot_secret.startswith("botsec_")
    assert saved.rule.bot_secret == saved.new_bot_secret
    again = services.rule_update(rule=saved.rule, changes={"name": "Bot 2"})
    assert again.new_bot_secret == ""
    assert again.rule.bot_secret == saved.new_bot_secret
    dropped = services.rule_update(rule=saved.rule, changes={"actions": TEXT})
    assert dropped.rule.bot_secret == ""
    entry = AuditEntry.objects.filter(action="automation.rule_changed").latest("id")
    assert saved.new_bot_secret not in json.dumps(entry.detail)


@pytest.mark.usefixtures("scoped")
def test_updating_the_trigger_checks_the_rule_whole_again(account: InstagramAccount) -> None:
    rule = _rule(account)
    with pytest.raises(AutomationError) as caught:
        services.rule_update(rule=rule, changes={"trigger": "payload"})
    assert caught.value.code == "payload_invalid"
    saved = services.rule_update(rule=rule, changes={"trigger": "payload", "payload": "HUMAN"})
    assert (saved.rule.trigger, saved.rule.payload, saved.rule.keywords) == ("payload", "HUMAN", [])
    with pytest.raises(AutomationError) as caught:
        services.rule_update(rule=rule, changes={"bot_secret": "mine"})
    assert caught.value.code == "rule_invalid"


@pytest.mark.usefixtures("scoped")
def test_enable_reorder_and_delete(account: InstagramAccount) -> None:
    a, b, c = _rule(account, name="A"), _rule(account, name="B"), _rule(account, name="C")
    services.rule_enable(rule=b, enabled=False)
    assert Rule.objects.get(pk=b.pk).enabled is False
    services.rules_reorder(account=account, rule_ids=[c.pk, a.pk, b.pk])
    assert list(Rule.objects.filter(account=account).values_list("name", flat=True)) == [
        "C",
        "A",
        "B",
    ]
    services.rule_move(rule=Rule.objects.get(pk=b.pk), step=-1)
    assert list(Rule.objects.values_list("name", flat=True)) == ["C", "B", "A"]
    with pytest.raises(AutomationError):
        services.rules_reorder(account=account, rule_ids=[a.pk, a.pk, b.pk])
    services.rule_delete(rule=a)
    assert list(Rule.objects.values_list("name", flat=True)) == ["C", "B"]
    assert AuditEntry.objects.filter(action="automation.rule_deleted").count() == 1


# -- account settings --------------------------------------------------------------------------


@pytest.mark.usefixtures("scoped")
def test_hours_are_checked_and_sorted(account: InstagramAccount) -> None:
    row = services.account_automation_update(
        account=account,
        changes={
            "timezone": "Europe/Lisbon",
            "hours": {"mon": [["13:30", "18:00"], ["09:00", "12:30"]], "sun": [], "fri": []},
        },
    )
    assert row.timezone == "Europe/Lisbon"
    assert row.hours == {"mon": [["09:00", "12:30"], ["13:30", "18:00"]]}
    entry = AuditEntry.objects.get(action="automation.settings_changed")
    assert entry.detail["fields"] == ["hours", "timezone"]


@pytest.mark.usefixtures("scoped")
@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"timezone": "Mars/Olympus"}, "timezone_invalid"),
        ({"timezone": "../../etc/passwd"}, "timezone_invalid"),
        ({"hours": {"mon": [["09:00", "25:00"]]}}, "hours_invalid"),
        ({"hours": {"mon": [["0\u0669:00", "17:00"]]}}, "hours_invalid"),  # Arabic-Indic 9
        ({"hours": {"mon": [["09:00\n", "17:00"]]}}, "hours_invalid"),
        ({"hours": {"mon": [["18:00", "09:00"]]}}, "hours_invalid"),
        ({"hours": {"mon": [["09:00", "12:00"], ["11:00", "13:00"]]}}, "hours_invalid"),
        ({"hours": {"monday": [["09:00", "12:00"]]}}, "hours_invalid"),
        ({"hours": {"mon": ["09:00"]}}, "hours_invalid"),
        ({"hours": ["mon"]}, "hours_invalid"),
        ({"ice_breakers": [{"question": "Q", "payload": "P"}] * 5}, "ice_breakers_invalid"),
        ({"ice_breakers": [{"question": "x" * 81, "payload": "P"}]}, "ice_breakers_invalid"),
        ({"ice_breakers": [{"question": "Q", "payload": ""}]}, "ice_breakers_invalid"),
        ({"persistent_menu": [{"type": "nested", "title": "More"}]}, "menu_invalid"),
        (
            {"persistent_menu": [{"type": "web_url", "title": "Shop", "url": "http://a.io"}]},
            "menu_invalid",
        ),
        (
            {"persistent_menu": [{"type": "postback", "title": "x" * 31, "payload": "P"}]},
            "menu_invalid",
        ),
        (
            {"persistent_menu": [{"type": "postback", "title": "T", "payload": "P"}] * 21},
            "menu_invalid",
        ),
        ({"resolve_returns_to_automation": "no"}, "settings_invalid"),
        ({"away_message": "Back at 9"}, "settings_invalid"),
    ],
)
def test_bad_settings_are_refused_with_a_stable_code(
    account: InstagramAccount, changes: dict[str, Any], code: str
) -> None:
    with pytest.raises(AutomationError) as caught:
        services.account_automation_update(account=account, changes=changes)
    assert caught.value.code == code
    assert not AccountAutomation.objects.exists()


@pytest.mark.usefixtures("scoped")
def test_a_profile_change_queues_its_sync_after_commit(
    account: InstagramAccount, django_capture_on_commit_callbacks: Any
) -> None:
    ice = [{"question": "Where is my order?", "payload": "ORDER"}]
    with (
        mock.patch.object(tasks_profile.account_profile_sync, "apply_async") as publish,
        django_capture_on_commit_callbacks(execute=True),
    ):
        row = services.account_automation_update(account=account, changes={"ice_breakers": ice})
        services.account_automation_update(account=account, changes={"ice_breakers": ice})
        services.account_automation_update(account=account, changes={"timezone": "UTC"})
    publish.assert_called_once_with(args=(account.tenant_id, account.pk), retry=False)
    assert row.profile_synced_at is None
    entry = AuditEntry.objects.get(action="automation.settings_changed")
    assert entry.detail["ice_breakers"] == 1
    assert "Where is my order" not in json.dumps(entry.detail)


# -- the sync with Meta ------------------------------------------------------------------------


def _with_profile(account: InstagramAccount, **values: Any) -> AccountAutomation:
    with scope(tenant=account.tenant):
        return AccountAutomation.objects.create(
            tenant_id=account.tenant_id, account=account, **values
        )


@responses.activate
def test_sync_sets_ice_breakers_and_deletes_an_empty_menu(account: InstagramAccount) -> None:
    _with_profile(account, ice_breakers=[{"question": "Where is my order?", "payload": "ORDER"}])
    responses.post(PROFILE_URL, json={"success": True})
    responses.delete(PROFILE_URL, json={"success": True})

    tasks_profile.account_profile_sync(account.tenant_id, account.pk)

    posted = json.loads(responses.calls[0].request.body or b"{}")
    assert posted["ice_breakers"] == [
        {
            "locale": "default",
            "call_to_actions": [{"question": "Where is my order?", "payload": "ORDER"}],
        }
    ]
    deleted = json.loads(responses.calls[1].request.body or b"{}")
    assert deleted["fields"] == ["persistent_menu"]
    with scope(tenant=account.tenant):
        row = AccountAutomation.objects.get()
    assert row.profile_synced_at is not None
    assert row.profile_sync_error == ""


@responses.activate
def test_a_dead_token_is_recorded_as_a_readable_reason(account: InstagramAccount) -> None:
    _with_profile(account, ice_breakers=[{"question": "Hi?", "payload": "HI"}])
    error = {"message": "Session invalidated", "type": "OAuthException", "code": 190}
    responses.post(PROFILE_URL, json={"error": error}, status=400)

    tasks_profile.account_profile_sync(account.tenant_id, account.pk)

    with scope(tenant=account.tenant):
        row = AccountAutomation.objects.select_related("account").get()
    assert row.profile_synced_at is None
    assert "reconnect the account" in row.profile_sync_error
    assert row.account.status == InstagramAccount.Status.NEEDS_REAUTH


@responses.activate
def test_sync_for_another_tenants_account_does_nothing(
    account: InstagramAccount, other_tenant: Tenant
) -> None:
    _with_profile(account, ice_breakers=[{"question": "Hi?", "payload": "HI"}])
    tasks_profile.account_profile_sync(other_tenant.pk, account.pk)
    assert len(responses.calls) == 0


def test_a_disconnected_account_is_not_synced(account: InstagramAccount) -> None:
    with scope(tenant=account.tenant):
        InstagramAccount.objects.filter(pk=account.pk).update(
            status=InstagramAccount.Status.DISCONNECTED
        )
    _with_profile(account, ice_breakers=[{"question": "Hi?", "payload": "HI"}])
    tasks_profile.account_profile_sync(account.tenant_id, account.pk)
    with scope(tenant=account.tenant):
        assert "disconnected" in AccountAutomation.objects.get().profile_sync_error
