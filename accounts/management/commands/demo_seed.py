"""Seed the demo workspace: an agency, its owner and an agent, and a partner API key.

Idempotent: the second run finds what the first made. Passwords and the API key are generated
on the first run and kept in VAR_DIR/demo-credentials.json, readable only by this user.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from allauth.account.models import EmailAddress
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django_scopes import scope, scopes_disabled

from accounts import services
from accounts.models import ApiScope, Membership, Role, Tenant, User

AGENCY = "Demo Agency"
PEOPLE = [("owner@demo.example", Role.OWNER), ("agent@demo.example", Role.AGENT)]


class Command(BaseCommand):
    help = "Create the demo agency, its people and a partner API key (idempotent)."

    def handle(self, *args: Any, **options: Any) -> None:
        path = settings.VAR_DIR / "demo-credentials.json"
        saved: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
        with transaction.atomic(), scopes_disabled():
            tenant = Tenant.objects.filter(name=AGENCY).order_by("pk").first()
            for email, role in PEOPLE:
                password = saved.get(email) or secrets.token_urlsafe(9)
                saved[email] = password
                user = User.objects.filter(email=email).first()
                if user is None:
                    user = User.objects.create_user(email=email, password=password)
                    EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
                if tenant is None:
                    tenant = services.tenant_create_with_owner(name=AGENCY, owner=user)
                Membership.objects.get_or_create(tenant=tenant, user=user, defaults={"role": role})
            if tenant is None:
                raise CommandError("The demo agency could not be created.")
            if "api_key" not in saved:
                with scope(tenant=tenant):
                    _, saved["api_key"] = services.api_key_create(
                        tenant=tenant,
                        name="Demo partner",
                        scopes=list(ApiScope.values),
                        created_by=None,
                    )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(saved, indent=2))
        path.chmod(0o600)
        self.stdout.write(json.dumps({"tenant": tenant.name, **saved}))
