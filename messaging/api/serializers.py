"""Output shapes of the conversations API. Explicit fields only; nothing secret leaves."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema_field
from rest_framework import serializers

from accounts.models import User
from messaging import selectors
from messaging.models import (
    CannedReply,
    Comment,
    Contact,
    Conversation,
    Label,
    Message,
    Note,
    Reaction,
)

STORY_LIFETIME = timedelta(hours=24)
PREVIEW_CHARS = 200

# What ``?expand=`` can embed in full in a conversation, instead of its short form.
CONVERSATION_EXPANDS = ("contact", "last_message", "assignee")


def expand_parse(params: Any, allowed: tuple[str, ...] = CONVERSATION_EXPANDS) -> frozenset[str]:
    """The names in ``?expand=a,b`` (repeatable); an unknown name is a 400 ``invalid``."""
    names = {
        name.strip()
        for value in params.getlist("expand")
        for name in value.split(",")
        if name.strip()
    }
    unknown = sorted(names - set(allowed))
    if unknown:
        raise serializers.ValidationError(
            {"expand": [f"Unknown: {', '.join(unknown)}. Choose from: {', '.join(allowed)}."]}
        )
    return frozenset(names)


MAX_ID = 2**63 - 1  # the largest id the database can hold; a larger one is a 400, not a 500


class ConversationFilterInputSerializer(serializers.Serializer):  # type: ignore[type-arg]
    account = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID)
    status = serializers.ChoiceField(choices=Conversation.Status.choices, required=False)
    assignee = serializers.RegexField(r"^(none|[1-9][0-9]*)$", required=False)
    unread = serializers.BooleanField(required=False, allow_null=True, default=None)
    updated_since = serializers.DateTimeField(required=False)
    label = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID)  # type: ignore[assignment]


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
    erased_reason = serializers.ChoiceField(
        source="erasure",
        choices=Message.ErasedReason.choices,
        read_only=True,
        allow_null=True,
        help_text="Why the content is gone: unsent, or removed by the retention policy.",
    )

    class Meta:
        model = Message
        fields = (
            "id",
            "mid",
            "direction",
            "sender_kind",
            "kind",
            "text",
            "unsent",
            "erased_reason",
            "sent_at",
        )

    @extend_schema_field(OpenApiTypes.STR)
    def get_text(self, message: Message) -> str | None:
        if message.is_unsent:
            return None
        return message.text[:PREVIEW_CHARS]


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
    erased_reason = serializers.ChoiceField(
        source="erasure",
        choices=Message.ErasedReason.choices,
        read_only=True,
        allow_null=True,
        help_text="Why the content is gone: unsent, or removed by the retention policy.",
    )
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
            "erased_reason",
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


# -- team work ---------------------------------------------------------------------------------


class LabelSummarySerializer(serializers.ModelSerializer[Label]):
    class Meta:
        model = Label
        fields = ("id", "name", "color")


class LabelOutputSerializer(serializers.ModelSerializer[Label]):
    class Meta:
        model = Label
        fields = ("id", "name", "color", "created_at")


class PersonSerializer(serializers.Serializer):  # type: ignore[type-arg]
    """A member of the workspace as a person: their user id, email and name."""

    id = serializers.IntegerField(help_text="The user id (what the `assignee` filter takes).")
    email = serializers.EmailField()
    name = serializers.CharField(source="display_name")


def person_data(user: User | None) -> dict[str, Any] | None:
    return dict(PersonSerializer(user).data) if user is not None else None


class NoteOutputSerializer(serializers.ModelSerializer[Note]):
    conversation = serializers.IntegerField(source="conversation_id", read_only=True)
    author = serializers.SerializerMethodField(
        help_text="The member who wrote it; null when the partner wrote it as itself."
    )
    mentions = serializers.ListField(
        child=serializers.IntegerField(),
        read_only=True,
        help_text="User ids of the members it @mentions.",
    )

    class Meta:
        model = Note
        fields = ("id", "conversation", "body", "author", "mentions", "created_at")

    @extend_schema_field(PersonSerializer(allow_null=True))
    def get_author(self, note: Note) -> dict[str, Any] | None:
        return person_data(note.author)


class CannedReplyOutputSerializer(serializers.ModelSerializer[CannedReply]):
    class Meta:
        model = CannedReply
        fields = ("id", "shortcut", "body", "created_at", "updated_at")


class CommentOutputSerializer(serializers.ModelSerializer[Comment]):
    account: serializers.PrimaryKeyRelatedField[Any] = serializers.PrimaryKeyRelatedField(
        read_only=True
    )
    private_reply: serializers.PrimaryKeyRelatedField[Any] = serializers.PrimaryKeyRelatedField(
        read_only=True,
        allow_null=True,
        help_text="The id of the private reply's message, once one was sent.",
    )

    class Meta:
        model = Comment
        fields = (
            "id",
            "comment_id",
            "account",
            "media_id",
            "media_product_type",
            "parent_id",
            "from_id",
            "from_username",
            "text",
            "is_live",
            "commented_at",
            "private_reply_at",
            "private_reply",
        )


class ContactDetailSerializer(ContactOutputSerializer):
    """One contact, with the labels on its conversation."""

    labels = serializers.SerializerMethodField()

    class Meta(ContactOutputSerializer.Meta):
        fields = (*ContactOutputSerializer.Meta.fields, "labels")  # type: ignore[assignment]

    @extend_schema_field(LabelSummarySerializer(many=True))
    def get_labels(self, contact: Contact) -> list[dict[str, Any]]:
        try:
            conversation = contact.conversation
        except Conversation.DoesNotExist:
            return []
        labels = selectors.conversation_labels(conversation)
        return list(LabelSummarySerializer(labels, many=True).data)


# -- conversations -----------------------------------------------------------------------------


class ConversationOutputSerializer(serializers.ModelSerializer[Conversation]):
    """A conversation. ``contact``, ``last_message`` and ``assignee`` come in a short form, or in
    full with ``?expand=contact,last_message,assignee`` (the serializer context's ``expand``)."""

    account: serializers.PrimaryKeyRelatedField[Any] = serializers.PrimaryKeyRelatedField(
        read_only=True
    )
    contact = serializers.SerializerMethodField(
        help_text="The customer, short; with `expand=contact`, the whole contact."
    )
    mode = serializers.ChoiceField(
        choices=Conversation.Mode.choices,
        read_only=True,
        help_text="Who answers: the account's automation, or a person (handover). "
        "Change it with `POST /api/v1/conversations/{id}/handover`.",
    )
    assignee = serializers.SerializerMethodField(
        help_text="The assigned member's user id; with `expand=assignee`, the member (id, email, "
        "name). Null when unassigned."
    )
    labels = serializers.SerializerMethodField()
    last_message = serializers.SerializerMethodField(
        help_text="A preview of the latest message; with `expand=last_message`, the whole "
        "message (attachments, reactions, quote). Null in an empty thread."
    )
    window_closes_at = serializers.DateTimeField(read_only=True, allow_null=True)
    human_agent_window_closes_at = serializers.DateTimeField(read_only=True, allow_null=True)

    class Meta:
        model = Conversation
        fields = (
            "id",
            "account",
            "contact",
            "status",
            "mode",
            "assignee",
            "labels",
            "unread_count",
            "last_message_at",
            "last_message",
            "customer_last_message_at",
            "window_closes_at",
            "human_agent_window_closes_at",
            "created_at",
            "updated_at",
        )

    def _expanded(self, name: str) -> bool:
        return name in self.context.get("expand", ())

    @extend_schema_field(
        PolymorphicProxySerializer(
            component_name="ConversationContact",
            serializers=[ContactSummarySerializer, ContactOutputSerializer],
            resource_type_field_name=None,
        )
    )
    def get_contact(self, conversation: Conversation) -> dict[str, Any]:
        if self._expanded("contact"):
            return dict(ContactOutputSerializer(conversation.contact).data)
        return dict(ContactSummarySerializer(conversation.contact).data)

    @extend_schema_field(
        {
            "oneOf": [
                {"type": "integer", "description": "The member's user id."},
                {"$ref": "#/components/schemas/Person"},
            ],
            "nullable": True,
        }
    )
    def get_assignee(self, conversation: Conversation) -> int | dict[str, Any] | None:
        if conversation.assignee_id is None:
            return None
        if self._expanded("assignee"):
            return person_data(conversation.assignee)
        return conversation.assignee_id

    @extend_schema_field(LabelSummarySerializer(many=True))
    def get_labels(self, conversation: Conversation) -> list[dict[str, Any]]:
        labels = selectors.conversation_labels(conversation)
        return list(LabelSummarySerializer(labels, many=True).data)

    @extend_schema_field(
        PolymorphicProxySerializer(
            component_name="ConversationLastMessage",
            serializers=[MessagePreviewSerializer, MessageOutputSerializer],
            resource_type_field_name=None,
        )
    )
    def get_last_message(self, conversation: Conversation) -> dict[str, Any] | None:
        latest = selectors.conversation_latest_message(conversation)
        if latest is None:
            return None
        if self._expanded("last_message"):
            if not hasattr(latest, selectors.REACTIONS_ATTR):
                selectors.message_page_attach([latest])
            return dict(MessageOutputSerializer(latest).data)
        return dict(MessagePreviewSerializer(latest).data)


# -- input -------------------------------------------------------------------------------------


class CommentFilterInputSerializer(serializers.Serializer):  # type: ignore[type-arg]
    account = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID)
    pending = serializers.BooleanField(required=False, default=False)


class ConversationAssignInputSerializer(serializers.Serializer):  # type: ignore[type-arg]
    agent_email = serializers.EmailField(
        required=False,
        allow_null=True,
        help_text="The member to give the conversation to, by email; null unassigns.",
    )
    assignee = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        max_value=MAX_ID,
        help_text="Or the member's user id (as conversations show it); null unassigns.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if len(attrs) != 1:
            raise serializers.ValidationError(
                "Name the member with exactly one of `agent_email` or `assignee` (null unassigns)."
            )
        return attrs


class HandoverInputSerializer(serializers.Serializer):  # type: ignore[type-arg]
    mode = serializers.ChoiceField(
        choices=Conversation.Mode.choices,
        help_text="`human`: a person answers and automation stays quiet; `automation`: hand the "
        "conversation back to the account's automation.",
    )


class NoteInputSerializer(serializers.Serializer):  # type: ignore[type-arg]
    body = serializers.CharField(
        max_length=4000, trim_whitespace=False, help_text="Seen by the team, never the customer."
    )
    agent_email = serializers.EmailField(
        required=False, help_text="The member who wrote it; left out, the partner writes it."
    )


class ConversationLabelInputSerializer(serializers.Serializer):  # type: ignore[type-arg]
    label_id = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID)
    name = serializers.CharField(
        required=False, max_length=200, help_text="A label's name; a new name creates the label."
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if len(attrs) != 1:
            raise serializers.ValidationError("Give exactly one of `label_id` or `name`.")
        return attrs


class ContactLabelsInputSerializer(serializers.Serializer):  # type: ignore[type-arg]
    labels = serializers.ListField(
        child=serializers.CharField(max_length=200),
        max_length=50,
        allow_empty=True,
        help_text="Every label the contact's conversation should carry, by name: new names "
        "create labels, labels left out are taken off, `[]` removes them all.",
    )


class LabelInputSerializer(serializers.Serializer):  # type: ignore[type-arg]
    name = serializers.CharField(max_length=200)
    color = serializers.ChoiceField(choices=Label.Color.choices, required=False)


class CannedReplyInputSerializer(serializers.Serializer):  # type: ignore[type-arg]
    shortcut = serializers.CharField(
        max_length=60, help_text="What agents type after `/`: lowercase letters, digits, - and _."
    )
    body = serializers.CharField(max_length=4000, trim_whitespace=False)
