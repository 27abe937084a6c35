from django.urls import path

from webhooks import callbacks, data_deletion, views

app_name = "webhooks"

urlpatterns = [
    path("meta", views.meta_webhook, name="meta"),
    path("meta/deauthorize", callbacks.meta_deauthorize, name="meta_deauthorize"),
    path("meta/data-deletion", data_deletion.meta_data_deletion, name="meta_data_deletion"),
]
