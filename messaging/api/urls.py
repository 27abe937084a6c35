from django.urls import path
from rest_framework.routers import SimpleRouter

from messaging.api import views, views_send, views_teamwork

router = SimpleRouter(trailing_slash=False)
router.register("conversations", views.ConversationViewSet, basename="conversation")
router.register("contacts", views.ContactViewSet, basename="contact")
router.register("outbound-jobs", views_send.OutboundJobViewSet, basename="outbound-job")
router.register("labels", views_teamwork.LabelViewSet, basename="label")
router.register("canned-replies", views_teamwork.CannedReplyViewSet, basename="canned-reply")
router.register("comments", views_teamwork.CommentViewSet, basename="comment")

urlpatterns = [
    path(
        "conversations/<int:conversation_id>/messages",
        views_send.ConversationMessagesView.as_view(),
        name="conversation-messages",
    ),
    path(
        "conversations/<int:conversation_id>/actions",
        views_send.ConversationActionView.as_view(),
        name="conversation-actions",
    ),
    path(
        "conversations/<int:conversation_id>/assign",
        views_teamwork.ConversationAssignView.as_view(),
        name="conversation-assign",
    ),
    path(
        "conversations/<int:conversation_id>/resolve",
        views_teamwork.ConversationResolveView.as_view(),
        name="conversation-resolve",
    ),
    path(
        "conversations/<int:conversation_id>/reopen",
        views_teamwork.ConversationReopenView.as_view(),
        name="conversation-reopen",
    ),
    path(
        "conversations/<int:conversation_id>/handover",
        views_teamwork.ConversationHandoverView.as_view(),
        name="conversation-handover",
    ),
    path(
        "conversations/<int:conversation_id>/notes",
        views_teamwork.ConversationNotesView.as_view(),
        name="conversation-notes",
    ),
    path(
        "conversations/<int:conversation_id>/labels",
        views_teamwork.ConversationLabelsView.as_view(),
        name="conversation-labels",
    ),
    path(
        "conversations/<int:conversation_id>/labels/<int:label_id>",
        views_teamwork.ConversationLabelView.as_view(),
        name="conversation-label",
    ),
    path(
        "comments/<int:comment_id>/private-reply",
        views_send.CommentPrivateReplyView.as_view(),
        name="comment-private-reply",
    ),
    path(
        "messages/<int:message_id>/reactions",
        views_send.MessageReactionView.as_view(),
        name="message-reactions",
    ),
    *router.urls,
]
