"""Team work through the partner API: assign, resolve, reopen, hand over, notes, labels,
canned replies, and the comments on the accounts' posts.

Views validate the body, call one service of ``messaging.services`` (``teamwork`` or
``handover``) and answer with the changed object. A partner acts as itself (no member), so the
team's logs show the change without a person. Changes to a conversation's status, assignee or
labels (and its mode) emit ``conversation.updated`` to the workspace's callback endpoints.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import mixins, status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.base import TenantAPIView, TenantGenericAPIView, TenantGenericViewSet
from accounts.models import ApiScope, Membership
from config.api import ApiError, CursorPagination
from messaging import selectors_inbox
from messaging.api.common import conversation_or_404, member_by_email, teamwork_refusals
from messaging.api.serializers import (
    CannedReplyInputSerializer,
    CannedReplyOutputSerializer,
    CommentFilterInputSerializer,
    CommentOutputSerializer,
    ConversationAssignInputSerializer,
    ConversationLabelInputSerializer,
    ConversationOutputSerializer,
    HandoverInputSerializer,
    LabelInputSerializer,
    LabelOutputSerializer,
    NoteInputSerializer,
    NoteOutputSerializer,
)
from messaging.api.views import PAGE_PARAMETERS
from messaging.models import CannedReply, Comment, Conversation, Label, Note
from messaging.services import handover, teamwork

READ: list[str] = [ApiScope.CONVERSATIONS_READ]
WRITE: list[str] = [ApiScope.CONVERSATIONS_WRITE]
EMITS = "Emits `conversation.updated` (with `changes: [{}]`) when it changed anything."


def _conversation_answer(conversation: Conversation) -> Response:
    """The conversation as it is now, in the list's shape."""
    fresh = conversation_or_404(conversation.pk)
    return Response(ConversationOutputSerializer(fresh).data)


# -- conversation actions ----------------------------------------------------------------------


@extend_schema(tags=["conversations"])
class ConversationAssignView(TenantAPIView):
    """Give the conversation to a member who may answer it, or unassign it."""

    required_scopes = WRITE

    @extend_schema(
        operation_id="conversations_assign",
        request=ConversationAssignInputSerializer,
        responses={200: ConversationOutputSerializer},
        description="The member is named by email or by user id; null unassigns. "
        + EMITS.format("assignee"),
        examples=[
            OpenApiExample("by email", value={"agent_email": "agent@agency.example"}),
            OpenApiExample("unassign", value={"agent_email": None}),
        ],
    )
    def post(self, request: Request, conversation_id: int) -> Response:
        conversation = conversation_or_404(conversation_id)
        form = ConversationAssignInputSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        member: Membership | None = None
        if data.get("agent_email"):
            member = member_by_email(data["agent_email"])
        elif data.get("assignee"):
            member = (
                Membership.objects.filter(user_id=data["assignee"]).select_related("user").first()
            )
            if member is None:
                raise ApiError("unknown_agent", "No member of this workspace has that user id.")
        with teamwork_refusals():
            teamwork.conversation_assign(conversation=conversation, assignee=member, actor=None)
        return _conversation_answer(conversation)


@extend_schema(tags=["conversations"])
class ConversationResolveView(TenantAPIView):
    """Mark the conversation resolved (its unread count goes to 0)."""

    required_scopes = WRITE

    @extend_schema(
        operation_id="conversations_resolve",
        request=None,
        responses={200: ConversationOutputSerializer},
        description="Resolving a resolved conversation changes nothing. " + EMITS.format("status"),
    )
    def post(self, request: Request, conversation_id: int) -> Response:
        conversation = conversation_or_404(conversation_id)
        teamwork.conversation_resolve(conversation=conversation, actor=None)
        return _conversation_answer(conversation)


@extend_schema(tags=["conversations"])
class ConversationReopenView(TenantAPIView):
    """Open a resolved conversation again."""

    required_scopes = WRITE

    @extend_schema(
        operation_id="conversations_reopen",
        request=None,
        responses={200: ConversationOutputSerializer},
        description="Reopening an open conversation changes nothing. " + EMITS.format("status"),
    )
    def post(self, request: Request, conversation_id: int) -> Response:
        conversation = conversation_or_404(conversation_id)
        teamwork.conversation_reopen(conversation=conversation, actor=None)
        return _conversation_answer(conversation)


@extend_schema(tags=["conversations"])
class ConversationHandoverView(TenantAPIView):
    """Hand the conversation to a person (automation stays quiet) or back to automation."""

    required_scopes = WRITE

    @extend_schema(
        operation_id="conversations_handover",
        request=HandoverInputSerializer,
        responses={200: ConversationOutputSerializer},
        description="Sets the conversation's `mode`. " + EMITS.format("mode"),
        examples=[OpenApiExample("to a person", value={"mode": "human"})],
    )
    def post(self, request: Request, conversation_id: int) -> Response:
        conversation = conversation_or_404(conversation_id)
        form = HandoverInputSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        handover.conversation_mode_set(
            conversation=conversation, mode=form.validated_data["mode"], reason="partner"
        )
        return _conversation_answer(conversation)


# -- notes -------------------------------------------------------------------------------------


class NoteCursorPagination(CursorPagination):
    ordering = ("created_at", "id")  # type: ignore[assignment]


@extend_schema(tags=["conversations"])
class ConversationNotesView(mixins.ListModelMixin, TenantGenericAPIView):
    """The team's internal notes on a conversation (never shown to the customer), oldest first,
    and adding one."""

    required_scopes = {"GET": READ, "POST": WRITE}
    serializer_class = NoteOutputSerializer
    pagination_class = NoteCursorPagination
    queryset = Note.objects.none()

    def get_queryset(self) -> QuerySet[Note]:
        conversation = conversation_or_404(self.kwargs["conversation_id"])
        return selectors_inbox.note_list(conversation=conversation)

    @extend_schema(operation_id="conversations_notes_list", parameters=PAGE_PARAMETERS)
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.list(request, *args, **kwargs)

    @extend_schema(
        operation_id="conversations_notes_create",
        request=NoteInputSerializer,
        responses={201: NoteOutputSerializer},
        description="`@name` in the body mentions a member (by the part of their email before "
        "the @, or their first name).",
        examples=[OpenApiExample("a note", value={"body": "Refund approved, @sam will reply."})],
    )
    def post(self, request: Request, conversation_id: int) -> Response:
        conversation = conversation_or_404(conversation_id)
        form = NoteInputSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        email = form.validated_data.get("agent_email")
        author = member_by_email(email).user if email else None
        with teamwork_refusals():
            note = teamwork.note_add(
                conversation=conversation, author=author, body=form.validated_data["body"]
            )
        return Response(NoteOutputSerializer(note).data, status=status.HTTP_201_CREATED)


# -- labels on a conversation ------------------------------------------------------------------


def _label_or_404(label_id: int | str) -> Label:
    try:
        return selectors_inbox.label_get(label_id=int(label_id))
    except Label.DoesNotExist as exc:
        raise Http404 from exc


@extend_schema(tags=["conversations"])
class ConversationLabelsView(TenantAPIView):
    """Put a label on the conversation, by id or by name (a new name creates the label)."""

    required_scopes = WRITE

    @extend_schema(
        operation_id="conversations_labels_add",
        request=ConversationLabelInputSerializer,
        responses={200: ConversationOutputSerializer},
        description="A label already on the conversation stays, once. " + EMITS.format("labels"),
        examples=[
            OpenApiExample("by name", value={"name": "VIP"}),
            OpenApiExample("by id", value={"label_id": 4}),
        ],
    )
    def post(self, request: Request, conversation_id: int) -> Response:
        conversation = conversation_or_404(conversation_id)
        form = ConversationLabelInputSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        with teamwork_refusals():
            if "label_id" in data:
                label = Label.objects.filter(pk=data["label_id"]).first()
                if label is None:
                    raise ApiError(
                        "invalid",
                        "The request is not valid.",
                        detail={"label_id": ["No such label."]},
                    )
                teamwork.label_apply(conversation=conversation, label=label, actor=None)
            else:
                teamwork.label_apply_by_name(
                    conversation=conversation, name=data["name"], actor=None
                )
        return _conversation_answer(conversation)


@extend_schema(tags=["conversations"])
class ConversationLabelView(TenantAPIView):
    """Take a label off the conversation."""

    required_scopes = WRITE

    @extend_schema(
        operation_id="conversations_labels_remove",
        request=None,
        responses={200: ConversationOutputSerializer},
        description="Removing a label the conversation does not carry changes nothing. "
        + EMITS.format("labels"),
    )
    def delete(self, request: Request, conversation_id: int, label_id: int) -> Response:
        conversation = conversation_or_404(conversation_id)
        label = _label_or_404(label_id)
        teamwork.label_remove(conversation=conversation, label=label, actor=None)
        return _conversation_answer(conversation)


# -- the workspace's labels and canned replies -------------------------------------------------


class NameCursorPagination(CursorPagination):
    ordering = ("name", "id")  # type: ignore[assignment]


class ShortcutCursorPagination(CursorPagination):
    ordering = ("shortcut", "id")  # type: ignore[assignment]


@extend_schema(tags=["labels"])
class LabelViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantGenericViewSet):
    """The workspace's labels, by name. Deleting one takes it off every conversation."""

    required_scopes = {
        "GET": READ,
        "POST": WRITE,
        "PATCH": WRITE,
        "DELETE": WRITE,
    }
    serializer_class = LabelOutputSerializer
    pagination_class = NameCursorPagination
    lookup_value_regex = r"[0-9]+"
    queryset = Label.objects.none()

    def get_queryset(self) -> QuerySet[Label]:
        return selectors_inbox.label_list()

    def get_object(self) -> Label:
        return _label_or_404(self.kwargs["pk"])

    @extend_schema(operation_id="labels_list", parameters=PAGE_PARAMETERS)
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(operation_id="labels_retrieve")
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(
        operation_id="labels_create",
        request=LabelInputSerializer,
        responses={201: LabelOutputSerializer},
        examples=[OpenApiExample("a label", value={"name": "VIP", "color": "violet"})],
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        form = LabelInputSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        with teamwork_refusals():
            label = teamwork.label_create(
                tenant_id=self.tenant.pk,
                name=form.validated_data["name"],
                color=form.validated_data.get("color", Label.Color.BLUE),
                actor=None,
            )
        return Response(LabelOutputSerializer(label).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="labels_update",
        request=LabelInputSerializer(partial=True),
        responses={200: LabelOutputSerializer},
    )
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        label = self.get_object()
        form = LabelInputSerializer(data=request.data, partial=True)
        form.is_valid(raise_exception=True)
        with teamwork_refusals():
            label = teamwork.label_update(
                label=label,
                name=form.validated_data.get("name", label.name),
                color=form.validated_data.get("color", label.color),
                actor=None,
            )
        return Response(LabelOutputSerializer(label).data)

    @extend_schema(operation_id="labels_delete", responses={204: None})
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        teamwork.label_delete(label=self.get_object(), actor=None)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=["canned replies"])
class CannedReplyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantGenericViewSet):
    """Saved answers agents insert with `/shortcut`, by shortcut."""

    required_scopes = {
        "GET": READ,
        "POST": WRITE,
        "PATCH": WRITE,
        "DELETE": WRITE,
    }
    serializer_class = CannedReplyOutputSerializer
    pagination_class = ShortcutCursorPagination
    lookup_value_regex = r"[0-9]+"
    queryset = CannedReply.objects.none()

    def get_queryset(self) -> QuerySet[CannedReply]:
        return selectors_inbox.canned_reply_list()

    def get_object(self) -> CannedReply:
        try:
            return selectors_inbox.canned_reply_get(reply_id=int(self.kwargs["pk"]))
        except CannedReply.DoesNotExist as exc:
            raise Http404 from exc

    @extend_schema(operation_id="canned_replies_list", parameters=PAGE_PARAMETERS)
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(operation_id="canned_replies_retrieve")
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(
        operation_id="canned_replies_create",
        request=CannedReplyInputSerializer,
        responses={201: CannedReplyOutputSerializer},
        examples=[
            OpenApiExample(
                "shipping", value={"shortcut": "shipping", "body": "We ship in 2 working days."}
            )
        ],
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        form = CannedReplyInputSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        with teamwork_refusals():
            reply = teamwork.canned_reply_create(
                tenant_id=self.tenant.pk,
                shortcut=form.validated_data["shortcut"],
                body=form.validated_data["body"],
                actor=None,
            )
        return Response(CannedReplyOutputSerializer(reply).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="canned_replies_update",
        request=CannedReplyInputSerializer(partial=True),
        responses={200: CannedReplyOutputSerializer},
    )
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        reply = self.get_object()
        form = CannedReplyInputSerializer(data=request.data, partial=True)
        form.is_valid(raise_exception=True)
        with teamwork_refusals():
            reply = teamwork.canned_reply_update(
                reply=reply,
                shortcut=form.validated_data.get("shortcut", reply.shortcut),
                body=form.validated_data.get("body", reply.body),
                actor=None,
            )
        return Response(CannedReplyOutputSerializer(reply).data)

    @extend_schema(operation_id="canned_replies_delete", responses={204: None})
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        teamwork.canned_reply_delete(reply=self.get_object(), actor=None)
        return Response(status=status.HTTP_204_NO_CONTENT)


# -- comments ----------------------------------------------------------------------------------


class CommentCursorPagination(CursorPagination):
    ordering = ("-commented_at", "-id")  # type: ignore[assignment]


@extend_schema(tags=["comments"])
class CommentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantGenericViewSet):
    """Comments on the accounts' posts and reels, newest first: each may get one private reply
    (`POST /api/v1/comments/{id}/private-reply`) within 7 days."""

    required_scopes = READ
    serializer_class = CommentOutputSerializer
    pagination_class = CommentCursorPagination
    lookup_value_regex = r"[0-9]+"
    queryset = Comment.objects.none()

    def get_queryset(self) -> QuerySet[Comment]:
        form = CommentFilterInputSerializer(data=self.request.query_params)
        form.is_valid(raise_exception=True)
        return selectors_inbox.comment_list(
            account_id=form.validated_data.get("account"),
            pending_only=form.validated_data["pending"],
        )

    def get_object(self) -> Comment:
        try:
            return selectors_inbox.comment_get(
                comment_id=int(self.kwargs["pk"]), visible_account_ids=None
            )
        except Comment.DoesNotExist as exc:
            raise Http404 from exc

    @extend_schema(
        operation_id="comments_list",
        parameters=[
            OpenApiParameter("account", OpenApiTypes.INT, description="Only this account's."),
            OpenApiParameter(
                "pending", OpenApiTypes.BOOL, description="`true`: not yet privately answered."
            ),
            *PAGE_PARAMETERS,
        ],
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(operation_id="comments_retrieve")
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().retrieve(request, *args, **kwargs)
