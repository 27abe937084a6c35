from django.urls import path
from rest_framework.routers import SimpleRouter

from messaging.api import views

router = SimpleRouter(trailing_slash=False)
router.register("conversations", views.ConversationViewSet, basename="conversation")
router.register("contacts", views.ContactViewSet, basename="contact")

urlpatterns = [
    path(
        "conversations/<int:conversation_id>/messages",
        views.ConversationMessageListView.as_view(),
        name="conversation-messages",
    ),
    *router.urls,
]
