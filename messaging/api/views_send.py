"""Sending through the partner API: messages, private replies, reactions, sender actions.

Each view validates its input, calls one service of ``messaging.services.outbound`` (which asks
the policy first) and answers ``202`` with what was queued. A refusal answers ``422`` with the
policy's stable code, its sentence and when the window closed; content Instagram can never take
answers ``400``. Sends carry the partner: as a bot, or on behalf of a member (``agent_email``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db.models import QuerySet
from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.base import TenantAPIView, TenantGenericAPIView, TenantGenericViewSet
from accounts.models import ApiScope
from config.api import ApiError, CursorPagination, error_body
from messaging import selectors
from messaging.api.common import conversation_or_404, member_by_email
from messaging.api.serializers import MessageOutputSerializer
from messaging.api.views import ConversationMessageListView
from messaging.models import Comment, Message, OutboundJob
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


# The kinds of button a card or menu item can be (one enum in the schema: ButtonTypeEnum).
BUTTON_TYPES = ["web_url", "postback"]


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
    type = serializers.ChoiceField(choices=BUTTON_TYPES)
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


# -- one way to queue a send -------------------------------------------------------------------


def _sender(view: TenantAPIView | TenantGenericAPIView, data: dict[str, Any]) -> Sender:
    """The partner as a bot, or on behalf of the member named by ``agent_email``."""
    name = view.api_key.name
    if data.get("sender") != "human":
        return Sender.partner(name, bot=True)
    return Sender.partner(name, on_behalf_of=member_by_email(data["agent_email"]).user)


def _queue(
    view: TenantAPIView | TenantGenericAPIView,
    form_class: type[SenderInputSerializer],
    send: Callable[[dict[str, Any], Sender], Any],
    output: Callable[[Any], serializers.BaseSerializer],  # type: ignore[type-arg]
) -> Response:
    """Validate the body, name the sender, call ``send`` and answer 202 with ``output``.

    Every refusal answers in the error shape and is remembered under the Idempotency-Key like
    any answer: policy refusals 422 (with ``detail.window_closed_at``), content Instagram can
    never take and unknown members 400.
    """
    form = form_class(data=view.request.data)
    form.is_valid(raise_exception=True)
    data = form.validated_data
    try:
        result = send(data, _sender(view, data))
    except SendRefused as exc:
        closed = exc.window_closed_at.isoformat() if exc.window_closed_at else None
        body, code = error_body(exc.code, exc.message, {"window_closed_at": closed}), 422
    except OutboundContentInvalid as exc:
        detail = {"field": exc.field} if exc.field else None
        body, code = error_body(exc.code, exc.message, detail), 400
    except IdempotencyKeyReused as exc:
        body, code = error_body(exc.code, exc.message), 422
    except ApiError as exc:
        body, code = error_body(exc.error_code, exc.error_message, exc.error_detail), 400
    else:
        return Response(output(result).data, status=status.HTTP_202_ACCEPTED)
    return Response(body, status=code)


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


def _message_out(message: Message) -> MessageOutputSerializer:
    selectors.message_page_attach([message])
    return MessageOutputSerializer(message)


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
        key = (request.headers.get("Idempotency-Key") or "").strip()[:255] or None
        return _queue(
            self,
            MessageSendInputSerializer,
            lambda data, sender: outbound.message_send(
                conversation=conversation,
                sender=sender,
                content=_content(data),
                idempotency_key=key,
            ),
            _message_out,
        )


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
        conversation = conversation_or_404(conversation_id)
        return _queue(
            self,
            SenderActionInputSerializer,
            lambda data, sender: outbound.sender_action_send(
                conversation=conversation, sender=sender, action=data["action"]
            ),
            OutboundJobOutputSerializer,
        )


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
        return _queue(
            self,
            PrivateReplyInputSerializer,
            lambda data, sender: outbound.private_reply_send(
                comment=comment, sender=sender, text=data["text"]
            ),
            OutboundJobOutputSerializer,
        )


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
        return _queue(
            self,
            ReactionInputSerializer,
            lambda data, sender: outbound.reaction_send(
                message=message, sender=sender, reaction=data["reaction"]
            ),
            OutboundJobOutputSerializer,
        )


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
