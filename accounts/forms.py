from __future__ import annotations

from django import forms
from django.http import HttpRequest

from accounts.models import User

PENDING_INVITATION_KEY = "pending_invitation_token"


class WorkspaceSignupForm(forms.Form):
    """Extra signup field: the workspace the new person will own."""

    workspace = forms.CharField(
        max_length=120,
        required=False,
        label="Agency or workspace name",
        widget=forms.TextInput(attrs={"placeholder": "e.g. Northwind Social"}),
    )

    def signup(self, request: HttpRequest, user: User) -> None:
        from accounts import services

        # People who arrive through an invitation join that workspace instead.
        if request.session.get(PENDING_INVITATION_KEY):
            return
        name = self.cleaned_data.get("workspace") or f"{user.email.split('@')[0]}'s workspace"
        services.tenant_create_with_owner(name=name, owner=user)
