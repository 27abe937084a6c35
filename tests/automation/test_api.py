"""The partner API of automation: rules, their history and an account's settings."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import pytest
from django_scopes import scope
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from accounts.models import ApiKey, ApiScope, AuditEntry, InstagramAccount, Tenant
from automation import tasks_profile
from automation.models import Rule, RuleRun
from tests.factories import InstagramAccountFactory
from tests.messaging.factories import ConversationFactory

pytestmark = pytest.mark.django_db

RULE = {
    "name": "Price question",
    "trigger": "keyword",
    "keywords": ["price", "how much"],
    "actions": [{"type": "reply_text", "text": "Our prices are on the site."}],
    "cooldown_seconds": 3600,
}


@pytest.fixture
def account(tenant: Tenant) -> InstagramAccount:
    return InstagramAccountFactory(tenant=tenant)


@pytest.fixture(autouse=True)
def broker() -> Iterator[mock.MagicMock]:
    with mock.patch.object(tasks_profile.account_profile_sync, "apply_async") as publish:
        yield publish


def _create(api: APIClient, account: InstagramAccount, **changes: Any) -> Any:
    return api.post(f"/api/v1/accounts/{account.pk}/rules", {**RULE, **changes}, format="json")


def test_a_rule_is_created_listed_changed_and_deleted(
    api_client: APIClient, account: InstagramAccount
) -> None:
    created = _create(api_client, account)
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["keywords"] == ["price", "how much"]
    assert body["cooldown_seconds"] == 3600
    assert body["bot_signing_key"] == ""
    assert body["last_fired_at"] is None
    second = _create(api_client, account, name="Greeting", trigger="new_conversation").json()

    listed = api_client.get(f"/api/v1/accounts/{account.pk}/rules").json()
    assert [r["name"] for r in listed["results"]] == ["Price question", "Greeting"]

    changed = api_client.patch(f"/api/v1/rules/{body['id']}", {"enabled": False}, format="json")
    assert changed.status_code == 200
    assert changed.json()["enabled"] is False
    assert api_client.get(f"/api/v1/rules/{body['id']}").json()["enabled"] is False

    assert api_client.delete(f"/api/v1/rules/{second['id']}").status_code == 204
    assert api_client.get(f"/api/v1/rules/{second['id']}").status_code == 404
    with scope(tenant=account.tenant):
        actions = set(AuditEntry.objects.values_list("action", flat=True))
    assert {"automation.rule_created", "automation.rule_changed", "automation.rule_deleted"} <= (
        actions
    )


def test_a_repeated_create_with_the_same_idempotency_key_makes_one_rule(
    api_client: APIClient, account: InstagramAccount
) -> None:
    url = f"/api/v1/accounts/{account.pk}/rules"
    first = api_client.post(url, RULE, format="json", HTTP_IDEMPOTENCY_KEY="rule-1")
    again = api_client.post(url, RULE, format="json", HTTP_IDEMPOTENCY_KEY="rule-1")
    assert (first.status_code, again.status_code) == (201, 201)
    assert first.json()["id"] == again.json()["id"]
    assert again["Idempotent-Replayed"] == "true"
    with scope(tenant=account.tenant):
        assert Rule.objects.count() == 1


def test_a_partner_bot_secret_is_answered_once(
    api_client: APIClient, account: InstagramAccount
) -> None:
    bot = [{"type": "partner_bot", "url": "https://bot.example.com/hook"}]
    created = _create(api_client, account, actions=bot).json()
    assert created["bot_signing_key"].startswith("botsec_")
    assert created["bot_signing_key_set"] is True
    fetched = api_client.get(f"/api/v1/rules/{created['id']}").json()
    assert "bot_signing_key" not in fetched
    assert created["bot_signing_key"] not in str(
        api_client.get(f"/api/v1/accounts/{account.pk}/rules").json()
    )


@pytest.mark.parametrize(
    ("changes", "code", "field"),
    [
        (
            {"actions": [{"type": "reply_text", "text": "é" * 501}]},
            "action_field_invalid",
            "actions",
        ),
        ({"match_mode": "regex", "pattern": "(oops"}, "pattern_invalid", "pattern"),
        ({"cooldown_seconds": -5}, "cooldown_invalid", "cooldown"),
        ({"actions": [{"type": "private_reply", "text": "Hi"}]}, "action_not_allowed", "actions"),
        (
            {"actions": [{"type": "assign", "membership_id": 2_147_000_001}]},
            "assignee_invalid",
            "actions",
        ),
    ],
)
def test_refusals_answer_400_with_a_stable_code(
    api_client: APIClient,
    account: InstagramAccount,
    changes: dict[str, Any],
    code: str,
    field: str,
) -> None:
    response = _create(api_client, account, **changes)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["detail"] == {"field": field}


def test_a_malformed_body_answers_invalid_never_500(
    api_client: APIClient, account: InstagramAccount
) -> None:
    response = _create(api_client, account, actions="reply please", keywords=7)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"


def test_the_history_is_cursor_paginated_newest_first(
    api_client: APIClient, account: InstagramAccount
) -> None:
    rule_id = _create(api_client, account).json()["id"]
    conversation = ConversationFactory(account=account)
    with scope(tenant=account.tenant):
        for n in range(3):
            RuleRun.objects.create(
                tenant_id=account.tenant_id,
                rule_id=rule_id,
                account=account,
                contact=conversation.contact,
                conversation=conversation,
                source=f"message:{n}",
                outcome=RuleRun.Outcome.SKIPPED if n else RuleRun.Outcome.FIRED,
                reason="Within the cooldown" if n else "",
            )
    page = api_client.get(f"/api/v1/rules/{rule_id}/runs?page_size=2").json()
    assert [r["source"] for r in page["results"]] == ["message:2", "message:1"]
    assert page["results"][0]["contact"]["username"] == conversation.contact.username
    rest = api_client.get(page["next"]).json()
    assert [r["source"] for r in rest["results"]] == ["message:0"]
    listed = api_client.get(f"/api/v1/accounts/{account.pk}/rules").json()["results"]
    assert listed[0]["last_fired_at"] is not None


def test_settings_default_then_change_and_queue_the_sync(
    api_client: APIClient,
    account: InstagramAccount,
    broker: mock.MagicMock,
    django_capture_on_commit_callbacks: Any,
) -> None:
    url = f"/api/v1/accounts/{account.pk}/automation"
    default = api_client.get(url).json()
    assert default["timezone"] == "UTC"
    assert default["profile_sync_status"] == "none"
    body = {
        "timezone": "Europe/Lisbon",
        "hours": {"mon": [["09:00", "18:00"]]},
        "ice_breakers": [{"question": "Where is my order?", "payload": "ORDER"}],
    }
    with django_capture_on_commit_callbacks(execute=True):
        changed = api_client.put(url, body, format="json")
    assert changed.status_code == 200, changed.json()
    assert changed.json()["profile_sync_status"] == "pending"
    assert changed.json()["hours"] == {"mon": [["09:00", "18:00"]]}
    broker.assert_called_once_with(args=(account.tenant_id, account.pk), retry=False)
    bad = api_client.put(url, {"timezone": "Nowhere/Land"}, format="json")
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "timezone_invalid"


def test_scopes_read_and_manage(
    tenant: Tenant, account: InstagramAccount, make_api_key: Callable[..., tuple[ApiKey, str]]
) -> None:
    _, secret = make_api_key(tenant, [ApiScope.AUTOMATION_READ])
    reader = APIClient()
    reader.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert reader.get(f"/api/v1/accounts/{account.pk}/rules").status_code == 200
    refused = _create(reader, account)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "missing_scope"
    assert "automation:manage" in refused.json()["error"]["message"]


def test_another_tenants_ids_answer_404_like_missing_ones(
    api_client: APIClient, other_tenant: Tenant
) -> None:
    theirs = InstagramAccountFactory(tenant=other_tenant)
    with scope(tenant=other_tenant):
        rule = Rule.objects.create(
            tenant=other_tenant,
            account=theirs,
            name="Theirs",
            trigger="keyword",
            keywords=["x"],
            actions=[{"type": "reply_text", "text": "secret text"}],
        )
    calls = [
        ("get", f"/api/v1/accounts/{theirs.pk}/rules", None),
        ("post", f"/api/v1/accounts/{theirs.pk}/rules", RULE),
        ("get", f"/api/v1/accounts/{theirs.pk}/automation", None),
        ("put", f"/api/v1/accounts/{theirs.pk}/automation", {"timezone": "UTC"}),
        ("get", f"/api/v1/rules/{rule.pk}", None),
        ("patch", f"/api/v1/rules/{rule.pk}", {"enabled": False}),
        ("delete", f"/api/v1/rules/{rule.pk}", None),
        ("get", f"/api/v1/rules/{rule.pk}/runs", None),
    ]
    for method, url, body in calls:
        response = getattr(api_client, method)(url, body, format="json")
        assert response.status_code == 404, url
        assert response.json()["error"]["code"] == "not_found"
        assert "secret text" not in response.content.decode()
    with scope(tenant=other_tenant):
        assert Rule.objects.get(pk=rule.pk).enabled is True


def test_the_schema_documents_every_automation_operation() -> None:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    paths = schema["paths"]
    assert set(paths["/api/v1/accounts/{account_id}/rules"]) >= {"get", "post"}
    assert set(paths["/api/v1/rules/{id}"]) >= {"get", "patch", "delete"} or set(
        paths["/api/v1/rules/{pk}"]
    ) >= {"get", "patch", "delete"}
    create = paths["/api/v1/accounts/{account_id}/rules"]["post"]
    assert "examples" in create["requestBody"]["content"]["application/json"]
    put = paths["/api/v1/accounts/{account_id}/automation"]["put"]
    assert "examples" in put["requestBody"]["content"]["application/json"]
    codes = schema["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]
    assert "ice_breakers_invalid" in codes["description"]
