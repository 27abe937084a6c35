"""Connecting Instagram accounts and keeping them connected.

- Logins: Facebook Login for Business (Page-linked accounts) and Instagram Login. A login's
  code becomes an ``OnboardingAttempt`` that lists every account the login can reach, with
  what each can do; the person then picks which to connect.
- Connecting an account stores its token encrypted, records granted and missing permissions,
  subscribes it to webhooks and checks the subscription, checks messaging eligibility through
  the Conversations API (which is also the one call Creator accounts need) and queues a
  history backfill.
- One tenant at a time: another tenant's connected account is refused without naming it; a
  reconnect in the same tenant updates the row it already has, so history stays.
- Upkeep: Instagram Login tokens are refreshed well before their 60 days end; every token is
  checked daily; a dead token (Meta's 190) marks the account ``needs_reauth`` and tells the
  tenant's admins. Inbound events keep flowing to the account meanwhile.
- Client onboarding links, disconnect (keeping or erasing conversations) and the deauthorize
  callback.

Calls to Meta happen outside database transactions; each write is one short transaction.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from accounts import tenancy
from accounts.audit import Action, audit_record
from accounts.exceptions import AccountsError
from accounts.models import (
    AccountAccess,
    InstagramAccount,
    Membership,
    MessagingStatus,
    OnboardingAttempt,
    OnboardingLink,
    Role,
    Tenant,
    User,
)
from accounts.tenancy import tenant_task
from integrations.meta.client import (
    DEFAULT_FACEBOOK_SCOPES,
    DEFAULT_INSTAGRAM_SCOPES,
    AccountClient,
    MetaClient,
    client_from_settings,
)
from integrations.meta.errors import (
    MetaAuthError,
    MetaError,
    MetaPermissionError,
    MetaPolicyError,
    Reason,
)
from webhooks import partner_events

logger = logging.getLogger(__name__)

LoginKind = InstagramAccount.LoginKind
Status = InstagramAccount.Status

# What an account needs to answer Direct messages (and comments), per login.
REQUIRED_PERMISSIONS: dict[str, tuple[str, ...]] = {
    LoginKind.FACEBOOK: (
        "instagram_basic",
        "instagram_manage_messages",
        "instagram_manage_comments",
        "pages_show_list",
        "pages_manage_metadata",
    ),
    LoginKind.INSTAGRAM: (
        "instagram_business_basic",
        "instagram_business_manage_messages",
        "instagram_business_manage_comments",
    ),
}
MESSAGING_PERMISSION: dict[str, str] = {
    LoginKind.FACEBOOK: "instagram_manage_messages",
    LoginKind.INSTAGRAM: "instagram_business_manage_messages",
}

ATTEMPT_TTL = timedelta(minutes=30)
LINK_DEFAULT_TTL = timedelta(days=7)
LINK_MAX_TTL = timedelta(days=30)
# Instagram Login tokens live 60 days; refresh them once fewer than this many remain.
REFRESH_WHEN_LEFT = timedelta(days=20)
# Meta refuses to refresh a token younger than a day.
REFRESH_MIN_AGE = timedelta(hours=24)
# Tokens are checked once a day; the beat runs more often and skips recent checks.
CHECK_EVERY = timedelta(hours=20)

NOT_ELIGIBLE_TEXT = "Messaging not available for this account yet"


class OnboardingError(AccountsError):
    code = "onboarding_failed"


class AccountTaken(AccountsError):
    code = "account_taken"


class LinkInvalid(AccountsError):
    code = "link_invalid"


# -- the Meta login ----------------------------------------------------------------------------


def new_state() -> str:
    """The OAuth ``state``: kept in the person's session with the tenant it is for."""
    return secrets.token_urlsafe(32)


def login_url(*, login_kind: str, redirect_uri: str, state: str) -> str:
    """Where to send the person to log in with Meta."""
    with client_from_settings() as client:
        if login_kind == LoginKind.FACEBOOK:
            return client.facebook_login_url(
                redirect_uri=redirect_uri,
                state=state,
                config_id=getattr(settings, "META_FACEBOOK_CONFIG_ID", "") or None,
                scopes=DEFAULT_FACEBOOK_SCOPES,
            )
        if login_kind == LoginKind.INSTAGRAM:
            return client.instagram_login_url(
                redirect_uri=redirect_uri, state=state, scopes=DEFAULT_INSTAGRAM_SCOPES
            )
    raise OnboardingError("Unknown way to log in.")


def login_refusal_text(*, login_kind: str, error: str, reason: str, description: str) -> str:
    """What a refused or cancelled Meta login means, in words."""
    service = "Facebook" if login_kind == LoginKind.FACEBOOK else "Instagram"
    if error == "access_denied" or reason == "user_denied":
        return (
            f"The {service} login was cancelled, or the permissions were not granted, so no "
            "account was connected. You can try again at any time."
        )
    detail = f" ({description})" if description else ""
    return f"{service} did not complete the login{detail}. No account was connected."


@dataclass
class Candidate:
    """An account a login can reach, with what it can do. No secrets."""

    ig_user_id: str
    username: str
    name: str = ""
    account_type: str = ""
    page_id: str = ""
    page_name: str = ""
    granted: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    can_message: bool = True
    token_expires_at: str = ""  # ISO time, empty when the token does not expire
    # Filled per tenant: available, connected_here, reconnect, elsewhere.
    availability: str = "available"

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def _expiry(expires_in: int | None, now: datetime) -> str:
    return (now + timedelta(seconds=expires_in)).isoformat() if expires_in else ""


def _discover_facebook(
    client: MetaClient, *, code: str, redirect_uri: str
) -> tuple[list[Candidate], dict[str, str], str]:
    short = client.exchange_facebook_code(code=code, redirect_uri=redirect_uri)
    long = client.exchange_facebook_long_lived_token(short.access_token)
    info = client.debug_token(long.access_token)
    pages = client.list_pages(long.access_token)
    candidates: list[Candidate] = []
    tokens: dict[str, str] = {}
    for page in pages:
        ig = page.instagram_account
        if ig is None or not page.access_token:
            continue
        granted = [
            scope
            for scope in info.scopes
            if (targets := info.targets_for(scope)) is None or {page.id, ig.id} & set(targets)
        ]
        missing = [p for p in REQUIRED_PERMISSIONS[LoginKind.FACEBOOK] if p not in granted]
        candidates.append(
            Candidate(
                ig_user_id=ig.id,
                username=ig.username or "",
                name=ig.name or "",
                page_id=page.id,
                page_name=page.name or "",
                granted=sorted(granted),
                missing=missing,
                # Messaging needs the permission and the Page task (absent tasks: unknown).
                can_message=MESSAGING_PERMISSION[LoginKind.FACEBOOK] in granted
                and (page.can_message or not page.tasks),
                # A Page token made from a long-lived user token does not expire.
                token_expires_at="",
            )
        )
        tokens[ig.id] = page.access_token
    return candidates, tokens, info.user_id or ""


def _discover_instagram(
    client: MetaClient, *, code: str, redirect_uri: str
) -> tuple[list[Candidate], dict[str, str], str]:
    now = timezone.now()
    short = client.exchange_instagram_code(code=code, redirect_uri=redirect_uri)
    long = client.exchange_instagram_long_lived_token(short.access_token)
    me = client.instagram_me(long.access_token)
    granted = sorted(short.permissions)
    missing = [p for p in REQUIRED_PERMISSIONS[LoginKind.INSTAGRAM] if p not in granted]
    ig_id = me.business_account_id
    candidate = Candidate(
        ig_user_id=ig_id,
        username=me.username or "",
        name=me.name or "",
        account_type=me.account_type or "",
        granted=granted,
        missing=missing,
        can_message=MESSAGING_PERMISSION[LoginKind.INSTAGRAM] in granted,
        token_expires_at=_expiry(long.expires_in, now),
    )
    # The app-scoped id (``/me.id``) is how Instagram's callbacks name the person.
    return [candidate], {ig_id: long.access_token}, me.id or ""


def _availability(tenant: Tenant, ig_user_id: str) -> str:
    holder = tenancy.instagram_account_holder_any_tenant(ig_user_id)
    if holder is not None and holder != tenant.pk:
        return "elsewhere"
    existing = InstagramAccount.objects.filter(ig_user_id=ig_user_id).first()
    if existing is None:
        return "available"
    return "connected_here" if existing.status == Status.ACTIVE else "reconnect"


def onboarding_attempt_create(
    *,
    tenant: Tenant,
    login_kind: str,
    code: str,
    redirect_uri: str,
    started_by: User | None,
    link: OnboardingLink | None = None,
) -> OnboardingAttempt:
    """Finish a Meta login: exchange its code and list every account it can reach."""
    discover = _discover_facebook if login_kind == LoginKind.FACEBOOK else _discover_instagram
    try:
        with client_from_settings() as client:
            candidates, tokens, meta_user_id = discover(
                client, code=code, redirect_uri=redirect_uri
            )
    except MetaError as exc:
        logger.info("onboarding login failed for tenant %s: %s", tenant.pk, exc.reason)
        raise OnboardingError(
            f"Meta did not let us finish the login. {exc.user_message} Please try again."
        ) from None
    for candidate in candidates:
        candidate.availability = _availability(tenant, candidate.ig_user_id)
    with transaction.atomic():
        return OnboardingAttempt.objects.create(
            tenant=tenant,
            login_kind=login_kind,
            link=link,
            started_by=started_by,
            expires_at=timezone.now() + ATTEMPT_TTL,
            meta_user_id=meta_user_id,
            candidates=[c.as_dict() for c in candidates],
            secrets=json.dumps(tokens),
        )


# -- connecting the picked accounts ------------------------------------------------------------


@dataclass
class ConnectOutcome:
    connected: list[InstagramAccount] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (username, reason)


def _taken(username: str) -> AccountTaken:
    return AccountTaken(
        f"@{username} is already connected to another workspace. It can be connected here "
        "once it has been disconnected there."
    )


def _store_account(
    *,
    attempt: OnboardingAttempt,
    candidate: dict[str, Any],
    token: str,
    user: User | None,
) -> InstagramAccount:
    ig_user_id = candidate["ig_user_id"]
    username = candidate.get("username") or ig_user_id
    holder = tenancy.instagram_account_holder_any_tenant(ig_user_id)
    if holder is not None and holder != attempt.tenant_id:
        raise _taken(username)
    now = timezone.now()
    expires = candidate.get("token_expires_at") or ""
    try:
        with transaction.atomic():
            account = (
                InstagramAccount.objects.select_for_update().filter(ig_user_id=ig_user_id).first()
            )
            health_before = account.health if account is not None else None
            if account is None:
                account = InstagramAccount(tenant_id=attempt.tenant_id, ig_user_id=ig_user_id)
            account.username = candidate.get("username") or account.username
            account.name = candidate.get("name") or account.name
            account.login_kind = attempt.login_kind
            account.account_type = candidate.get("account_type") or account.account_type
            account.page_id = candidate.get("page_id") or ""
            account.page_name = candidate.get("page_name") or ""
            account.access_token = token
            account.token_expires_at = datetime.fromisoformat(expires) if expires else None
            account.token_issued_at = now
            account.token_checked_at = now
            account.granted_permissions = list(candidate.get("granted") or [])
            account.missing_permissions = list(candidate.get("missing") or [])
            account.meta_user_id = attempt.meta_user_id
            account.connected_by = user
            account.connected_at = now
            account.status = Status.ACTIVE
            account.needs_reauth_since = None
            account.disconnected_at = None
            account.last_error = ""
            account.last_error_at = None
            account.save()
            audit_record(
                tenant=account.tenant_id,
                action=Action.ACCOUNT_CONNECTED,
                actor_user=user,
                actor_label="Client, through an onboarding link" if attempt.link_id else "",
                target_type="instagram_account",
                target_id=account.pk,
                detail={"login": attempt.login_kind},
            )
            partner_events.account_health_changed(account=account, previous_health=health_before)
    except IntegrityError:
        # Another tenant connected it at the same moment.
        raise _taken(username) from None
    return account


def onboarding_connect(
    *, attempt: OnboardingAttempt, ig_user_ids: list[str], user: User | None
) -> ConnectOutcome:
    """Connect the accounts the person picked from the attempt's list, then check each."""
    picked = [c for c in attempt.candidates if c["ig_user_id"] in set(ig_user_ids)]
    if not picked:
        raise OnboardingError("Pick at least one account to connect.", code="nothing_picked")
    tokens: dict[str, str] = json.loads(attempt.secrets or "{}")
    outcome = ConnectOutcome()
    with transaction.atomic():
        locked = OnboardingAttempt.objects.select_for_update().get(pk=attempt.pk)
        if locked.completed_at is not None:
            raise OnboardingError(
                "These accounts were already handled. Start again to connect more."
            )
        if locked.link_id is not None:
            link = OnboardingLink.objects.select_for_update().get(pk=locked.link_id)
            onboarding_link_check(link)
        locked.completed_at = timezone.now()
        locked.secrets = ""  # the tokens now live on the accounts, or nowhere
        locked.save(update_fields=["completed_at", "secrets"])
    for candidate in picked:
        token = tokens.get(candidate["ig_user_id"], "")
        try:
            if not token:
                raise OnboardingError("Meta gave no access to this account.")
            account = _store_account(attempt=attempt, candidate=candidate, token=token, user=user)
        except AccountsError as exc:
            outcome.refused.append(
                (candidate.get("username") or candidate["ig_user_id"], exc.message)
            )
            continue
        outcome.connected.append(account)
    if attempt.link_id is not None and outcome.connected:
        with transaction.atomic():
            link = OnboardingLink.objects.select_for_update().get(pk=attempt.link_id)
            link.completed_at = timezone.now()
            link.connected_usernames = [a.username or a.ig_user_id for a in outcome.connected]
            link.save(update_fields=["completed_at", "connected_usernames"])
    outcome.connected = [
        instagram_account_verify(account=account, first_connect=True)
        for account in outcome.connected
    ]
    return outcome


# -- checking an account with Meta -------------------------------------------------------------


def account_client(client: MetaClient, account: InstagramAccount) -> AccountClient:
    if account.login_kind == LoginKind.FACEBOOK:
        return client.facebook_page(account.page_id, account.access_token)
    return client.instagram_account(account.access_token, account.ig_user_id)


def _our_app(client: MetaClient, account: InstagramAccount) -> set[str]:
    config = client.config
    return {i for i in (config.app_id, config.instagram_app_id) if i}


def instagram_account_verify(
    *, account: InstagramAccount, first_connect: bool = False
) -> InstagramAccount:
    """Check an account with Meta: token, permissions, webhook subscription, messaging.

    On the first connect the account is also subscribed to webhooks and a history backfill is
    queued once messaging is available. A dead token marks the account ``needs_reauth``.
    """
    if account.status == Status.DISCONNECTED or not account.access_token:
        return account
    now = timezone.now()
    updates: dict[str, Any] = {"token_checked_at": now}
    errors: list[MetaError] = []
    kind = account.login_kind
    try:
        with client_from_settings() as client:
            api = account_client(client, account)
            # The token itself.
            if kind == LoginKind.FACEBOOK:
                info = client.debug_token(account.access_token)
                if not info.is_valid:
                    raise MetaAuthError(
                        info.error_message or "token is not valid",
                        code=info.error_code or 190,
                        subcode=info.error_subcode,
                        reason=_auth_reason(info.error_subcode),
                    )
                granted = sorted(
                    s
                    for s in info.scopes
                    if (t := info.targets_for(s)) is None
                    or {account.page_id, account.ig_user_id} & set(t)
                )
                updates["granted_permissions"] = granted
                updates["token_expires_at"] = info.expires_at
            else:
                profile = client.instagram_me(account.access_token)
                if profile.username:
                    updates["username"] = profile.username
                if profile.account_type:
                    updates["account_type"] = profile.account_type
                granted = list(account.granted_permissions)
            missing = [p for p in REQUIRED_PERMISSIONS[kind] if p not in granted]
            # The webhook subscription: made on connect (and when it went missing), then read.
            try:
                if first_connect or not account.webhook_subscribed:
                    api.subscribe_app()
                apps = api.subscribed_apps()
                ours = _our_app(client, account)
                mine = [a for a in apps if a.id is None or a.id in ours] or apps
                fields = sorted({f for a in mine for f in a.subscribed_fields})
                updates["webhook_subscribed"] = bool(mine)
                updates["subscribed_fields"] = fields
                updates["subscription_checked_at"] = now
            except MetaAuthError:
                raise
            except MetaError as exc:
                errors.append(exc)
                updates["webhook_subscribed"] = False
                updates["subscription_checked_at"] = now
            # Messaging: the Conversations API answers 36103 while an account is not eligible.
            # It is also the one call Creator accounts need before their webhooks flow.
            try:
                api.list_conversations(limit=1)
                updates["messaging_status"] = MessagingStatus.AVAILABLE
            except MetaAuthError:
                raise
            except MetaPolicyError as exc:
                if exc.reason == Reason.NOT_ELIGIBLE:
                    updates["messaging_status"] = MessagingStatus.NOT_ELIGIBLE
                elif exc.reason == Reason.MESSAGE_ACCESS_OFF:
                    updates["messaging_status"] = MessagingStatus.MESSAGE_ACCESS_OFF
                else:
                    errors.append(exc)
            except MetaPermissionError as exc:
                updates["messaging_status"] = MessagingStatus.MISSING_PERMISSION
                if MESSAGING_PERMISSION[kind] not in missing:
                    missing.append(MESSAGING_PERMISSION[kind])
                errors.append(exc)
            except MetaError as exc:
                errors.append(exc)
            updates["messaging_checked_at"] = now
            updates["missing_permissions"] = missing
    except MetaAuthError as exc:
        return instagram_account_mark_needs_reauth(account=account, error=exc)
    except MetaError as exc:
        errors.append(exc)
    if errors:
        updates["last_error"] = readable_error(errors[-1])
        updates["last_error_at"] = now
    with transaction.atomic():
        locked = InstagramAccount.objects.select_for_update().get(pk=account.pk)
        if locked.status == Status.DISCONNECTED:
            return locked
        health_before = locked.health
        for name, value in updates.items():
            setattr(locked, name, value)
        locked.save(update_fields=list(updates))
        partner_events.account_health_changed(account=locked, previous_health=health_before)
        if first_connect and locked.messaging_status == MessagingStatus.AVAILABLE:
            tenant_id, account_id = locked.tenant_id, locked.pk
            transaction.on_commit(lambda: enqueue_backfill(tenant_id, account_id))
    return locked


def instagram_account_check_soon(*, account: InstagramAccount) -> None:
    """Check an account with Meta in the background, as the daily check does."""
    tenant_id, account_id = account.tenant_id, account.pk

    def enqueue() -> None:
        from accounts import tasks

        tasks.check_account_token.delay(tenant_id, account_id)

    transaction.on_commit(enqueue)


def _auth_reason(subcode: int | None) -> str:
    return {
        458: Reason.APP_NOT_INSTALLED,
        459: Reason.USER_CHECKPOINTED,
        460: Reason.PASSWORD_CHANGED,
        463: Reason.TOKEN_EXPIRED,
        464: Reason.USER_UNCONFIRMED,
    }.get(subcode or 0, Reason.TOKEN_INVALID)


def readable_error(error: MetaError) -> str:
    if isinstance(error, MetaPolicyError) and error.reason == Reason.NOT_ELIGIBLE:
        return f"{NOT_ELIGIBLE_TEXT}."
    return error.user_message


def enqueue_backfill(tenant_id: int, account_id: int) -> None:
    """Queue the history backfill of a newly connected account (built by the inbox)."""
    from config.celery_app import app as celery_app

    try:
        celery_app.send_task("messaging.backfill_account", args=[tenant_id, account_id])
    except Exception:  # the account is connected; a broker outage must not undo that
        logger.warning("history backfill of account %s could not be queued", account_id)


# -- errors reported by any caller -------------------------------------------------------------


def instagram_account_mark_needs_reauth(
    *, account: InstagramAccount, error: MetaError | None = None
) -> InstagramAccount:
    """A dead token (Meta's 190): the account needs reconnecting; admins are told once.

    Inbound events keep being stored and routed to the account meanwhile.
    """
    now = timezone.now()
    with transaction.atomic():
        locked = InstagramAccount.objects.select_for_update().get(pk=account.pk)
        if locked.status == Status.DISCONNECTED:
            return locked
        health_before = locked.health
        first = locked.status != Status.NEEDS_REAUTH
        locked.status = Status.NEEDS_REAUTH
        locked.token_checked_at = now
        locked.last_error = (
            error.user_message
            if error is not None
            else "The connection to Instagram is no longer valid. Please reconnect the account."
        )
        locked.last_error_at = now
        if first:
            locked.needs_reauth_since = now
            audit_record(
                tenant=locked.tenant_id,
                action=Action.ACCOUNT_TOKEN_FAILED,
                actor_label="Meta",
                target_type="instagram_account",
                target_id=locked.pk,
                detail={
                    "code": getattr(error, "code", None),
                    "subcode": getattr(error, "subcode", None),
                },
            )
            notice = _needs_reauth_notice(locked)
            if notice is not None:
                transaction.on_commit(lambda: send_mail(**notice, fail_silently=True))
        locked.save(
            update_fields=[
                "status",
                "token_checked_at",
                "last_error",
                "last_error_at",
                "needs_reauth_since",
            ]
        )
        partner_events.account_health_changed(account=locked, previous_health=health_before)
    return locked


def instagram_account_record_error(*, account: InstagramAccount, error: MetaError) -> None:
    """For every caller of Meta (sending, backfill): remember the failure on the account."""
    if isinstance(error, MetaAuthError):
        instagram_account_mark_needs_reauth(account=account, error=error)
        return
    InstagramAccount.objects.filter(pk=account.pk).update(
        last_error=readable_error(error), last_error_at=timezone.now()
    )


def instagram_account_record_webhook(*, account: InstagramAccount) -> None:
    """Remember that Meta delivered for this account: written at most every 30 s under load."""
    now = timezone.now()
    InstagramAccount.objects.filter(pk=account.pk).filter(
        Q(last_webhook_at__isnull=True) | Q(last_webhook_at__lt=now - timedelta(seconds=30))
    ).update(last_webhook_at=now)


def instagram_account_record_send(*, account: InstagramAccount) -> None:
    InstagramAccount.objects.filter(pk=account.pk).update(last_send_at=timezone.now())


def _needs_reauth_notice(account: InstagramAccount) -> dict[str, Any] | None:
    """The email telling the tenant's owners and admins that an account needs reconnecting."""
    admins = [
        m.user.email
        for m in Membership.objects.filter(role__in=[Role.OWNER, Role.ADMIN]).select_related("user")
    ]
    if not admins:
        return None
    site = settings.SITE_URL.rstrip("/")
    name = f"@{account.username or account.ig_user_id}"
    return {
        "subject": f"{name} needs to be reconnected",
        "message": (
            f"Instagram no longer accepts the connection of {name}: {account.last_error}\n\n"
            "Messages sent to the account are still received and kept, but replies cannot be "
            "sent until it is reconnected. Reconnect it, or send the client a reconnect link, "
            f"from its page: {site}/instagram-accounts/{account.pk}/\n"
        ),
        "from_email": None,
        "recipient_list": admins,
    }


# -- token upkeep ------------------------------------------------------------------------------


def instagram_account_refresh_token(*, account: InstagramAccount, force: bool = False) -> bool:
    """Refresh an Instagram Login token once fewer than ``REFRESH_WHEN_LEFT`` remain."""
    if (
        account.login_kind != LoginKind.INSTAGRAM
        or account.status != Status.ACTIVE
        or not account.access_token
    ):
        return False
    now = timezone.now()
    expires = account.token_expires_at
    if not force and expires is not None and expires - now > REFRESH_WHEN_LEFT:
        return False
    if account.token_issued_at is not None and now - account.token_issued_at < REFRESH_MIN_AGE:
        return False
    try:
        with client_from_settings() as client:
            fresh = client.refresh_instagram_token(account.access_token)
    except MetaAuthError as exc:
        instagram_account_mark_needs_reauth(account=account, error=exc)
        return False
    except MetaError as exc:
        instagram_account_record_error(account=account, error=exc)
        return False
    with transaction.atomic():
        locked = InstagramAccount.objects.select_for_update().get(pk=account.pk)
        if locked.status != Status.ACTIVE:
            return False
        locked.access_token = fresh.access_token
        locked.token_issued_at = now
        locked.token_expires_at = (
            now + timedelta(seconds=fresh.expires_in) if fresh.expires_in else None
        )
        locked.save(update_fields=["access_token", "token_issued_at", "token_expires_at"])
    return True


def accounts_due_for_refresh() -> list[tuple[int, int]]:
    return tenancy.instagram_accounts_due_any_tenant(
        login_kind=LoginKind.INSTAGRAM, expiring_before=timezone.now() + REFRESH_WHEN_LEFT
    )


def accounts_due_for_check() -> list[tuple[int, int]]:
    return tenancy.instagram_accounts_due_any_tenant(checked_before=timezone.now() - CHECK_EVERY)


# -- disconnect and the deauthorize callback ---------------------------------------------------


def _erase_conversations(account: InstagramAccount) -> None:
    from accounts import compliance
    from messaging import models as messaging_models

    # Copies first (raw Meta deliveries, partner callback logs, queued sends), then the rows.
    compliance.copies_erase(
        messages=[
            compliance.ErasedMessage(pk, mid, conversation_id)
            for pk, mid, conversation_id in messaging_models.Message.objects.filter(
                account=account
            ).values_list("pk", "mid", "conversation_id")
        ],
        igsids=messaging_models.Contact.objects.filter(account=account).values_list(
            "igsid", flat=True
        ),
        contact_ids=messaging_models.Contact.objects.filter(account=account).values_list(
            "pk", flat=True
        ),
        comment_ids=messaging_models.Comment.objects.filter(account=account).values_list(
            "pk", flat=True
        ),
        conversation_ids=messaging_models.Conversation.objects.filter(account=account).values_list(
            "pk", flat=True
        ),
    )
    for model in (
        messaging_models.Reaction,
        messaging_models.Message,
        messaging_models.Comment,
        messaging_models.Conversation,
        messaging_models.Contact,
    ):
        model.objects.filter(account=account).delete()


def instagram_account_disconnect(
    *,
    account: InstagramAccount,
    erase_conversations: bool = False,
    actor_user: User | None = None,
) -> InstagramAccount:
    """Unsubscribe from webhooks, delete the tokens and, if asked, erase the conversations."""
    if account.access_token and account.status != Status.DISCONNECTED:
        try:
            with client_from_settings() as client:
                account_client(client, account).unsubscribe_app()
        except MetaError as exc:
            # The token may already be dead; the account is disconnected all the same.
            logger.info("unsubscribe of account %s failed: %s", account.pk, exc.reason)
    return _disconnect_locally(
        account=account, erase_conversations=erase_conversations, actor_user=actor_user
    )


def _disconnect_locally(
    *,
    account: InstagramAccount,
    erase_conversations: bool,
    actor_user: User | None = None,
    action: str = Action.ACCOUNT_DISCONNECTED,
) -> InstagramAccount:
    with transaction.atomic():
        locked = InstagramAccount.objects.select_for_update().get(pk=account.pk)
        if locked.status != Status.DISCONNECTED or erase_conversations:
            audit_record(
                tenant=locked.tenant_id,
                action=action,
                actor_user=actor_user,
                actor_label="Meta" if action == Action.ACCOUNT_DEAUTHORIZED else "",
                target_type="instagram_account",
                target_id=locked.pk,
                detail={"conversations_erased": erase_conversations},
            )
        health_before = locked.health
        locked.status = Status.DISCONNECTED
        locked.disconnected_at = timezone.now()
        locked.access_token = ""
        locked.token_expires_at = None
        locked.webhook_subscribed = False
        locked.subscribed_fields = []
        locked.save(
            update_fields=[
                "status",
                "disconnected_at",
                "access_token",
                "token_expires_at",
                "webhook_subscribed",
                "subscribed_fields",
            ]
        )
        partner_events.account_health_changed(account=locked, previous_health=health_before)
        if erase_conversations:
            _erase_conversations(locked)
    return locked


def instagram_accounts_deauthorize(*, meta_user_id: str) -> int:
    """The person removed the app: disconnect every account they connected, in any tenant."""
    pairs = tenancy.instagram_accounts_of_meta_user_any_tenant(meta_user_id)
    for tenant_id, account_id in pairs:
        _deauthorize_account(tenant_id, account_id)
    return len(pairs)


@tenant_task
def _deauthorize_account(tenant_id: int, account_id: int) -> None:
    account = InstagramAccount.objects.filter(pk=account_id).first()
    if account is None:
        return
    # Meta already removed the app: no call to make, the tokens only need deleting.
    _disconnect_locally(
        account=account, erase_conversations=False, action=Action.ACCOUNT_DEAUTHORIZED
    )


# -- client onboarding links -------------------------------------------------------------------


def onboarding_link_create(
    *,
    tenant: Tenant,
    created_by: User | None,
    note: str = "",
    expires_in: timedelta = LINK_DEFAULT_TTL,
    account: InstagramAccount | None = None,
    send_to: str = "",
    base_url: str = "",
) -> tuple[OnboardingLink, str]:
    """A single-use link for a client, and its token (only the hash is stored)."""
    if expires_in <= timedelta(0) or expires_in > LINK_MAX_TTL:
        raise AccountsError("A link can last between an hour and 30 days.", code="bad_expiry")
    token = secrets.token_urlsafe(32)
    with transaction.atomic():
        link = OnboardingLink.objects.create(
            tenant=tenant,
            token_hash=tenancy.secret_hash(token),
            note=note.strip()[:500],
            account=account,
            created_by=created_by,
            expires_at=timezone.now() + expires_in,
            sent_to=send_to.strip().lower(),
        )
        if send_to:
            url = f"{(base_url or settings.SITE_URL).rstrip('/')}/connect/{token}/"
            name, what = (
                tenant.name,
                (
                    f"reconnect @{account.username or account.ig_user_id}"
                    if account
                    else "connect your Instagram accounts"
                ),
            )
            transaction.on_commit(
                lambda: send_mail(
                    subject=f"{name} asks you to {what}",
                    message=(
                        f"{name} manages Instagram Direct messages for you and asks you to "
                        f"{what}. Open this link and log in with Facebook or Instagram:\n\n"
                        f"{url}\n\nThe link works once and expires on "
                        f"{link.expires_at:%B %d, %Y}.\n"
                    ),
                    from_email=None,
                    recipient_list=[send_to],
                    fail_silently=True,
                )
            )
    return link, token


def onboarding_link_check(link: OnboardingLink | None) -> OnboardingLink:
    if link is None:
        raise LinkInvalid("This link is not valid.")
    state = link.state_at(timezone.now())
    if state == OnboardingLink.State.COMPLETED:
        raise LinkInvalid("This link was already used. Ask the agency for a new one.")
    if state == OnboardingLink.State.REVOKED:
        raise LinkInvalid("This link was withdrawn by the agency.")
    if state == OnboardingLink.State.EXPIRED:
        raise LinkInvalid("This link has expired. Ask the agency for a new one.")
    return link


def onboarding_link_open(*, link: OnboardingLink) -> None:
    if link.opened_at is None:
        OnboardingLink.objects.filter(pk=link.pk, opened_at__isnull=True).update(
            opened_at=timezone.now()
        )


@transaction.atomic
def onboarding_link_revoke(*, link: OnboardingLink) -> None:
    if link.completed_at is None and link.revoked_at is None:
        link.revoked_at = timezone.now()
        link.save(update_fields=["revoked_at"])


# -- which accounts an agent sees --------------------------------------------------------------


@transaction.atomic
def membership_set_account_access(
    *, membership: Membership, limited: bool, account_ids: list[int]
) -> Membership:
    """Limit an agent or viewer to chosen accounts (or lift the limit)."""
    if membership.role in (Role.OWNER, Role.ADMIN) and limited:
        raise AccountsError("Owners and admins always see every account.", code="not_limitable")
    accounts = list(InstagramAccount.objects.filter(pk__in=account_ids))
    membership.accounts_limited = limited
    membership.save(update_fields=["accounts_limited"])
    AccountAccess.objects.filter(membership=membership).exclude(
        account__in=accounts if limited else []
    ).delete()
    if limited:
        have = set(
            AccountAccess.objects.filter(membership=membership).values_list("account_id", flat=True)
        )
        AccountAccess.objects.bulk_create(
            [
                AccountAccess(tenant_id=membership.tenant_id, membership=membership, account=a)
                for a in accounts
                if a.pk not in have
            ]
        )
    return membership
