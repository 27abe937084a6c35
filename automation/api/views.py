"""Partner API of automation: an account's rules, a rule's history, an account's settings.

Scopes: ``automation:read`` to read, ``automation:manage`` to change. Rows come from
``automation.selectors_manage`` inside the key's tenant scope, so another workspace's id is not
found (404), the same as an id that never existed. Refusals of ``automation.services`` answer
400 with their stable code and the field they are about in ``detail``.
"""

from __future__ import annotations

from typing import Any

from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts import selectors as accounts_selectors
from accounts.api.base import TenantGenericAPIView
from accounts.models import ApiScope, InstagramAccount
from automation import selectors_manage, services
from automation.api.serializers import (
    AutomationSettingsInputSerializer,
    AutomationSettingsOutputSerializer,
    RuleCreatedOutputSerializer,
    RuleInputSerializer,
    RuleOutputSerializer,
    RuleRunOutputSerializer,
)
from automation.models import AccountAutomation, Rule, RuleRun
from config.api import ApiError, CursorPagination

PAGE_PARAMETERS = [
    OpenApiParameter("cursor", OpenApiTypes.STR, description="The `next` or `previous` cursor."),
    OpenApiParameter("page_size", OpenApiTypes.INT, description="1 to 200, 50 by default."),
]

SCOPES: dict[str, list[str]] = {
    "GET": [ApiScope.AUTOMATION_READ],
    "*": [ApiScope.AUTOMATION_MANAGE],
}

RULE_EXAMPLE = {
    "name": "Price question",
    "trigger": "keyword",
    "match_mode": "contains",
    "keywords": ["price", "how much"],
    "actions": [
        {
            "type": "reply_quick_replies",
            "text": "Our prices are on the site. Anything else?",
            "quick_replies": [
                {"title": "Shipping", "payload": "SHIPPING"},
                {"title": "Talk to someone", "payload": "HUMAN"},
            ],
        },
        {"type": "label", "label": "pricing"},
    ],
    "cooldown_seconds": 86400,
}

SETTINGS_EXAMPLE = {
    "timezone": "Europe/Lisbon",
    "hours": {"mon": [["09:00", "18:00"]], "tue": [["09:00", "18:00"]]},
    "resolve_returns_to_automation": True,
    "ice_breakers": [
        {"question": "Where is my order?", "payload": "ORDER_STATUS"},
        {"question": "Do you ship abroad?", "payload": "SHIPPING"},
    ],
    "persistent_menu": [
        {"type": "postback", "title": "Track order", "payload": "TRACK"},
        {"type": "web_url", "title": "Shop", "url": "https://shop.example.com"},
    ],
}


def _refused(exc: services.AutomationError) -> ApiError:
    return ApiError(exc.code, exc.message, 400, detail={"field": exc.field} if exc.field else None)


def _account(account_id: Any) -> InstagramAccount:
    try:
        return accounts_selectors.instagram_account_get(account_id=int(account_id))
    except (InstagramAccount.DoesNotExist, ValueError) as exc:
        raise Http404 from exc


def _rule(rule_id: Any) -> Rule:
    try:
        return selectors_manage.rule_get(rule_id=int(rule_id))
    except (Rule.DoesNotExist, ValueError) as exc:
        raise Http404 from exc


class RulePagination(CursorPagination):
    ordering = ("position", "id")  # type: ignore[assignment]


class RunPagination(CursorPagination):
    ordering = ("-created_at", "-id")  # type: ignore[assignment]


@extend_schema(tags=["automation"])
class AccountRulesView(TenantGenericAPIView):
    """An Instagram account's automation rules, in the order they run."""

    required_scopes = SCOPES
    serializer_class = RuleOutputSerializer
    pagination_class = RulePagination
    queryset = Rule.objects.none()

    @extend_schema(
        operation_id="automation_rules_list",
        parameters=PAGE_PARAMETERS,
        responses=RuleOutputSerializer(many=True),
    )
    def get(self, request: Request, account_id: int) -> Response:
        rows = selectors_manage.rule_list(account=_account(account_id))
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(RuleOutputSerializer(page, many=True).data)

    @extend_schema(
        operation_id="automation_rules_create",
        request=RuleInputSerializer,
        responses={201: RuleCreatedOutputSerializer},
        examples=[OpenApiExample("A keyword rule", value=RULE_EXAMPLE, request_only=True)],
        description=(
            "A new rule, last in the account's order. A rule that asks a partner bot answers "
            "with its `bot_signing_key` this once: the bot's calls are signed with it."
        ),
    )
    def post(self, request: Request, account_id: int) -> Response:
        account = _account(account_id)
        data = RuleInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            saved = services.rule_create(
                account=account, values=data.validated_values(), actor_api_key=self.api_key
            )
        except services.AutomationError as exc:
            raise _refused(exc) from exc
        body = RuleCreatedOutputSerializer(
            saved.rule, context={"new_bot_secret": saved.new_bot_secret}
        ).data
        return Response(body, status=status.HTTP_201_CREATED)


@extend_schema(tags=["automation"])
class RuleView(TenantGenericAPIView):
    """One automation rule."""

    required_scopes = SCOPES
    serializer_class = RuleOutputSerializer
    queryset = Rule.objects.none()

    @extend_schema(operation_id="automation_rules_retrieve")
    def get(self, request: Request, pk: int) -> Response:
        return Response(RuleOutputSerializer(_rule(pk)).data)

    @extend_schema(
        operation_id="automation_rules_update",
        request=RuleInputSerializer(partial=True),
        responses=RuleCreatedOutputSerializer,
        examples=[
            OpenApiExample("Turn a rule off", value={"enabled": False}, request_only=True),
            OpenApiExample(
                "New keywords", value={"keywords": ["price", "cost"]}, request_only=True
            ),
        ],
        description=(
            "Change some fields; the rule is checked whole again. `bot_signing_key` is set only "
            "when the change adds a partner bot."
        ),
    )
    def patch(self, request: Request, pk: int) -> Response:
        rule = _rule(pk)
        data = RuleInputSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        try:
            saved = services.rule_update(
                rule=rule, changes=data.validated_values(), actor_api_key=self.api_key
            )
        except services.AutomationError as exc:
            raise _refused(exc) from exc
        rule = selectors_manage.rule_get(rule_id=saved.rule.pk)
        return Response(
            RuleCreatedOutputSerializer(rule, context={"new_bot_secret": saved.new_bot_secret}).data
        )

    @extend_schema(operation_id="automation_rules_destroy", responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        services.rule_delete(rule=_rule(pk), actor_api_key=self.api_key)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=["automation"])
class RuleRunsView(TenantGenericAPIView):
    """A rule's history, newest first: when it fired, for whom, what it did or why not."""

    required_scopes = SCOPES
    serializer_class = RuleRunOutputSerializer
    pagination_class = RunPagination
    queryset = RuleRun.objects.none()

    @extend_schema(
        operation_id="automation_rule_runs_list",
        parameters=PAGE_PARAMETERS,
        responses=RuleRunOutputSerializer(many=True),
    )
    def get(self, request: Request, pk: int) -> Response:
        rows = selectors_manage.rule_run_list(rule=_rule(pk))
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(RuleRunOutputSerializer(page, many=True).data)


@extend_schema(tags=["automation"])
class AccountAutomationView(TenantGenericAPIView):
    """An account's business hours, handover setting, ice breakers and persistent menu."""

    required_scopes = SCOPES
    serializer_class = AutomationSettingsOutputSerializer
    queryset = AccountAutomation.objects.none()

    def get_object(self) -> AccountAutomation:
        return selectors_manage.account_automation_get(account=_account(self.kwargs["account_id"]))

    @extend_schema(operation_id="automation_settings_retrieve")
    def get(self, request: Request, account_id: int) -> Response:
        row = selectors_manage.account_automation_get(account=_account(account_id))
        return Response(AutomationSettingsOutputSerializer(row).data)

    @extend_schema(
        operation_id="automation_settings_update",
        request=AutomationSettingsInputSerializer,
        responses=AutomationSettingsOutputSerializer,
        examples=[OpenApiExample("Settings", value=SETTINGS_EXAMPLE, request_only=True)],
        description=(
            "Fields left out keep their value. Changed ice breakers or menu are sent to "
            "Instagram in the background: `profile_sync_status` turns `synced` or `failed`."
        ),
    )
    def put(self, request: Request, account_id: int) -> Response:
        account = _account(account_id)
        data = AutomationSettingsInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            row = services.account_automation_update(
                account=account, changes=data.validated_values(), actor_api_key=self.api_key
            )
        except services.AutomationError as exc:
            raise _refused(exc) from exc
        return Response(AutomationSettingsOutputSerializer(row).data)
