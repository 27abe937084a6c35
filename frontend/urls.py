from django.urls import include, path

from frontend import views

app_name = "frontend"

urlpatterns = [
    path("", views.home, name="home"),
    path("instagram-accounts/", views.instagram_accounts, name="instagram_accounts"),
    path("workspaces/switch/", views.tenant_switch, name="tenant_switch"),
    path("workspaces/new/", views.workspace_create, name="workspace_create"),
    path("members/", views.members, name="members"),
    path("members/<int:membership_id>/role/", views.member_role, name="member_role"),
    path("members/<int:membership_id>/remove/", views.member_remove, name="member_remove"),
    path("members/invitations/", views.invitation_create, name="invitation_create"),
    path(
        "members/invitations/<int:invitation_id>/revoke/",
        views.invitation_revoke,
        name="invitation_revoke",
    ),
    path("invitations/<str:token>/", views.invitation_accept, name="invitation_accept"),
    path("api-keys/", views.api_keys, name="api_keys"),
    path("api-keys/new/", views.api_key_create, name="api_key_create"),
    path("api-keys/<int:api_key_id>/revoke/", views.api_key_revoke, name="api_key_revoke"),
    path("settings/", views.settings_page, name="settings"),
    path("", include("frontend.onboarding.urls")),
    path("", include("frontend.compliance.urls")),
    path("", include("frontend.automation.urls")),
]
