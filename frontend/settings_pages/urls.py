"""Workspace settings for the inbox: saved replies, labels, messaging (bot disclosure)."""

from django.urls import path

from frontend.settings_pages import views

app_name = "settings_pages"

urlpatterns = [
    path("replies/", views.replies, name="replies"),
    path("replies/<int:reply_id>/", views.reply_update, name="reply_update"),
    path("replies/<int:reply_id>/delete/", views.reply_delete, name="reply_delete"),
    path("labels/", views.label_create, name="label_create"),
    path("labels/<int:label_id>/delete/", views.label_delete, name="label_delete"),
    path("messaging/", views.messaging, name="messaging"),
]
