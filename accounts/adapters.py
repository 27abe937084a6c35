from __future__ import annotations

from allauth.account.adapter import DefaultAccountAdapter
from django.http import HttpRequest

from accounts.forms import PENDING_INVITATION_KEY


class AccountAdapter(DefaultAccountAdapter):
    def get_login_redirect_url(self, request: HttpRequest) -> str:
        token = request.session.get(PENDING_INVITATION_KEY)
        if token:
            return f"/invitations/{token}/"
        return super().get_login_redirect_url(request)
