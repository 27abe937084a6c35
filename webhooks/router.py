"""The one place an inbound Meta event finds its tenant.

Meta names the business by its Instagram account id (``entry.id`` / the recipient). That id is
unique across the platform, so this is the only lookup allowed to search every tenant; the scope
it opens is the scope of the account it found, and everything downstream runs inside it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django_scopes import scope, scopes_disabled

from accounts.models import InstagramAccount


def account_for_meta_id(meta_account_id: str) -> InstagramAccount | None:
    """The connected account with this Instagram id, in whatever tenant holds it."""
    if not meta_account_id or not meta_account_id.isdigit():
        return None
    with scopes_disabled():
        return (
            InstagramAccount.objects.filter(ig_user_id=meta_account_id)
            .exclude(status=InstagramAccount.Status.DISCONNECTED)
            .select_related("tenant")
            .first()
        )


@contextmanager
def routed_to_account(meta_account_id: str) -> Iterator[InstagramAccount | None]:
    """Open the scope of the tenant owning this Instagram account; yield None if nobody does."""
    account = account_for_meta_id(meta_account_id)
    if account is None:
        yield None
        return
    with scope(tenant=account.tenant_id):
        yield account
