from django.urls import path
from rest_framework.routers import SimpleRouter

from accounts.api import views

router = SimpleRouter(trailing_slash=False)
router.register("members", views.MemberViewSet, basename="member")

urlpatterns = [
    path("tenant", views.TenantView.as_view(), name="tenant"),
    path("key", views.KeyView.as_view(), name="key"),
    *router.urls,
]
