"""Partner API shapes of automation: rules, their history, an account's settings.

Input serializers check types only; ``automation.services`` checks everything else and answers
with stable error codes.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from automation.models import AccountAutomation, ActionType, MatchMode, Rule, RuleRun, Trigger
from automation.selectors_manage import profile_sync_status
from messaging.api.views_send import BUTTON_TYPES

# -- rules -------------------------------------------------------------------------------------


class QuickReplySerializer(serializers.Serializer):  # type: ignore[type-arg]
    title = serializers.CharField(help_text="1 to 20 characters.")
    payload = serializers.CharField(help_text="Up to 1000 characters, sent back when tapped.")


class CardButtonSerializer(serializers.Serializer):  # type: ignore[type-arg]
    type = serializers.ChoiceField(choices=BUTTON_TYPES)
    title = serializers.CharField()
    url = serializers.CharField(required=False, help_text="web_url: an https URL.")
    payload = serializers.CharField(required=False, help_text="postback: the payload.")


class CardSerializer(serializers.Serializer):  # type: ignore[type-arg]
    title = serializers.CharField(help_text="At most 80 characters.")
    subtitle = serializers.CharField(required=False, allow_blank=True)
    image_url = serializers.CharField(required=False, allow_blank=True)
    default_action_url = serializers.CharField(required=False, allow_blank=True)
    buttons = CardButtonSerializer(many=True, required=False, help_text="At most 3.")


class RuleActionSerializer(serializers.Serializer):  # type: ignore[type-arg]
    """One action. Which fields it takes depends on ``type``."""

    type = serializers.ChoiceField(choices=ActionType.choices)
    text = serializers.CharField(
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        help_text="reply_text, reply_quick_replies, private_reply: at most 1000 bytes of UTF-8.",
    )
    quick_replies = QuickReplySerializer(
        many=True, required=False, help_text="reply_quick_replies: 1 to 13."
    )
    elements = CardSerializer(many=True, required=False, help_text="reply_template: 1 to 10 cards.")
    membership_id = serializers.IntegerField(
        required=False, help_text="assign: a member who can answer conversations."
    )
    label = serializers.CharField(  # type: ignore[assignment]
        required=False, help_text="label: a label's name, created if missing."
    )
    url = serializers.CharField(
        required=False, help_text="partner_bot: the public http(s) URL the rule calls, signed."
    )


class RuleInputSerializer(serializers.Serializer):  # type: ignore[type-arg]
    name = serializers.CharField(allow_blank=True, help_text="1 to 120 characters.")
    enabled = serializers.BooleanField(required=False)
    stop_after = serializers.BooleanField(
        required=False, help_text="When the rule fires, the rules after it do not run."
    )
    trigger = serializers.ChoiceField(choices=Trigger.choices)
    match_mode = serializers.ChoiceField(choices=MatchMode.choices, required=False)
    keywords = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="keyword, comment: up to 50."
    )
    pattern = serializers.CharField(
        required=False, allow_blank=True, help_text="match_mode regex: a regular expression."
    )
    media_id = serializers.CharField(
        required=False, allow_blank=True, help_text="comment: one post's id, or empty for any."
    )
    payload = serializers.CharField(
        required=False, allow_blank=True, help_text="payload: the exact payload that fires it."
    )
    actions = RuleActionSerializer(many=True)
    cooldown_seconds = serializers.IntegerField(
        required=False,
        help_text="The same contact does not fire the rule again within it: 0 to 2592000.",
    )

    def validated_values(self) -> dict[str, Any]:
        """The fields the request gave, named as the services take them."""
        data = dict(self.validated_data)
        if "cooldown_seconds" in data:
            data["cooldown"] = data.pop("cooldown_seconds")
        if "actions" in data:
            data["actions"] = [
                {k: v for k, v in action.items() if v is not None} for action in data["actions"]
            ]
        return data


class RuleOutputSerializer(serializers.ModelSerializer[Rule]):
    account_id = serializers.IntegerField(read_only=True)
    cooldown_seconds = serializers.SerializerMethodField()
    bot_signing_key_set = serializers.SerializerMethodField(
        help_text="Whether the rule has a key that signs its partner bot calls."
    )
    last_fired_at = serializers.SerializerMethodField()
    actions = RuleActionSerializer(many=True, read_only=True)

    class Meta:
        model = Rule
        fields = (
            "id",
            "account_id",
            "name",
            "enabled",
            "position",
            "stop_after",
            "trigger",
            "match_mode",
            "keywords",
            "pattern",
            "media_id",
            "payload",
            "actions",
            "cooldown_seconds",
            "bot_signing_key_set",
            "last_fired_at",
            "created_at",
            "updated_at",
        )
        read_only_fields = fields

    def get_cooldown_seconds(self, rule: Rule) -> int:
        return int(rule.cooldown.total_seconds())

    def get_bot_signing_key_set(self, rule: Rule) -> bool:
        return bool(rule.bot_secret)

    @extend_schema_field(OpenApiTypes.DATETIME)
    def get_last_fired_at(self, rule: Rule) -> Any:
        value = getattr(rule, "last_fired_at", None)
        return value.isoformat() if value is not None else None


class RuleCreatedOutputSerializer(RuleOutputSerializer):
    bot_signing_key = serializers.SerializerMethodField(
        help_text="Only when the rule asks a partner bot, and only in this answer: store it."
    )

    class Meta(RuleOutputSerializer.Meta):
        fields = (*RuleOutputSerializer.Meta.fields, "bot_signing_key")  # type: ignore[assignment]
        read_only_fields = fields  # type: ignore[assignment]

    def get_bot_signing_key(self, rule: Rule) -> str:
        return str(self.context.get("new_bot_secret", ""))


class RuleRunOutputSerializer(serializers.ModelSerializer[RuleRun]):
    contact = serializers.SerializerMethodField()
    conversation_id = serializers.IntegerField(read_only=True, allow_null=True)
    comment_id = serializers.IntegerField(read_only=True, allow_null=True)

    class Meta:
        model = RuleRun
        fields = (
            "id",
            "outcome",
            "reason_code",
            "reason",
            "source",
            "contact",
            "conversation_id",
            "comment_id",
            "customer_igsid",
            "done",
            "created_at",
            "finished_at",
        )
        read_only_fields = fields

    @extend_schema_field(
        {
            "type": "object",
            "nullable": True,
            "properties": {"id": {"type": "integer"}, "username": {"type": "string"}},
        }
    )
    def get_contact(self, run: RuleRun) -> dict[str, Any] | None:
        if run.contact is None:
            return None
        return {"id": run.contact.pk, "username": run.contact.username}


# -- an account's settings ---------------------------------------------------------------------


class IceBreakerSerializer(serializers.Serializer):  # type: ignore[type-arg]
    question = serializers.CharField(help_text="1 to 80 characters.")
    payload = serializers.CharField(help_text="Sent back as a postback when tapped.")


class MenuItemSerializer(serializers.Serializer):  # type: ignore[type-arg]
    type = serializers.ChoiceField(choices=BUTTON_TYPES)
    title = serializers.CharField(help_text="1 to 30 characters.")
    payload = serializers.CharField(required=False, help_text="postback: the payload.")
    url = serializers.CharField(required=False, help_text="web_url: an https URL.")


HOURS_SCHEMA = {
    "type": "object",
    "description": 'Per weekday ("mon".."sun"), spans of ["HH:MM", "HH:MM"]; "24:00" ends at '
    "midnight. Days left out have no business hours.",
    "additionalProperties": {
        "type": "array",
        "items": {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 2},
    },
    "example": {"mon": [["09:00", "12:30"], ["13:30", "18:00"]], "sat": [["10:00", "14:00"]]},
}


@extend_schema_field(HOURS_SCHEMA)
class HoursField(serializers.JSONField):
    pass


class AutomationSettingsInputSerializer(serializers.Serializer):  # type: ignore[type-arg]
    timezone = serializers.CharField(required=False, help_text="An IANA zone: Europe/Lisbon.")
    hours = HoursField(required=False)
    resolve_returns_to_automation = serializers.BooleanField(required=False)
    ice_breakers = IceBreakerSerializer(many=True, required=False, help_text="At most 4.")
    persistent_menu = MenuItemSerializer(many=True, required=False, help_text="At most 20.")

    def validated_values(self) -> dict[str, Any]:
        data = dict(self.validated_data)
        for name in ("ice_breakers", "persistent_menu"):
            if name in data:
                data[name] = [dict(item) for item in data[name]]
        return data


class AutomationSettingsOutputSerializer(serializers.ModelSerializer[AccountAutomation]):
    account_id = serializers.IntegerField(read_only=True)
    hours = HoursField(read_only=True)
    ice_breakers = IceBreakerSerializer(many=True, read_only=True)
    persistent_menu = MenuItemSerializer(many=True, read_only=True)
    profile_sync_status = serializers.SerializerMethodField(
        help_text="`synced`, `pending` (waiting for Meta), `failed` (see profile_sync_error), or "
        "`none` (no ice breakers or menu set)."
    )

    class Meta:
        model = AccountAutomation
        fields = (
            "account_id",
            "timezone",
            "hours",
            "resolve_returns_to_automation",
            "ice_breakers",
            "persistent_menu",
            "profile_sync_status",
            "profile_synced_at",
            "profile_sync_error",
        )
        read_only_fields = fields

    @extend_schema_field({"type": "string", "enum": ["synced", "pending", "failed", "none"]})
    def get_profile_sync_status(self, row: AccountAutomation) -> str:
        return profile_sync_status(row)
