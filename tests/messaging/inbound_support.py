"""Helpers for the inbound tests: Meta-shaped deliveries, signed posts, stored-state snapshots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.conf import settings
from django.test import Client
from django_scopes import scope

from accounts.models import Tenant
from integrations.meta.signatures import meta_json_bytes, sign_hub_body
from messaging.models import Comment, Contact, Conversation, Message, Reaction
from webhooks import relay

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "meta"
URL = "/webhooks/meta"
BUSINESS = "17841400000000000"
CUSTOMER = "6543210987654321"
T0 = 1_718_000_000_000


def fixture_body(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def fixture_json(name: str) -> dict[str, Any]:
    return json.loads(fixture_body(name))


def post(client: Client, body: bytes, *, secret: str | None = None) -> Any:
    signature = sign_hub_body(body, secret or settings.META_APP_SECRET)
    return client.generic(
        "POST", URL, body, content_type="application/json", HTTP_X_HUB_SIGNATURE_256=signature
    )


def deliver(client: Client, body: bytes) -> Any:
    """Post a signed delivery and process everything stored."""
    response = post(client, body)
    assert response.status_code == 200, response.content
    relay.drain()
    return response


def envelope(entries: dict[str, list[dict[str, Any]]], *, key: str = "messaging") -> bytes:
    return meta_json_bytes(
        {
            "object": "instagram",
            "entry": [
                {"id": business, "time": T0 + 999, key: items}
                for business, items in entries.items()
            ],
        }
    )


def item(
    body: dict[str, Any],
    *,
    ts: int = T0,
    customer: str = CUSTOMER,
    business: str = BUSINESS,
    from_business: bool = False,
) -> dict[str, Any]:
    sender, recipient = (business, customer) if from_business else (customer, business)
    return {"sender": {"id": sender}, "recipient": {"id": recipient}, "timestamp": ts, **body}


def text_message(mid: str, text: str, **kwargs: Any) -> dict[str, Any]:
    return item({"message": {"mid": mid, "text": text}}, **kwargs)


def _row(obj: Any, skip: set[str]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for f in obj._meta.concrete_fields:
        if f.name in skip:
            continue
        data[f.name] = f.value_from_object(obj)
    return data


def snapshot(tenant: Tenant) -> dict[str, Any]:
    """Everything inbound processing stored for a tenant, without ids and write times."""
    skip = {
        "id",
        "created_at",
        "updated_at",
        "mode_changed_at",  # a write time, like updated_at
        "tenant",
        "account",
        "contact",
        "conversation",
    }
    with scope(tenant=tenant):
        return {
            "contacts": sorted(
                (c.igsid, c.account.ig_user_id, c.username, c.name)
                for c in Contact.objects.select_related("account")
            ),
            "conversations": sorted(
                (c.contact.igsid, sorted(_row(c, skip).items()))
                for c in Conversation.objects.select_related("contact")
            ),
            "messages": sorted(
                (m.mid, m.conversation.contact.igsid, sorted(map(str, _row(m, skip).items())))
                for m in Message.objects.select_related("conversation__contact")
            ),
            "reactions": sorted(
                sorted(map(str, _row(r, skip).items())) for r in Reaction.objects.all()
            ),
            "comments": sorted(
                sorted(map(str, _row(c, skip).items())) for c in Comment.objects.all()
            ),
        }


def messages(tenant: Tenant, **filters: Any) -> list[Message]:
    with scope(tenant=tenant):
        return list(Message.objects.filter(**filters).order_by("sent_at", "id"))


def conversation(tenant: Tenant) -> Conversation:
    with scope(tenant=tenant):
        return Conversation.objects.get()
