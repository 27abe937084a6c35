"""Compliance pages: contact export and erasure, retention, the audit log, workspace deletion,
and the public status page of a Meta data deletion request.

Included from ``frontend/urls.py`` without a namespace of its own: names read
``frontend:compliance_*`` (and ``frontend:data_deletion_status``).
"""

from django.urls import path

from frontend.compliance import views

urlpatterns = [
    path("compliance/", views.compliance_settings, name="compliance_settings"),
    path("compliance/audit-log/", views.audit_log, name="compliance_audit_log"),
    path(
        "compliance/contacts/<int:contact_id>/export/",
        views.contact_export,
        name="compliance_contact_export",
    ),
    path(
        "compliance/contacts/<int:contact_id>/erase/",
        views.contact_erase,
        name="compliance_contact_erase",
    ),
    path("compliance/delete-workspace/", views.tenant_delete, name="compliance_tenant_delete"),
    path(
        "compliance/workspace-deletions/<int:job_id>/",
        views.tenant_deletion_progress,
        name="compliance_tenant_deletion",
    ),
    path("data-deletion/<str:code>/", views.data_deletion_status, name="data_deletion_status"),
]
