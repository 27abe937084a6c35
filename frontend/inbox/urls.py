from django.urls import path

from frontend.inbox import views

app_name = "inbox"

urlpatterns = [
    path("", views.conversation_list, name="conversation_list"),
    path("<int:conversation_id>/", views.conversation_detail, name="conversation_detail"),
]
