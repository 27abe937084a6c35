"""Automation pages: an account's rules, their history, business hours, ice breakers and menu.

Included from ``frontend/urls.py`` without a namespace of its own: names read
``frontend:automation_*``.
"""

from django.urls import path

from frontend.automation import views

urlpatterns = [
    path("automation/", views.index, name="automation_index"),
    path("automation/accounts/<int:account_id>/", views.overview, name="automation_overview"),
    path(
        "automation/accounts/<int:account_id>/rules/new/",
        views.rule_create,
        name="automation_rule_create",
    ),
    path("automation/accounts/<int:account_id>/hours/", views.hours, name="automation_hours"),
    path("automation/accounts/<int:account_id>/profile/", views.profile, name="automation_profile"),
    path("automation/rules/<int:rule_id>/", views.rule_edit, name="automation_rule_edit"),
    path("automation/rules/<int:rule_id>/toggle/", views.rule_toggle, name="automation_toggle"),
    path("automation/rules/<int:rule_id>/move/", views.rule_move, name="automation_move"),
    path("automation/rules/<int:rule_id>/delete/", views.rule_delete, name="automation_delete"),
    path("automation/rules/<int:rule_id>/history/", views.history, name="automation_history"),
]
