"""Output shapes of the conversations API. Explicit fields only; nothing secret leaves."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from messaging import selectors
from messaging.models import Contact, Conversation, Message, Reaction

STORY_LIFETIME = timedelta(hours=24)
PREVIEW_CHARS = 200


class ConversationFilterInputSerializer(serializers.Serializer):  # type: ignore[type-arg]
    account = serializers.IntegerField(required=False, min_value=1)
    status = serializers.ChoiceField(choices=Conversation.Status.choices, required=False)
    assignee = serializers.RegexField(r"^(none|[1-9][0-9]*)$", required=False)
    unread = serializers.BooleanField(required=False, allow_null=True, default=None)
    updated_since = serializers.DateTimeField(required=False)


class ContactSummarySerializer(serializers.ModelSerializer[Contact]):
    display_name = serializers.CharField(read_only=True)

    class Meta:
        model = Contact
        fields = ("id", "igsid", "username", "name", "display_name", "profile_pic_url")


class ContactOutputSerializer(serializers.ModelSerializer[Contact]):
    account: serializers.PrimaryKeyRelatedField[Any] = serializers.PrimaryKeyRelatedField(
        read_only=True
    )
    display_name = serializers.CharField(read_only=True)
    conversation = serializers.SerializerMethodField()

    class Meta:
        model = Contact
        fields = (
            "id",
            "account",
            "igsid",
            "username",
            "name",
            "display_name",
            "profile_pic_url",
            "follower_count",
            "follows_business",
            "business_follows",
            "is_verified",
            "profile_fetched_at",
            "created_at",
            "conversation",
        )

    @extend_schema_field(OpenApiTypes.INT)
    def get_conversation(self, contact: Contact) -> int | None:
        try:
            return contact.conversation.pk
        except Conversation.DoesNotExist:
            return None


class MessagePreviewSerializer(serializers.ModelSerializer[Message]):
    """A short view of a message; an unsent message shows no content at all."""

    text = serializers.SerializerMethodField()
    unsent = serializers.BooleanField(source="is_unsent", read_only=True)

    class Meta:
        model = Message
        fields = ("id", "mid", "direction", "sender_kind", "kind", "text", "unsent", "sent_at")

    @extend_schema_field(OpenApiTypes.STR)
    def get_text(self, message: Message) -> str | None:
        if message.is_unsent:
            return None
        return message.text[:PREVIEW_CHARS]


class ConversationOutputSerializer(serializers.ModelSerializer[Conversation]):
    account: serializers.PrimaryKeyRelatedField[Any] = serializers.PrimaryKeyRelatedField(
        read_only=True
    )
    assignee: serializers.PrimaryKeyRelatedField[Any] = serializers.PrimaryKeyRelatedField(
        read_only=True, allow_null=True
    )
    contact = ContactSummarySerializer(read_only=True)
    last_message = serializers.SerializerMethodField()
    window_closes_at = serializers.DateTimeField(read_only=True, allow_null=True)
    human_agent_window_closes_at = serializers.DateTimeField(read_only=True, allow_null=True)

    class Meta:
        model = Conversation
        fields = (
            "id",
            "account",
            "contact",
            "status",
            "assignee",
            "unread_count",
            "last_message_at",
            "last_message",
            "customer_last_message_at",
            "window_closes_at",
            "human_agent_window_closes_at",
            "created_at",
            "updated_at",
        )

    @extend_schema_field(MessagePreviewSerializer(allow_null=True))
    def get_last_message(self, conversation: Conversation) -> dict[str, Any] | None:
        latest = selectors.conversation_latest_message(conversation)
        return MessagePreviewSerializer(latest).data if latest is not None else None


class ReactionOutputSerializer(serializers.ModelSerializer[Reaction]):
    class Meta:
        model = Reaction
        fields = ("actor", "emoji", "reaction", "reacted_at")


class AttachmentSerializer(serializers.Serializer):  # type: ignore[type-arg]
    type = serializers.CharField()
    url = serializers.CharField(allow_null=True, required=False)
    title = serializers.CharField(allow_null=True, required=False)
    media_id = serializers.CharField(allow_null=True, required=False)
    expires_at = serializers.CharField(allow_null=True, required=False)


class StorySerializer(serializers.Serializer):  # type: ignore[type-arg]
    type = serializers.ChoiceField(choices=["mention", "reply"])
    id = serializers.CharField(allow_null=True)
    url = serializers.CharField(allow_null=True)
    link_sticker_url = serializers.CharField(allow_null=True)
    expired = serializers.BooleanField(help_text="Stories disappear 24 hours after posting.")


class ReplyToSerializer(serializers.Serializer):  # type: ignore[type-arg]
    mid = serializers.CharField()
    message = MessagePreviewSerializer(allow_null=True, help_text="The quoted message, if stored.")


class MessageErrorSerializer(serializers.Serializer):  # type: ignore[type-arg]
    code = serializers.CharField()
    message = serializers.CharField()


def story_of(message: Message) -> dict[str, Any] | None:
    """The story a message mentions or answers, in one shape for both."""
    if message.is_unsent:
        return None
    expired = timezone.now() - message.sent_at > STORY_LIFETIME
    if message.kind == Message.Kind.STORY_MENTION:
        first = message.attachments[0] if message.attachments else {}
        return {
            "type": "mention",
            "id": first.get("media_id") or None,
            "url": first.get("url") or None,
            "link_sticker_url": None,
            "expired": expired,
        }
    if message.reply_to_story:
        story = message.reply_to_story
        return {
            "type": "reply",
            "id": story.get("id") or None,
            "url": story.get("url") or None,
            "link_sticker_url": story.get("link_sticker_url") or None,
            "expired": expired,
        }
    return None


class MessageOutputSerializer(serializers.ModelSerializer[Message]):
    """One message. Unsent messages keep their place in the thread but carry no content."""

    mid = serializers.SerializerMethodField()
    text = serializers.SerializerMethodField()
    attachments = serializers.SerializerMethodField()
    reply_to = serializers.SerializerMethodField()
    story = serializers.SerializerMethodField()
    reactions = serializers.SerializerMethodField()
    edited = serializers.SerializerMethodField()
    unsent = serializers.BooleanField(source="is_unsent", read_only=True)
    error = serializers.SerializerMethodField()

    class Meta:
        model = Message
        fields = (
            "id",
            "mid",
            "direction",
            "sender_kind",
            "kind",
            "text",
            "attachments",
            "reply_to",
            "story",
            "reactions",
            "edited",
            "edited_at",
            "unsent",
            "status",
            "error",
            "sent_at",
        )

    @extend_schema_field(OpenApiTypes.STR)
    def get_mid(self, message: Message) -> str | None:
        return message.mid or None

    @extend_schema_field(OpenApiTypes.STR)
    def get_text(self, message: Message) -> str | None:
        return None if message.is_unsent else message.text

    @extend_schema_field(AttachmentSerializer(many=True, allow_null=True))
    def get_attachments(self, message: Message) -> list[dict[str, Any]] | None:
        if message.is_unsent:
            return None
        return [
            {
                "type": str(item.get("type") or ""),
                "url": item.get("url"),
                "title": item.get("title"),
                "media_id": item.get("media_id"),
                "expires_at": item.get("expires_at"),
            }
            for item in message.attachments or []
            if isinstance(item, dict)
        ]

    @extend_schema_field(ReplyToSerializer(allow_null=True))
    def get_reply_to(self, message: Message) -> dict[str, Any] | None:
        if not message.reply_to_mid:
            return None
        quoted = getattr(message, selectors.QUOTED_ATTR, None)
        return {
            "mid": message.reply_to_mid,
            "message": MessagePreviewSerializer(quoted).data if quoted is not None else None,
        }

    @extend_schema_field(StorySerializer(allow_null=True))
    def get_story(self, message: Message) -> dict[str, Any] | None:
        return story_of(message)

    @extend_schema_field(ReactionOutputSerializer(many=True))
    def get_reactions(self, message: Message) -> list[dict[str, Any]]:
        reactions = getattr(message, selectors.REACTIONS_ATTR, [])
        return list(ReactionOutputSerializer(reactions, many=True).data)

    @extend_schema_field(OpenApiTypes.BOOL)
    def get_edited(self, message: Message) -> bool:
        return message.edited_at is not None or message.edit_count > 0

    @extend_schema_field(MessageErrorSerializer(allow_null=True))
    def get_error(self, message: Message) -> dict[str, str] | None:
        if not message.error_code and not message.error_message:
            return None
        return {"code": message.error_code, "message": message.error_message}
