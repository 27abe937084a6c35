"""The agents' inbox: pages, htmx fragments, team-work actions, comments and live updates."""

from django.urls import path

from frontend.inbox import views

app_name = "inbox"

urlpatterns = [
    path("", views.conversation_list, name="conversation_list"),
    path("list/", views.list_fragment, name="list_fragment"),
    path("poll/", views.poll, name="poll"),
    path("<int:conversation_id>/", views.conversation_detail, name="conversation_detail"),
    path("<int:conversation_id>/thread/", views.thread_fragment, name="thread_fragment"),
    path("<int:conversation_id>/earlier/", views.earlier, name="earlier"),
    path("<int:conversation_id>/send/", views.send, name="send"),
    path("<int:conversation_id>/messages/<int:message_id>/retry/", views.retry, name="retry"),
    path("<int:conversation_id>/assign/", views.assign, name="assign"),
    path("<int:conversation_id>/status/", views.set_status, name="status"),
    path("<int:conversation_id>/mode/", views.set_mode, name="mode"),
    path("<int:conversation_id>/notes/", views.note_add, name="note_add"),
    path("<int:conversation_id>/labels/", views.label_apply, name="label_apply"),
    path(
        "<int:conversation_id>/labels/<int:label_id>/remove/",
        views.label_remove,
        name="label_remove",
    ),
    path("accounts/<int:account_id>/comments/", views.comments, name="comments"),
    path("comments/<int:comment_id>/reply/", views.private_reply, name="private_reply"),
]
