from django.urls import path

from webhooks import views

app_name = "webhooks"

urlpatterns = [
    path("meta", views.meta_webhook, name="meta"),
]
