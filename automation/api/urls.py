from django.urls import path

from automation.api import views

urlpatterns = [
    path(
        "accounts/<int:account_id>/rules",
        views.AccountRulesView.as_view(),
        name="account-rules",
    ),
    path(
        "accounts/<int:account_id>/automation",
        views.AccountAutomationView.as_view(),
        name="account-automation",
    ),
    path("rules/<int:pk>", views.RuleView.as_view(), name="rule"),
    path("rules/<int:pk>/runs", views.RuleRunsView.as_view(), name="rule-runs"),
]
