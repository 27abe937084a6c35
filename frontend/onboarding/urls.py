"""Connecting Instagram accounts, their health, client links and agents' account access.

Included from ``frontend/urls.py`` without a namespace of its own, so names read
``frontend:onboarding_*``.
"""

from django.urls import path

from frontend.onboarding import views

urlpatterns = [
    path("instagram-accounts/connect/", views.connect, name="onboarding_connect"),
    path("instagram-accounts/connect/pick/", views.pick, name="onboarding_pick"),
    path("instagram-accounts/links/", views.links, name="onboarding_links"),
    path(
        "instagram-accounts/links/<int:link_id>/revoke/",
        views.link_revoke,
        name="onboarding_link_revoke",
    ),
    path("instagram-accounts/<int:account_id>/", views.account_health, name="onboarding_account"),
    path(
        "instagram-accounts/<int:account_id>/check/",
        views.account_check,
        name="onboarding_account_check",
    ),
    path(
        "instagram-accounts/<int:account_id>/disconnect/",
        views.account_disconnect,
        name="onboarding_account_disconnect",
    ),
    path(
        "instagram-accounts/<int:account_id>/reconnect-link/",
        views.account_reconnect_link,
        name="onboarding_reconnect_link",
    ),
    path(
        "members/<int:membership_id>/accounts/",
        views.member_accounts,
        name="onboarding_member_accounts",
    ),
    # The redirect URIs registered with Meta, one per login.
    path(
        "onboarding/callback/facebook/",
        views.callback,
        {"login_kind": "facebook"},
        name="onboarding_callback_facebook",
    ),
    path(
        "onboarding/callback/instagram/",
        views.callback,
        {"login_kind": "instagram"},
        name="onboarding_callback_instagram",
    ),
    path("connect/<str:token>/", views.client_start, name="onboarding_client"),
    path("connect/<str:token>/accounts/", views.client_pick, name="onboarding_client_pick"),
]
