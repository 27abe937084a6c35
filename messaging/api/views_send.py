"""Sending through the partner API: messages, private replies, reactions, sender actions.

Each view validates its input, calls one service of ``messaging.services.outbound`` (which asks
the policy first) and answers ``202`` with what was queued. A refusal answers ``422`` with the
policy's stable code, its sentence and when the window closed; content Instagram can never take
answers ``400``. Sends carry the partner: as a bot, or on behalf of a member (``agent_email``).
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.base import TenantAPIView, TenantGenericViewSet
from accounts.models import ApiScope, Membership
from config.api import CursorPagination, error_body
from messaging import selectors
from messaging.api.serializers import MessageOutputSerializer
from messaging.api.views import ConversationMessageListView
from messaging.models import Comment, Conversation, Message, OutboundJob
from messaging.policy import SendRefused
from messaging.services import outbound
from messaging.services.outbound import (
    IdempotencyKeyReused,
    OutboundContent,
    OutboundContentInvalid,
    QuickReplyOption,
    Sender,
    TemplateButton,
    TemplateCard,
)

IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    OpenApiTypes.STR,
    location=OpenApiParameter.HEADER,
    description="Repeat a request with the same key to get the first answer, never a second send.",
)


# -- input -------------------------------------------------------------------------------------


class SenderInputSerializer(serializers.Serializer):  # type: ignore[type-arg]
    sender = serializers.ChoiceField(
        choices=[("bot", "The partner's bot"), ("human", "A person, named by agent_email")],
        default="bot",
        help_text="`human` replies may use Meta's 7-day human agent window; bots only 24 hours.",
    )
    agent_email = serializers.EmailField(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("sender") == "human" and not attrs.get("agent_email"):
            raise serializers.ValidationError(
                {"agent_email": "Name the member this reply is written by."}
            )
        return attrs


class OptionalURLField(serializers.URLField):
    """An optional URL that reads as "" when left out (documented without a blank default)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)

    def get_default(self) -> str:
        return ""


class QuickReplyInputSerializer(serializers.Serializer):  # type: ignore[type-arg]
    title = serializers.CharField(max_length=20)
    payload = serializers.CharField(max_length=1000)


class ButtonInputSerializer(serializers.Serializer):  # type: ignore[type-arg]
    type = serializers.ChoiceField(choices=["web_url", "postback"])
    title = serializers.CharField(max_length=20)
    url = OptionalURLField()
    payload = serializers.CharField(max_length=1000, required=False, default="", allow_blank=True)


class CardInputSerializer(serializers.Serializer):  # type: ignore[type-arg]
    title = serializers.CharField(max_length=80)
    subtitle = serializers.CharField(max_length=80, required=False, default="", allow_blank=True)
    image_url = OptionalURLField()
    default_action_url = OptionalURLField()
    buttons = ButtonInputSerializer(many=True, required=False, default=list)


SEND_KINDS = [
    "text",
    "image",
    "video",
    "audio",
    "file",
    "like_heart",
    "post_share",
    "generic_template",
]


class MessageSendInputSerializer(SenderInputSerializer):
    kind = serializers.ChoiceField(choices=SEND_KINDS)
    # The byte limit (1000 bytes of UTF-8) is checked by the service with a clear error.
    text = serializers.CharField(
        required=False, default="", allow_blank=True, trim_whitespace=False
    )
    url = OptionalURLField(max_length=2000)
    attachment_id = serializers.CharField(
        required=False, default="", allow_blank=True, max_length=64
    )
    media_id = serializers.CharField(required=False, default="", allow_blank=True, max_length=64)
    quick_replies = QuickReplyInputSerializer(many=True, required=False, default=list)
    elements = CardInputSerializer(many=True, required=False, default=list)
    reply_to_mid = serializers.CharField(
        required=False, default="", allow_blank=True, max_length=1024
    )


class PrivateReplyInputSerializer(SenderInputSerializer):
    text = serializers.CharField(trim_whitespace=False)


class ReactionInputSerializer(SenderInputSerializer):
    reaction = serializers.ChoiceField(
        choices=["love"], allow_null=True, help_text="`null` removes the business's reaction."
    )


class SenderActionInputSerializer(SenderInputSerializer):
    action = serializers.ChoiceField(choices=["typing_on", "typing_off", "mark_seen"])


# -- output ------------------------------------------------------------------------------------


class OutboundJobOutputSerializer(serializers.ModelSerializer[OutboundJob]):
    error = serializers.SerializerMethodField()

    class Meta:
        model = OutboundJob
        fields = (
            "id",
            "action",
            "status",
            "conversation",
            "message",
            "comment",
            "attempts",
            "error",
            "created_at",
            "sent_at",
            "finished_at",
        )

    def get_error(self, job: OutboundJob) -> dict[str, str] | None:
        if not job.error_code and not job.error_message:
            return None
        return {"code": job.error_code, "message": job.error_message}


class SendErrorSerializer(serializers.Serializer):  # type: ignore[type-arg]
    error = serializers.DictField()


# -- helpers -----------------------------------------------------------------------------------


def _refused(exc: SendRefused) -> Response:
    detail = {
        "window_closed_at": exc.window_closed_at.isoformat() if exc.window_closed_at else None
    }
    return Response(error_body(exc.code, exc.message, detail), status=422)


def _invalid(exc: OutboundContentInvalid) -> Response:
    return Response(
        error_body(exc.code, exc.message, {"field": exc.field} if exc.field else None), status=400
    )


def _sender(view: Any, data: dict[str, Any]) -> Sender | Response:
    name = view.api_key.name
    if data.get("sender") != "human":
        return Sender.partner(name, bot=True)
    member = (
        Membership.objects.filter(user__email__iexact=data["agent_email"])
        .select_related("user")
        .first()
    )
    if member is None:
        return Response(
            error_body("unknown_agent", "No member of this workspace has that email."), status=400
        )
    return Sender.partner(name, on_behalf_of=member.user)


def _content(data: dict[str, Any]) -> OutboundContent:
    return OutboundContent(
        kind=data["kind"],
        text=data["text"],
        url=data["url"],
        attachment_id=data["attachment_id"],
        media_id=data["media_id"],
        quick_replies=tuple(QuickReplyOption(**q) for q in data["quick_replies"]),
        elements=tuple(
            TemplateCard(
                **{k: v for k, v in card.items() if k != "buttons"},
                buttons=tuple(TemplateButton(**b) for b in card["buttons"]),
            )
            for card in data["elements"]
        ),
        reply_to_mid=data["reply_to_mid"],
    )


REFUSALS = {
    202: None,
    400: OpenApiResponse(SendErrorSerializer, description="Content Instagram cannot take."),
    422: OpenApiResponse(
        SendErrorSerializer,
        description="Refused by Meta's messaging policy (`error.code`, `error.message`, "
        "`error.detail.window_closed_at`).",
    ),
}


# -- views -------------------------------------------------------------------------------------


@extend_schema(tags=["conversations"])
class ConversationMessagesView(ConversationMessageListView):
    """A conversation's messages (GET) and sending a new one (POST)."""

    required_scopes = {  # type: ignore[assignment]
        "GET": [ApiScope.CONVERSATIONS_READ],
        "POST": [ApiScope.MESSAGES_SEND],
    }

    def get_serializer_class(self) -> type[serializers.BaseSerializer]:  # type: ignore[type-arg]
        if self.request is not None and self.request.method == "POST":
            return MessageSendInputSerializer
        return MessageOutputSerializer

    @extend_schema(
        operation_id="conversations_messages_send",
        request=MessageSendInputSerializer,
        parameters=[IDEMPOTENCY_HEADER],
        responses={**REFUSALS, 202: MessageOutputSerializer},
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        conversation = self._conversation()
        form = MessageSendInputSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        sender = _sender(self, form.validated_data)
        if isinstance(sender, Response):
            return sender
        key = (request.headers.get("Idempotency-Key") or "").strip()[:255] or None
        try:
            message = outbound.message_send(
                conversation=conversation,
                sender=sender,
                content=_content(form.validated_data),
                idempotency_key=key,
            )
        except SendRefused as exc:
            return _refused(exc)
        except OutboundContentInvalid as exc:
            return _invalid(exc)
        except IdempotencyKeyReused as exc:
            return Response(error_body(exc.code, exc.message), status=422)
        selectors.message_page_attach([message])
        return Response(MessageOutputSerializer(message).data, status=status.HTTP_202_ACCEPTED)


@extend_schema(tags=["conversations"])
class ConversationActionView(TenantAPIView):
    """Show the typing indicator, or mark the conversation seen, to the customer."""

    required_scopes = [ApiScope.MESSAGES_SEND]

    @extend_schema(
        operation_id="conversations_actions_create",
        request=SenderActionInputSerializer,
        responses={**REFUSALS, 202: OutboundJobOutputSerializer},
    )
    def post(self, request: Request, conversation_id: int) -> Response:
        try:
            conversation = selectors.conversation_get(conversation_id=int(conversation_id))
        except Conversation.DoesNotExist as exc:
            raise Http404 from exc
        form = SenderActionInputSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        sender = _sender(self, form.validated_data)
        if isinstance(sender, Response):
            return sender
        try:
            job = outbound.sender_action_send(
                conversation=conversation, sender=sender, action=form.validated_data["action"]
            )
        except SendRefused as exc:
            return _refused(exc)
        return Response(OutboundJobOutputSerializer(job).data, status=status.HTTP_202_ACCEPTED)


@extend_schema(tags=["comments"])
class CommentPrivateReplyView(TenantAPIView):
    """Answer a comment in the commenter's Direct inbox: once per comment, within 7 days."""

    required_scopes = [ApiScope.MESSAGES_SEND]

    @extend_schema(
        operation_id="comments_private_reply",
        request=PrivateReplyInputSerializer,
        responses={**REFUSALS, 202: OutboundJobOutputSerializer},
    )
    def post(self, request: Request, comment_id: int) -> Response:
        comment = Comment.objects.filter(pk=comment_id).select_related("account").first()
        if comment is None:
            raise Http404
        form = PrivateReplyInputSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        sender = _sender(self, form.validated_data)
        if isinstance(sender, Response):
            return sender
        try:
            job = outbound.private_reply_send(
                comment=comment, sender=sender, text=form.validated_data["text"]
            )
        except SendRefused as exc:
            return _refused(exc)
        except OutboundContentInvalid as exc:
            return _invalid(exc)
        return Response(OutboundJobOutputSerializer(job).data, status=status.HTTP_202_ACCEPTED)


@extend_schema(tags=["messages"])
class MessageReactionView(TenantAPIView):
    """React to a customer's message with a heart, or take the reaction back."""

    required_scopes = [ApiScope.MESSAGES_SEND]

    @extend_schema(
        operation_id="messages_reactions_create",
        request=ReactionInputSerializer,
        responses={**REFUSALS, 202: OutboundJobOutputSerializer},
    )
    def post(self, request: Request, message_id: int) -> Response:
        message = Message.objects.filter(pk=message_id).select_related("conversation").first()
        if message is None:
            raise Http404
        form = ReactionInputSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        sender = _sender(self, form.validated_data)
        if isinstance(sender, Response):
            return sender
        try:
            job = outbound.reaction_send(
                message=message, sender=sender, reaction=form.validated_data["reaction"]
            )
        except SendRefused as exc:
            return _refused(exc)
        except OutboundContentInvalid as exc:
            return _invalid(exc)
        return Response(OutboundJobOutputSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class OutboundJobPagination(CursorPagination):
    ordering = "-id"


@extend_schema(tags=["outbound"])
class OutboundJobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantGenericViewSet):
    """What was queued for sending, with its state and last error; dead rows can be replayed."""

    required_scopes = {  # type: ignore[assignment]
        "GET": [ApiScope.CONVERSATIONS_READ],
        "POST": [ApiScope.MESSAGES_SEND],
    }
    serializer_class = OutboundJobOutputSerializer
    pagination_class = OutboundJobPagination
    lookup_value_regex = r"[0-9]+"
    queryset = OutboundJob.objects.none()

    def get_queryset(self) -> QuerySet[OutboundJob]:
        rows = OutboundJob.objects.all()
        wanted = self.request.query_params.get("status")
        if wanted in OutboundJob.Status.values:
            rows = rows.filter(status=wanted)
        return rows

    @extend_schema(
        operation_id="outbound_jobs_list",
        parameters=[OpenApiParameter("status", OpenApiTypes.STR, enum=OutboundJob.Status.values)],
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(operation_id="outbound_jobs_retrieve")
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(
        operation_id="outbound_jobs_replay",
        request=None,
        responses={202: OutboundJobOutputSerializer},
    )
    @action(detail=True, methods=["post"])
    def replay(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        job = self.get_object()
        job = outbound.job_replay(job=job)
        return Response(OutboundJobOutputSerializer(job).data, status=status.HTTP_202_ACCEPTED)
