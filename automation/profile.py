"""Ice breakers and the persistent menu of an account, synced to Meta's ``messenger_profile``.

What the account's ``AccountAutomation`` holds is what Meta should show: a list is set, an
empty list is deleted. The outcome is recorded on the row (``profile_synced_at`` or a readable
``profile_sync_error``), unless the settings changed meanwhile: the sync queued by that change
then records its own outcome.
"""

from __future__ import annotations

import logging

from django.utils import timezone

from accounts import onboarding as accounts_onboarding
from accounts.models import InstagramAccount
from automation.models import AccountAutomation
from integrations.meta.client import AccountClient, client_from_settings
from integrations.meta.errors import MetaAuthError, MetaError
from integrations.meta.models import Button, IceBreaker, IceBreakerSet, PersistentMenu

logger = logging.getLogger("automation.profile")

DISCONNECTED = (
    "The Instagram account is disconnected: reconnect it to show ice breakers and a menu."
)
EXPIRED_CONNECTION = (
    "Instagram no longer accepts this account's connection (the token expired or was revoked): "
    "reconnect the account, then save again."
)


def _client(account: InstagramAccount) -> AccountClient:
    return accounts_onboarding.account_client(client_from_settings(), account)


def _push(client: AccountClient, row: AccountAutomation) -> None:
    if row.ice_breakers:
        items = tuple(IceBreaker(i["question"], i["payload"]) for i in row.ice_breakers)
        client.set_ice_breakers([IceBreakerSet(items=items)])
    else:
        client.delete_ice_breakers()
    if row.persistent_menu:
        buttons = tuple(
            Button(
                type="web_url" if item["type"] == "web_url" else "postback",
                title=item["title"],
                url=item.get("url"),
                payload=item.get("payload"),
            )
            for item in row.persistent_menu
        )
        client.set_persistent_menu([PersistentMenu(items=buttons)])
    else:
        client.delete_persistent_menu()


def _record(row: AccountAutomation, *, error: str) -> bool:
    """Store the outcome unless the settings changed since ``row`` was read."""
    values = {"profile_sync_error": error[:500]}
    if not error:
        values["profile_synced_at"] = timezone.now()  # type: ignore[assignment]
    # ``update`` leaves ``updated_at`` alone, so the next sync still sees the same row.
    return bool(
        AccountAutomation.objects.filter(pk=row.pk, updated_at=row.updated_at).update(**values)
    )


def account_profile_sync(*, account_id: int) -> AccountAutomation | None:
    """Set (or delete) the account's ice breakers and persistent menu at Meta; the row after."""
    row = AccountAutomation.objects.select_related("account").filter(account_id=account_id).first()
    if row is None:
        return None
    account = row.account
    if account.status == InstagramAccount.Status.DISCONNECTED:
        _record(row, error=DISCONNECTED)
    else:
        try:
            _push(_client(account), row)
        except MetaAuthError as exc:
            accounts_onboarding.instagram_account_mark_needs_reauth(account=account, error=exc)
            _record(row, error=EXPIRED_CONNECTION)
        except MetaError as exc:
            logger.warning("profile sync of account %s failed: %s", account.pk, exc)
            _record(row, error=f"Instagram refused the change: {exc.user_message}")
        except ValueError as exc:  # the client's own limits
            _record(row, error=f"Instagram would refuse this: {exc}.")
        else:
            _record(row, error="")
    return AccountAutomation.objects.filter(pk=row.pk).first()
