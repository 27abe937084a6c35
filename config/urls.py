from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from config import health

api_v1: list[URLPattern | URLResolver] = [
    path("", include(("accounts.api.urls", "accounts"), namespace="accounts-api")),
    path("", include(("messaging.api.urls", "messaging"), namespace="messaging-api")),
    path("", include(("webhooks.api.urls", "webhooks"), namespace="webhooks-api")),
    path("", include(("automation.api.urls", "automation"), namespace="automation-api")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
]

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("livez", health.livez, name="livez"),
    path("readyz", health.readyz, name="readyz"),
    path("api/v1/", include((api_v1, "api"), namespace="api")),
    path("webhooks/", include("webhooks.urls")),
    path("accounts/", include("allauth.urls")),
    path("platform-admin/", admin.site.urls),
    path("inbox/", include("frontend.inbox.urls")),
    path("settings/", include("frontend.settings_pages.urls")),
    path("", include("frontend.urls")),
]
