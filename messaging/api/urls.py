from django.urls import path
from rest_framework.routers import SimpleRouter

from messaging.api import views, views_send

router = SimpleRouter(trailing_slash=False)
router.register("conversations", views.ConversationViewSet, basename="conversation")
router.register("contacts", views.ContactViewSet, basename="contact")
router.register("outbound-jobs", views_send.OutboundJobViewSet, basename="outbound-job")

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
