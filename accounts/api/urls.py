from django.urls import path
from rest_framework.routers import SimpleRouter

from accounts.api import views, views_accounts, views_compliance

router = SimpleRouter(trailing_slash=False)
router.register("members", views.MemberViewSet, basename="member")
router.register("accounts", views_accounts.InstagramAccountViewSet, basename="account")
router.register(
    "onboarding-links", views_accounts.OnboardingLinkViewSet, basename="onboarding-link"
)

urlpatterns = [
    path("tenant", views.TenantView.as_view(), name="tenant"),
    path("key", views.KeyView.as_view(), name="key"),
    path(
        "contacts/<int:contact_id>/export",
        views_compliance.ContactExportView.as_view(),
        name="contact-export",
    ),
    path(
        "contacts/<int:contact_id>/erase",
        views_compliance.ContactEraseView.as_view(),
        name="contact-erase",
    ),
    path("audit-log", views_compliance.AuditLogView.as_view(), name="audit-log"),
    *router.urls,
]
