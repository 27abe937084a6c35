"""Conversations API for partners: read conversations, their messages and contacts.

Every row comes from ``messaging.selectors`` inside the key's tenant scope, so another
tenant's id is not found: 404, the same as an id that never existed.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import mixins
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.base import TenantGenericAPIView, TenantGenericViewSet
from accounts.models import ApiScope
from config.api import ApiError, CursorPagination
from messaging import selectors
from messaging.api.common import conversation_or_404, teamwork_refusals
from messaging.api.serializers import (
    CONVERSATION_EXPANDS,
    ContactDetailSerializer,
    ContactLabelsInputSerializer,
    ConversationFilterInputSerializer,
    ConversationOutputSerializer,
    LabelSummarySerializer,
    MessageOutputSerializer,
    expand_parse,
)
from messaging.models import Contact, Conversation, Message
from messaging.services import teamwork


class ConversationCursorPagination(CursorPagination):
    # ``sort_at`` is the last message's time (the creation time for a thread still empty).
    ordering = ("-sort_at", "-id")  # type: ignore[assignment]


class MessageCursorPagination(CursorPagination):
    ordering = ("sent_at", "id")  # type: ignore[assignment]


PAGE_PARAMETERS = [
    OpenApiParameter("cursor", OpenApiTypes.STR, description="The `next` or `previous` cursor."),
    OpenApiParameter("page_size", OpenApiTypes.INT, description="1 to 200, 50 by default."),
]

CONVERSATION_FILTERS = [
    OpenApiParameter("account", OpenApiTypes.INT, description="Only this Instagram account."),
    OpenApiParameter("status", OpenApiTypes.STR, enum=Conversation.Status.values),
    OpenApiParameter(
        "assignee", OpenApiTypes.STR, description="A member's user id, or `none` for unassigned."
    ),
    OpenApiParameter(
        "unread", OpenApiTypes.BOOL, description="`true`: with unread messages; `false`: none."
    ),
    OpenApiParameter(
        "updated_since", OpenApiTypes.DATETIME, description="Changed at or after (ISO-8601)."
    ),
    OpenApiParameter("label", OpenApiTypes.INT, description="Only those carrying this label (id)."),
]

EXPAND_PARAMETER = OpenApiParameter(
    "expand",
    OpenApiTypes.STR,
    description="Comma-separated: embed in full instead of the short form, in the same "
    f"request: {', '.join(f'`{name}`' for name in CONVERSATION_EXPANDS)}. `contact` gives "
    "the whole contact (as `GET /api/v1/contacts/{id}`), `last_message` the whole message "
    "(as in the messages list), `assignee` the member's id, email and name.",
    examples=[OpenApiExample("contact and last message", value="contact,last_message")],
)


@extend_schema(tags=["conversations"])
class ConversationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantGenericViewSet):
    """Conversations of the workspace's Instagram accounts, most recent first."""

    required_scopes = [ApiScope.CONVERSATIONS_READ]
    serializer_class = ConversationOutputSerializer
    pagination_class = ConversationCursorPagination
    lookup_value_regex = r"[0-9]+"
    # Names the model for the schema (built outside any tenant scope); rows come from selectors.
    queryset = Conversation.objects.none()

    def get_serializer_context(self) -> dict[str, Any]:
        context = super().get_serializer_context()
        if getattr(self, "request", None) is not None:
            context["expand"] = expand_parse(self.request.query_params)
        return context

    def paginate_queryset(self, queryset: QuerySet[Conversation]) -> list[Conversation] | None:  # type: ignore[override]
        page = super().paginate_queryset(queryset)
        if page is not None and "last_message" in expand_parse(self.request.query_params):
            selectors.latest_messages_attach(page)  # the whole page's quotes and reactions
        return page

    def get_queryset(self) -> QuerySet[Conversation]:
        expand_parse(self.request.query_params)  # a bad `expand` is a 400 before any read
        if self.action != "list":
            return selectors.conversation_list()
        filters = ConversationFilterInputSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        data = filters.validated_data
        assignee = data.get("assignee")
        return selectors.conversation_list(
            account_id=data.get("account"),
            status=data.get("status"),
            assignee_id=int(assignee) if assignee and assignee != "none" else None,
            unassigned=assignee == "none",
            unread=data.get("unread"),
            updated_since=data.get("updated_since"),
            label_id=data.get("label"),
        )

    @extend_schema(
        operation_id="conversations_list",
        parameters=[*CONVERSATION_FILTERS, EXPAND_PARAMETER, *PAGE_PARAMETERS],
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(operation_id="conversations_retrieve", parameters=[EXPAND_PARAMETER])
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().retrieve(request, *args, **kwargs)


@extend_schema(tags=["conversations"])
class ConversationMessageListView(mixins.ListModelMixin, TenantGenericAPIView):
    """A conversation's messages in reading order (oldest first), with reactions and quotes."""

    required_scopes = [ApiScope.CONVERSATIONS_READ]
    serializer_class = MessageOutputSerializer
    pagination_class = MessageCursorPagination
    queryset = Message.objects.none()

    def get_queryset(self) -> QuerySet[Message]:
        conversation = self._conversation()
        return selectors.message_list(conversation=conversation)

    def _conversation(self) -> Conversation:
        return conversation_or_404(self.kwargs["conversation_id"])

    def paginate_queryset(self, queryset: QuerySet[Message]) -> list[Message] | None:  # type: ignore[override]
        page = super().paginate_queryset(queryset)
        if page is not None:
            selectors.message_page_attach(page)
        return page

    @extend_schema(operation_id="conversations_messages_list", parameters=PAGE_PARAMETERS)
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.list(request, *args, **kwargs)


@extend_schema(tags=["contacts"])
class ContactViewSet(mixins.RetrieveModelMixin, TenantGenericViewSet):
    """A customer as seen by one of the workspace's Instagram accounts, with the labels on their
    conversation."""

    required_scopes = {  # type: ignore[assignment]
        "GET": [ApiScope.CONVERSATIONS_READ],
        "PUT": [ApiScope.CONVERSATIONS_WRITE],
    }
    serializer_class = ContactDetailSerializer
    lookup_value_regex = r"[0-9]+"
    queryset = Contact.objects.none()

    def get_object(self) -> Contact:
        try:
            return selectors.contact_get(contact_id=int(self.kwargs["pk"]))
        except Contact.DoesNotExist as exc:
            raise Http404 from exc

    @extend_schema(operation_id="contacts_retrieve")
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(
        operation_id="contacts_labels_set",
        request=ContactLabelsInputSerializer,
        responses={200: LabelSummarySerializer(many=True)},
        examples=[OpenApiExample("two labels", value={"labels": ["VIP", "Refund"]})],
        description="Set the labels on the contact's conversation, by name: the answer is "
        "every label it now carries. Emits `conversation.updated` with `labels` when they "
        "changed.",
    )
    @action(detail=True, methods=["put"], url_path="labels")
    def labels(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        contact = self.get_object()
        form = ContactLabelsInputSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            conversation = contact.conversation
        except Conversation.DoesNotExist:
            raise ApiError(
                "no_conversation", "This contact has no conversation to label yet."
            ) from None
        with teamwork_refusals():
            labels = teamwork.conversation_labels_set(
                conversation=conversation, names=form.validated_data["labels"], actor=None
            )
        return Response(LabelSummarySerializer(labels, many=True).data)
