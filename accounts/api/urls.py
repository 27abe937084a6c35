from django.urls import path
from rest_framework.routers import SimpleRouter

from accounts.api import views, views_accounts

router = SimpleRouter(trailing_slash=False)
router.register("members", views.MemberViewSet, basename="member")
router.register("accounts", views_accounts.InstagramAccountViewSet, basename="account")
router.register(
    "onboarding-links", views_accounts.OnboardingLinkViewSet, basename="onboarding-link"
)

urlpatterns = [
    path("tenant", views.TenantView.as_view(), name="tenant"),
    path("key", views.KeyView.as_view(), name="key"),
    *router.urls,
]
