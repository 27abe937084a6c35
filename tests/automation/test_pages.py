"""Automation pages: rules in order, the rule form, history, business hours, ice breakers and
menu; the inbox's mode badge and take-over button. Admins manage; agents and viewers read."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import pytest
from django.test import Client
from django_scopes import scope

from accounts.models import InstagramAccount, Membership, Role, Tenant, User
from automation import services, tasks_profile
from automation.models import AccountAutomation, Rule, RuleRun
from messaging.models import Conversation
from tests.factories import InstagramAccountFactory
from tests.messaging.factories import ConversationFactory, MessageFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def account(tenant: Tenant) -> InstagramAccount:
    return InstagramAccountFactory(tenant=tenant, username="acme.store")


@pytest.fixture(autouse=True)
def broker() -> Iterator[mock.MagicMock]:
    with mock.patch.object(tasks_profile.account_profile_sync, "apply_async") as publish:
        yield publish


@pytest.fixture
def admin(tenant: Tenant, make_member: Callable[..., Membership], login: Any) -> Client:
    client: Client = login(make_member(tenant, Role.ADMIN).user)
    return client


@pytest.fixture
def agent(tenant: Tenant, make_member: Callable[..., Membership], login: Any) -> Client:
    client: Client = login(make_member(tenant, Role.AGENT).user)
    return client


def _rule(account: InstagramAccount, **values: Any) -> Rule:
    values = {
        "name": "Price",
        "trigger": "keyword",
        "keywords": ["price"],
        "actions": [{"type": "reply_text", "text": "Prices are on our site."}],
    } | values
    with scope(tenant=account.tenant):
        return services.rule_create(account=account, values=values).rule


FORM = {
    "name": "Shipping question",
    "trigger": "keyword",
    "match_mode": "contains",
    "keywords": "shipping, delivery",
    "cooldown_minutes": "90",
    "enabled": "on",
    "stop_after": "on",
    "action_count": "3",
    "action-0-type": "reply_quick_replies",
    "action-0-text": "We ship worldwide. Anything else?",
    "action-0-quick_replies": "Track my order | TRACK\nTalk to someone",
    "action-1-type": "label",
    "action-1-label": "shipping",
    "action-2-type": "",
}


def test_the_overview_lists_rules_in_order_with_their_trigger(
    admin: Client, account: InstagramAccount
) -> None:
    _rule(account, name="Price")
    _rule(account, name="Hello", trigger="new_conversation", keywords=[])
    page = admin.get(f"/automation/accounts/{account.pk}/")
    html = page.content.decode()
    assert page.status_code == 200
    assert html.index("Price") < html.index("Hello")
    assert "A message contains “price”" in html
    assert "A new conversation starts" in html
    assert 'data-testid="new-rule"' in html
    assert admin.get("/automation/").status_code == 302  # one account: straight to it


def test_an_admin_creates_a_rule_from_the_form(admin: Client, account: InstagramAccount) -> None:
    form_page = admin.get(f"/automation/accounts/{account.pk}/rules/new/")
    assert form_page.status_code == 200
    response = admin.post(f"/automation/accounts/{account.pk}/rules/new/", FORM)
    assert response.status_code == 302
    with scope(tenant=account.tenant):
        rule = Rule.objects.get()
    assert rule.keywords == ["shipping", "delivery"]
    assert rule.cooldown.total_seconds() == 90 * 60
    assert rule.actions == [
        {
            "type": "reply_quick_replies",
            "text": "We ship worldwide. Anything else?",
            "quick_replies": [
                {"title": "Track my order", "payload": "TRACK"},
                {"title": "Talk to someone", "payload": "Talk to someone"},
            ],
        },
        {"type": "label", "label": "shipping"},
    ]


def test_a_refused_form_is_shown_again_with_the_reason(
    admin: Client, account: InstagramAccount
) -> None:
    response = admin.post(
        f"/automation/accounts/{account.pk}/rules/new/",
        {**FORM, "match_mode": "regex", "pattern": "(unclosed"},
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert "not a valid regular expression" in html
    assert "Shipping question" in html  # what was typed stays
    with scope(tenant=account.tenant):
        assert not Rule.objects.exists()


def test_a_partner_bot_rule_shows_its_secret_once(admin: Client, account: InstagramAccount) -> None:
    response = admin.post(
        f"/automation/accounts/{account.pk}/rules/new/",
        {
            **FORM,
            "action-0-type": "partner_bot",
            "action-0-url": "https://bot.example.com/hook",
            "action-1-type": "",
        },
    )
    assert response.status_code == 200
    with scope(tenant=account.tenant):
        secret = Rule.objects.get().bot_secret
    assert secret in response.content.decode()
    assert secret not in admin.get(f"/automation/accounts/{account.pk}/").content.decode()


def test_edit_toggle_move_and_delete(admin: Client, account: InstagramAccount) -> None:
    first, second = _rule(account, name="First"), _rule(account, name="Second")
    edit = admin.get(f"/automation/rules/{first.pk}/")
    assert "Prices are on our site." in edit.content.decode()
    saved = admin.post(f"/automation/rules/{first.pk}/", {**FORM, "name": "First renamed"})
    assert saved.status_code == 302
    assert admin.post(f"/automation/rules/{first.pk}/toggle/", {}).status_code == 302
    admin.post(f"/automation/rules/{second.pk}/move/", {"direction": "up"})
    with scope(tenant=account.tenant):
        assert list(Rule.objects.values_list("name", "enabled")) == [
            ("Second", True),
            ("First renamed", False),
        ]
    confirm = admin.get(f"/automation/rules/{first.pk}/delete/")
    assert "Delete “First renamed”?" in confirm.content.decode()
    assert admin.post(f"/automation/rules/{first.pk}/delete/").status_code == 302
    with scope(tenant=account.tenant):
        assert list(Rule.objects.values_list("name", flat=True)) == ["Second"]


def test_agents_read_but_do_not_change(agent: Client, account: InstagramAccount) -> None:
    rule = _rule(account)
    assert agent.get(f"/automation/accounts/{account.pk}/").status_code == 200
    assert (
        'data-testid="new-rule"'
        not in agent.get(f"/automation/accounts/{account.pk}/").content.decode()
    )
    assert agent.get(f"/automation/rules/{rule.pk}/").status_code == 200
    assert agent.get(f"/automation/rules/{rule.pk}/history/").status_code == 200
    assert agent.get(f"/automation/accounts/{account.pk}/hours/").status_code == 200
    assert agent.get(f"/automation/accounts/{account.pk}/profile/").status_code == 200
    refused = [
        agent.post(f"/automation/accounts/{account.pk}/rules/new/", FORM),
        agent.post(f"/automation/rules/{rule.pk}/", FORM),
        agent.post(f"/automation/rules/{rule.pk}/toggle/"),
        agent.post(f"/automation/rules/{rule.pk}/delete/"),
        agent.post(f"/automation/accounts/{account.pk}/hours/", {"timezone": "UTC"}),
        agent.post(f"/automation/accounts/{account.pk}/profile/", {"ice-0-question": "Q"}),
    ]
    assert [r.status_code for r in refused] == [403] * 6
    with scope(tenant=account.tenant):
        assert Rule.objects.get().enabled is True


def test_history_shows_who_when_what_was_sent_and_why_not(
    admin: Client, account: InstagramAccount
) -> None:
    rule = _rule(account)
    conversation = ConversationFactory(account=account)
    sent = MessageFactory(conversation=conversation, direction="out", text="Prices are here.")
    with scope(tenant=account.tenant):
        RuleRun.objects.create(
            tenant_id=account.tenant_id,
            rule=rule,
            account=account,
            contact=conversation.contact,
            conversation=conversation,
            source="message:1",
            outcome=RuleRun.Outcome.FIRED,
            done=[{"action": "reply_text", "message_id": sent.pk}],
        )
        RuleRun.objects.create(
            tenant_id=account.tenant_id,
            rule=rule,
            account=account,
            contact=conversation.contact,
            conversation=conversation,
            source="message:2",
            outcome=RuleRun.Outcome.SKIPPED,
            reason_code="cooldown",
            reason="Answered this customer less than 24 hours ago.",
        )
    html = admin.get(f"/automation/rules/{rule.pk}/history/").content.decode()
    assert f"/inbox/{conversation.pk}/" in html
    assert f"@{conversation.contact.username}" in html
    assert "Prices are here." in html
    assert "Answered this customer less than 24 hours ago." in html
    assert "Skipped" in html


def test_business_hours_are_saved_and_refusals_explained(
    admin: Client, account: InstagramAccount
) -> None:
    url = f"/automation/accounts/{account.pk}/hours/"
    page = admin.get(url).content.decode()
    assert "Add an away message" in page
    saved = admin.post(
        url,
        {
            "timezone": "Europe/Lisbon",
            "hours-mon": "13:30-18:00, 09:00-12:30",
            "hours-sat": "10:00-14:00",
            "resolve_returns_to_automation": "on",
        },
    )
    assert saved.status_code == 302
    with scope(tenant=account.tenant):
        row = AccountAutomation.objects.get()
    assert row.hours == {
        "mon": [["09:00", "12:30"], ["13:30", "18:00"]],
        "sat": [["10:00", "14:00"]],
    }
    assert row.timezone == "Europe/Lisbon"
    refused = admin.post(url, {"timezone": "Europe/Lisbon", "hours-tue": "9 to 5"})
    assert refused.status_code == 400
    assert "is not a time" in refused.content.decode()


def test_ice_breakers_and_menu_are_saved_and_synced_after_commit(
    admin: Client,
    account: InstagramAccount,
    broker: mock.MagicMock,
    django_capture_on_commit_callbacks: Any,
) -> None:
    url = f"/automation/accounts/{account.pk}/profile/"
    with django_capture_on_commit_callbacks(execute=True):
        response = admin.post(
            url,
            {
                "ice-0-question": "Where is my order?",
                "ice-0-payload": "ORDER",
                "ice-1-question": "Do you ship abroad?",
                "ice-1-payload": "SHIPPING",
                "menu_count": "2",
                "menu-0-type": "postback",
                "menu-0-title": "Track order",
                "menu-0-value": "TRACK",
                "menu-1-type": "web_url",
                "menu-1-title": "Shop",
                "menu-1-value": "https://shop.example.com",
            },
        )
    assert response.status_code == 302
    broker.assert_called_once_with(args=(account.tenant_id, account.pk), retry=False)
    with scope(tenant=account.tenant):
        row = AccountAutomation.objects.get()
    assert [i["payload"] for i in row.ice_breakers] == ["ORDER", "SHIPPING"]
    assert row.persistent_menu[1] == {
        "type": "web_url",
        "title": "Shop",
        "url": "https://shop.example.com",
    }
    page = admin.get(url).content.decode()
    assert 'data-status="pending"' in page
    with scope(tenant=account.tenant):
        AccountAutomation.objects.update(profile_sync_error="Instagram refused the change.")
    assert "Not synced: Instagram refused the change." in admin.get(url).content.decode()
    too_many = admin.post(url, {f"ice-{i}-question": "Q" for i in range(4)})
    assert too_many.status_code == 400


def test_the_thread_header_shows_the_mode_and_flips_it(
    tenant: Tenant, account: InstagramAccount, login: Any, make_member: Callable[..., Membership]
) -> None:
    agent_user: User = make_member(tenant, Role.AGENT).user
    client: Client = login(agent_user)
    conversation = ConversationFactory(account=account)
    page = client.get(f"/inbox/{conversation.pk}/").content.decode()
    assert 'data-mode="automation"' in page
    assert "Take over" in page
    assert client.post(f"/inbox/{conversation.pk}/mode/", {"mode": "human"}).status_code == 302
    with scope(tenant=tenant):
        assert Conversation.objects.get(pk=conversation.pk).mode == "human"
    page = client.get(f"/inbox/{conversation.pk}/").content.decode()
    assert 'data-mode="human"' in page
    assert "Hand back to automation" in page
    htmx = client.post(
        f"/inbox/{conversation.pk}/mode/", {"mode": "automation"}, HTTP_HX_REQUEST="true"
    )
    assert htmx.status_code == 200
    assert 'data-mode="automation"' in htmx.content.decode()
    viewer: Client = login(make_member(tenant, Role.VIEWER).user)
    assert viewer.post(f"/inbox/{conversation.pk}/mode/", {"mode": "human"}).status_code == 403


def test_another_workspaces_ids_answer_404_on_every_page(
    admin: Client, other_tenant: Tenant
) -> None:
    theirs = InstagramAccountFactory(tenant=other_tenant)
    with scope(tenant=other_tenant):
        rule = services.rule_create(
            account=theirs,
            values={
                "name": "Theirs",
                "trigger": "keyword",
                "keywords": ["x"],
                "actions": [{"type": "reply_text", "text": "their words"}],
            },
        ).rule
    conversation = ConversationFactory(account=theirs)
    urls = [
        f"/automation/accounts/{theirs.pk}/",
        f"/automation/accounts/{theirs.pk}/rules/new/",
        f"/automation/accounts/{theirs.pk}/hours/",
        f"/automation/accounts/{theirs.pk}/profile/",
        f"/automation/rules/{rule.pk}/",
        f"/automation/rules/{rule.pk}/history/",
        f"/automation/rules/{rule.pk}/delete/",
    ]
    read_only = {f"/automation/accounts/{theirs.pk}/", f"/automation/rules/{rule.pk}/history/"}
    for url in urls:
        assert admin.get(url).status_code == 404, url
        if url not in read_only:  # these take no POST (405 for every id)
            assert admin.post(url, FORM).status_code == 404, url
    for url in (f"/automation/rules/{rule.pk}/toggle/", f"/automation/rules/{rule.pk}/move/"):
        assert admin.post(url).status_code == 404
    assert admin.post(f"/inbox/{conversation.pk}/mode/", {"mode": "human"}).status_code == 404
    with scope(tenant=other_tenant):
        assert Rule.objects.get(pk=rule.pk).name == "Theirs"
        assert Conversation.objects.get(pk=conversation.pk).mode == "automation"


# str.isdigit() is true for superscripts and circled digits, which int() refuses; a 5,000-digit
# number is more than int() reads. Each is treated like any other count or id that is not one.
@pytest.mark.parametrize("value", ["\u00b2", "\u2460", "9" * 5000])
def test_counts_and_ids_that_are_not_ascii_digits_are_treated_like_any_bad_value(
    admin: Client, account: InstagramAccount, value: str
) -> None:
    admin.raise_request_exception = False  # a crash is answered 500, as in production
    rule = _rule(account)
    new = f"/automation/accounts/{account.pk}/rules/new/"
    profile = f"/automation/accounts/{account.pk}/profile/"
    menu = {"menu-0-type": "postback", "menu-0-title": "Track order", "menu-0-value": "TRACK"}
    assign = {**FORM, "action-0-type": "assign", "action-0-membership_id": value}
    answers = {
        "action_count": admin.post(new, {**FORM, "action_count": value}),
        "membership_id": admin.post(new, assign),
        "menu_count": admin.post(profile, {"menu_count": value, **menu}),
        "before": admin.get(f"/automation/rules/{rule.pk}/history/", {"before": value}),
    }
    codes = {name: response.status_code for name, response in answers.items()}
    assert codes == {"action_count": 302, "membership_id": 400, "menu_count": 302, "before": 200}
    assert "Choose the teammate to assign" in answers["membership_id"].content.decode()
    with scope(tenant=account.tenant):
        assert AccountAutomation.objects.get().persistent_menu[0]["payload"] == "TRACK"
