"""The one place an inbound Meta event finds its tenant.

Meta names the business by its Instagram account id (``entry.id`` / the recipient). That id is
unique across the platform, so this is the only lookup allowed to search every tenant; the scope
it opens is the scope of the account it found, and everything downstream runs inside it.

Every delivery asks, and accounts change rarely, so each process remembers what it found for
``ROUTE_TTL`` seconds at most. A change to any account (a save or delete in any process:
connecting, disconnecting, a token or status change) drops the shared routing version in Redis
before and again after it commits; a remembered route is used only while the version read
before each lookup is the one it was found under, so a disconnected account stops receiving
events everywhere as soon as the disconnection commits, as without the memory. Without Redis
(or when it cannot be read, and for ``REDIS_RETRY_AFTER`` seconds after) every lookup asks the
database.
"""

from __future__ import annotations

import copy
import logging
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django_scopes import scope, scopes_disabled

from accounts.models import InstagramAccount
from config.input_guard import is_digits

logger = logging.getLogger(__name__)

ROUTE_TTL = 10.0
_VERSION_KEY = "webhooks:routing-version"
_routes: dict[str, tuple[str, float, InstagramAccount | None]] = {}
_routes_lock = threading.Lock()


# After Redis fails to answer, lookups go to the database for this long without asking it again
# (a hung Redis costs its socket timeout once, not once per delivery).
REDIS_RETRY_AFTER = 5.0
_redis_failed_at = -REDIS_RETRY_AFTER


def _routing_version() -> str | None:
    """The shared routing version (made when missing); None when Redis cannot be read."""
    global _redis_failed_at
    if time.monotonic() - _redis_failed_at < REDIS_RETRY_AFTER:
        return None
    try:
        version = cache.get(_VERSION_KEY)
        if version is None:
            cache.add(_VERSION_KEY, secrets.token_hex(8), None)
            version = cache.get(_VERSION_KEY)
    except Exception:
        _redis_failed_at = time.monotonic()
        logger.warning("routing version unavailable", exc_info=True)
        return None
    return str(version) if version is not None else None


def forget_routes() -> None:
    """Drop every remembered route, here and (through the shared version) in every process."""
    with _routes_lock:
        _routes.clear()
    try:
        cache.delete(_VERSION_KEY)
    except Exception:
        logger.warning("routing version not dropped", exc_info=True)


def _account_changed(sender: type[InstagramAccount], instance: InstagramAccount, **_: Any) -> None:
    forget_routes()
    transaction.on_commit(forget_routes)


post_save.connect(_account_changed, sender=InstagramAccount, dispatch_uid="router.account_saved")
post_delete.connect(
    _account_changed, sender=InstagramAccount, dispatch_uid="router.account_deleted"
)


def _account_lookup(meta_account_id: str) -> InstagramAccount | None:
    with scopes_disabled():
        return (
            InstagramAccount.objects.filter(ig_user_id=meta_account_id)
            .exclude(status=InstagramAccount.Status.DISCONNECTED)
            .select_related("tenant")
            .first()
        )


def account_for_meta_id(meta_account_id: str) -> InstagramAccount | None:
    """The connected account with this Instagram id, in whatever tenant holds it.

    Each caller gets its own copy of the account: nothing one event changes on it reaches the
    next one.
    """
    if not is_digits(meta_account_id):
        return None
    version = _routing_version()
    now = time.monotonic()
    held = _routes.get(meta_account_id)
    if version is not None and held is not None and held[0] == version and held[1] > now:
        return copy.copy(held[2]) if held[2] is not None else None
    account = _account_lookup(meta_account_id)
    if version is not None:
        with _routes_lock:
            if len(_routes) > 10_000:
                _routes.clear()
            _routes[meta_account_id] = (version, now + ROUTE_TTL, copy.copy(account))
    return account


@contextmanager
def routed_to_account(meta_account_id: str) -> Iterator[InstagramAccount | None]:
    """Open the scope of the tenant owning this Instagram account; yield None if nobody does."""
    account = account_for_meta_id(meta_account_id)
    if account is None:
        yield None
        return
    with scope(tenant=account.tenant_id):
        yield account
