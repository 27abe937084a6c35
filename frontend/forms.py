"""Forms of the web UI. They check the shape of input; the services enforce the rules."""

from __future__ import annotations

from typing import Any, cast

from django import forms

from accounts.models import ApiScope, Role


def _role_choices(roles: list[str]) -> list[tuple[str, str]]:
    return [(role, Role(role).label) for role in roles]


class InvitationCreateForm(forms.Form):
    email = forms.EmailField(
        label="Email address",
        max_length=254,
        widget=forms.EmailInput(attrs={"placeholder": "colleague@agency.com"}),
    )
    role = forms.ChoiceField(label="Role")

    def __init__(self, *args: Any, assignable_roles: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        role = cast(forms.ChoiceField, self.fields["role"])
        role.choices = _role_choices(assignable_roles)
        if Role.AGENT in assignable_roles:
            role.initial = Role.AGENT


class MembershipRoleForm(forms.Form):
    role = forms.ChoiceField(label="Role", choices=Role.choices)


class ApiKeyCreateForm(forms.Form):
    name = forms.CharField(
        label="Name",
        max_length=120,
        help_text="Who or what uses this key, so you recognise it later.",
        widget=forms.TextInput(attrs={"placeholder": "e.g. HubSpot sync"}),
    )
    scopes = forms.MultipleChoiceField(
        label="Scopes",
        choices=ApiScope.choices,
        widget=forms.CheckboxSelectMultiple,
        help_text="Grant only what the integration needs.",
        error_messages={"required": "Choose at least one scope."},
    )


class WorkspaceForm(forms.Form):
    name = forms.CharField(
        label="Workspace name",
        max_length=120,
        help_text="Shown to everyone in this workspace and in invitations.",
        widget=forms.TextInput(attrs={"placeholder": "e.g. Northwind Social"}),
    )


class TenantSwitchForm(forms.Form):
    tenant_id = forms.IntegerField(min_value=1)
