"""Two fully populated tenants, A and B, and a fingerprint of everything B owns.

Every tenant-owned model needs an entry in SEED_FACTORIES; the matrices fail until it has one.
Seeded string values carry the tenant's random tag, so finding B's tag in a response A received
means B's data leaked.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.db import connection, models
from django_scopes import scope

from accounts import services
from accounts.audit import Action, audit_record
from accounts.models import (
    AccountAccess,
    ApiKey,
    ApiScope,
    Membership,
    OnboardingAttempt,
    OnboardingLink,
    Role,
    Tenant,
    TenantCompliance,
    TenantDeletionJob,
    User,
)
from automation.models import AccountAutomation, Rule, RuleRun, Trigger
from messaging.models import (
    BackfillJob,
    CannedReply,
    ConversationLabel,
    IdempotencyKey,
    Label,
    MessagingSettings,
    Note,
    OutboundJob,
    SendAttempt,
)
from tests.factories import (
    InstagramAccountFactory,
    InvitationFactory,
    MembershipFactory,
    TenantFactory,
    UserFactory,
)
from tests.isolation.factories import (
    ApiKeyFactory,
    CommentFactory,
    ContactFactory,
    ConversationFactory,
    MessageFactory,
    ReactionFactory,
)
from tests.isolation.structure import tenant_models
from webhooks.models import (
    CallbackDelivery,
    CallbackEndpoint,
    CallbackEvent,
    ErasedCustomer,
    IdempotencyRecord,
)

# Ids no row has: the "nonexistent object" every foreign id is compared with.
MISSING_ID = 2_147_000_001

Factory = Callable[[Tenant, str, dict[str, models.Model]], models.Model]


def _in_scope(tenant: Tenant, make: Callable[[], models.Model]) -> models.Model:
    with scope(tenant=tenant):
        return make()


def _in_a_week() -> Any:
    from datetime import timedelta

    from django.utils import timezone

    return timezone.now() + timedelta(days=7)


def _owner_id(tenant: Tenant) -> int:
    with scope(tenant=tenant):
        return Membership.objects.filter(role=Role.OWNER).values_list("user_id", flat=True)[0]


SEED_FACTORIES: dict[str, Factory] = {
    "accounts.Membership": lambda t, tag, _: MembershipFactory.create(
        tenant=t, role=Role.VIEWER, user=UserFactory.create(email=f"viewer-{tag}@example.com")
    ),
    "accounts.Invitation": lambda t, tag, _: InvitationFactory.create(
        tenant=t, email=f"invitee-{tag}@example.com", token_hash=secrets.token_hex(32)
    ),
    "accounts.ApiKey": lambda t, tag, _: ApiKeyFactory.create(tenant=t, name=f"crm key {tag}"),
    "accounts.InstagramAccount": lambda t, tag, _: InstagramAccountFactory.create(
        tenant=t,
        ig_user_id=str(17841400000000000 + secrets.randbelow(10**11)),
        username=f"brand_{tag}",
        name=f"Brand {tag}",
        access_token=f"EAAG-{tag}-page-token",
    ),
    "messaging.Contact": lambda t, tag, seeded: ContactFactory.create(
        account=seeded["accounts.InstagramAccount"],
        username=f"customer_{tag}",
        name=f"Customer {tag}",
    ),
    "messaging.Conversation": lambda t, tag, seeded: ConversationFactory.create(
        contact=seeded["messaging.Contact"], meta_conversation_id=f"conversation-{tag}"
    ),
    "messaging.Message": lambda t, tag, seeded: MessageFactory.create(
        conversation=seeded["messaging.Conversation"],
        mid=f"mid-{tag}",
        text=f"Where is my order? {tag}",
    ),
    "messaging.Reaction": lambda t, tag, seeded: ReactionFactory.create(
        account=seeded["accounts.InstagramAccount"], message_mid=f"mid-{tag}"
    ),
    "accounts.AccountAccess": lambda t, tag, seeded: _in_scope(
        t,
        lambda: AccountAccess.objects.create(
            tenant=t,
            membership=seeded["accounts.Membership"],  # type: ignore[misc]
            account=seeded["accounts.InstagramAccount"],  # type: ignore[misc]
        ),
    ),
    "accounts.OnboardingLink": lambda t, tag, seeded: _in_scope(
        t,
        lambda: OnboardingLink.objects.create(
            tenant=t,
            token_hash=secrets.token_hex(32),
            note=f"client link {tag}",
            account=seeded["accounts.InstagramAccount"],  # type: ignore[misc]
            expires_at=_in_a_week(),
        ),
    ),
    "accounts.OnboardingAttempt": lambda t, tag, seeded: _in_scope(
        t,
        lambda: OnboardingAttempt.objects.create(
            tenant=t,
            login_kind="facebook",
            link=seeded["accounts.OnboardingLink"],  # type: ignore[misc]
            expires_at=_in_a_week(),
            candidates=[{"ig_user_id": "17841400000000009", "username": f"candidate_{tag}"}],
        ),
    ),
    "webhooks.CallbackEndpoint": lambda t, tag, _: _in_scope(
        t,
        lambda: CallbackEndpoint.objects.create(
            tenant=t,
            url=f"https://hooks-{tag}.example.com/relay",
            description=f"crm {tag}",
            events=["message.received"],
            secret=f"whsec_{tag}",
        ),
    ),
    "webhooks.CallbackEvent": lambda t, tag, seeded: _in_scope(
        t,
        lambda: CallbackEvent.objects.create(
            tenant=t,
            type="message.received",
            payload={"message": {"id": 1, "text": f"Where is my order? {tag}"}},
            conversation_id=seeded["messaging.Conversation"].pk,
            sequence=1,
        ),
    ),
    "webhooks.CallbackDelivery": lambda t, tag, seeded: _in_scope(
        t,
        lambda: CallbackDelivery.objects.create(
            tenant=t,
            endpoint=seeded["webhooks.CallbackEndpoint"],  # type: ignore[misc]
            event=seeded["webhooks.CallbackEvent"],  # type: ignore[misc]
            status="delivered",
            next_attempt_at=_in_a_week(),
            response_excerpt=f"ok {tag}",
        ),
    ),
    "webhooks.IdempotencyRecord": lambda t, tag, _: _in_scope(
        t,
        lambda: IdempotencyRecord.objects.create(
            tenant=t,
            key=f"key-{tag}",
            method="POST",
            path="/api/v1/onboarding-links",
            request_hash="0" * 64,
            response_status=201,
            response_body={"note": f"client link {tag}"},
        ),
    ),
    "accounts.AuditEntry": lambda t, tag, seeded: _in_scope(
        t,
        lambda: audit_record(
            tenant=t,
            action=Action.CONTACT_EXPORTED,
            actor_label=f"auditor {tag}",
            target_type="contact",
            target_id=seeded["messaging.Contact"].pk,
        ),
    ),
    "accounts.TenantCompliance": lambda t, tag, seeded: _in_scope(
        t,
        lambda: TenantCompliance.objects.create(
            tenant=t,
            message_retention_days=365,
            account_retention_days={str(seeded["accounts.InstagramAccount"].pk): 30},
        ),
    ),
    # Not tenant-owned (it outlives its workspace): seeded so its page is in the matrix.
    "accounts.TenantDeletionJob": lambda t, tag, seeded: TenantDeletionJob.objects.create(
        tenant_id=t.pk,
        tenant_name_hash=hashlib.sha256(t.name.encode()).hexdigest(),
        requested_by_user_id=_owner_id(t),
        progress={"step": "queued", "done": [], "counts": {}},
    ),
    "messaging.BackfillJob": lambda t, tag, seeded: _in_scope(
        t,
        lambda: BackfillJob.objects.create(
            tenant=t,
            account=seeded["accounts.InstagramAccount"],  # type: ignore[misc]
            status="done",
            cursor=f"cursor-{tag}",
            error=f"import note {tag}",
        ),
    ),
    "messaging.Label": lambda t, tag, _: _in_scope(
        t, lambda: Label.objects.create(tenant=t, name=f"vip-{tag}"[:40])
    ),
    "messaging.ConversationLabel": lambda t, tag, seeded: _in_scope(
        t,
        lambda: ConversationLabel.objects.create(
            tenant=t,
            conversation=seeded["messaging.Conversation"],  # type: ignore[misc]
            label=seeded["messaging.Label"],  # type: ignore[misc]
        ),
    ),
    "messaging.Note": lambda t, tag, seeded: _in_scope(
        t,
        lambda: Note.objects.create(
            tenant=t,
            conversation=seeded["messaging.Conversation"],  # type: ignore[misc]
            body=f"Customer is a wholesaler {tag}",
        ),
    ),
    "messaging.CannedReply": lambda t, tag, _: _in_scope(
        t,
        lambda: CannedReply.objects.create(
            tenant=t, shortcut=f"ship-{tag}"[:40].lower(), body=f"We ship worldwide {tag}"
        ),
    ),
    "messaging.MessagingSettings": lambda t, tag, seeded: _in_scope(
        t,
        lambda: MessagingSettings.objects.create(
            tenant=t,
            account=seeded["accounts.InstagramAccount"],  # type: ignore[misc]
            disclosure_text=f"You are talking to a bot {tag}",
        ),
    ),
    "messaging.OutboundJob": lambda t, tag, seeded: _in_scope(
        t,
        lambda: OutboundJob.objects.create(
            tenant=t,
            account=seeded["accounts.InstagramAccount"],  # type: ignore[misc]
            conversation=seeded["messaging.Conversation"],  # type: ignore[misc]
            message=seeded["messaging.Message"],  # type: ignore[misc]
            sender_kind="agent",
            payload={"text": f"On its way {tag}"},
            status="dead",
            error_message=f"gave up {tag}",
        ),
    ),
    "messaging.SendAttempt": lambda t, tag, seeded: _in_scope(
        t,
        lambda: SendAttempt.objects.create(
            tenant=t,
            job=seeded["messaging.OutboundJob"],  # type: ignore[misc]
            number=1,
            started_at=_in_a_week(),
            outcome="failed",
        ),
    ),
    "messaging.IdempotencyKey": lambda t, tag, seeded: _in_scope(
        t,
        lambda: IdempotencyKey.objects.create(
            tenant=t,
            key=f"send-{tag}",
            fingerprint="0" * 64,
            message=seeded["messaging.Message"],  # type: ignore[misc]
        ),
    ),
    "messaging.Comment": lambda t, tag, seeded: CommentFactory.create(
        account=seeded["accounts.InstagramAccount"],
        from_username=f"commenter_{tag}",
        text=f"How much is it? {tag}",
    ),
    "automation.Rule": lambda t, tag, seeded: _in_scope(
        t,
        lambda: Rule.objects.create(
            tenant=t,
            account=seeded["accounts.InstagramAccount"],  # type: ignore[misc]
            name=f"Price answer {tag}",
            trigger=Trigger.KEYWORD,
            keywords=[f"price-{tag}"],
            actions=[{"type": "reply_text", "text": f"Prices are on our site {tag}"}],
        ),
    ),
    "automation.RuleRun": lambda t, tag, seeded: _in_scope(
        t,
        lambda: RuleRun.objects.create(
            tenant=t,
            rule=seeded["automation.Rule"],  # type: ignore[misc]
            account=seeded["accounts.InstagramAccount"],  # type: ignore[misc]
            conversation=seeded["messaging.Conversation"],  # type: ignore[misc]
            source=f"message:{tag}",
            outcome=RuleRun.Outcome.SKIPPED,
            reason=f"cooldown {tag}",
        ),
    ),
    "webhooks.ErasedCustomer": lambda t, tag, seeded: _in_scope(
        t,
        lambda: ErasedCustomer.objects.create(
            tenant=t,
            account=seeded["accounts.InstagramAccount"],  # type: ignore[misc]
            igsid_hash=f"erased-{tag}",
            erased_at=_in_a_week(),
        ),
    ),
    "automation.AccountAutomation": lambda t, tag, seeded: _in_scope(
        t,
        lambda: AccountAutomation.objects.create(
            tenant=t,
            account=seeded["accounts.InstagramAccount"],  # type: ignore[misc]
            ice_breakers=[{"question": f"Where do you ship? {tag}", "payload": f"SHIP_{tag}"}],
        ),
    ),
}


@dataclass
class TenantSeed:
    tenant: Tenant
    tag: str
    owner: Membership
    agent: Membership
    objects: dict[str, models.Model] = field(default_factory=dict)
    api_key: ApiKey | None = None
    api_secret: str = ""

    def id_of(self, label: str) -> Any:
        return self.objects[label].pk

    @property
    def users(self) -> list[User]:
        with scope(tenant=self.tenant):
            return [m.user for m in Membership.objects.select_related("user")]

    def fingerprints(self) -> set[str]:
        """Every seeded string that names this tenant's data."""
        found = {self.tenant.name}
        rows: list[models.Model] = [*self.objects.values(), *self.users]
        for row in rows:
            for f in row._meta.concrete_fields:
                value = f.value_from_object(row)
                if isinstance(value, str) and self.tag in value:
                    found.add(value)
        return found


def unseeded_tenant_models() -> list[str]:
    return sorted(
        m._meta.label
        for m in tenant_models(apps.get_models())
        if m._meta.label not in SEED_FACTORIES
    )


def seed_tenant(letter: str) -> TenantSeed:
    tag = f"{letter.lower()}{secrets.token_hex(6)}"
    tenant = TenantFactory.create(name=f"Agency {letter} {tag}")
    owner = MembershipFactory.create(
        tenant=tenant, role=Role.OWNER, user=UserFactory.create(email=f"owner-{tag}@example.com")
    )
    agent = MembershipFactory.create(
        tenant=tenant, role=Role.AGENT, user=UserFactory.create(email=f"agent-{tag}@example.com")
    )
    seed = TenantSeed(tenant=tenant, tag=tag, owner=owner, agent=agent)
    for label, make in SEED_FACTORIES.items():
        seed.objects[label] = make(tenant, tag, seed.objects)
    with scope(tenant=tenant):
        seed.api_key, seed.api_secret = services.api_key_create(
            tenant=tenant, name=f"all scopes {tag}", scopes=list(ApiScope.values), created_by=None
        )
    return seed


def checksum(seed: TenantSeed) -> dict[str, str]:
    """A digest of every row the tenant owns, its tenant row and its people, read raw."""
    quote = connection.ops.quote_name
    digests = {}
    user_ids = sorted(u.pk for u in seed.users)
    queries: list[tuple[str, str, list[Any]]] = [
        (Tenant._meta.db_table, "id = %s", [seed.tenant.pk]),
        (User._meta.db_table, "id = ANY(%s)", [user_ids]),
    ]
    for model in tenant_models(apps.get_models()):
        column = model._meta.get_field("tenant").column
        queries.append((model._meta.db_table, f"{quote(column)} = %s", [seed.tenant.pk]))
    with connection.cursor() as cursor:
        for table, where, params in queries:
            cursor.execute(
                f"SELECT t::text FROM {quote(table)} AS t WHERE {where} ORDER BY t::text",  # noqa: S608
                params,
            )
            rows = [row[0] for row in cursor.fetchall()]
            digests[table] = f"{len(rows)}:" + hashlib.sha256("\n".join(rows).encode()).hexdigest()
    return digests
