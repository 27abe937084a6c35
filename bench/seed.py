"""Migrate a fresh benchmark database and seed one workspace, account and partner API key.

Run in a process whose environment ``bench/stack.py`` prepared (``DJANGO_SETTINGS_MODULE`` is
``bench.settings``)::

    python -m bench.seed [--no-migrate]

It prints one JSON object: the tenant id, the Instagram account's Meta id and the API key.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

BUSINESS_IG_ID = "17841400000000777"


def seed(*, migrate: bool = True) -> dict[str, object]:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django_scopes import scope

    from accounts import services
    from accounts.models import ApiScope, InstagramAccount, Tenant

    if migrate:
        call_command("migrate", verbosity=0, interactive=False)
    tenant = Tenant.objects.create(name="Bench agency")
    with scope(tenant=tenant):
        account = InstagramAccount.objects.create(
            tenant=tenant,
            ig_user_id=BUSINESS_IG_ID,
            username="bench_brand",
            login_kind=InstagramAccount.LoginKind.FACEBOOK,
            access_token="EAAG-bench-page-token",  # noqa: S106 (a placeholder, never sent)
        )
        _, api_key = services.api_key_create(
            tenant=tenant, name="bench", scopes=list(ApiScope.values), created_by=None
        )
    connection.close()
    return {
        "tenant_id": tenant.pk,
        "account_id": account.pk,
        "ig_user_id": BUSINESS_IG_ID,
        "api_key": api_key,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--no-migrate", action="store_true")
    args = parser.parse_args(argv)
    print(json.dumps(seed(migrate=not args.no_migrate)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
