from django.urls import path

from webhooks import callbacks, views

app_name = "webhooks"

urlpatterns = [
    path("meta", views.meta_webhook, name="meta"),
    path("meta/deauthorize", callbacks.meta_deauthorize, name="meta_deauthorize"),
]
