"""X1: an unsend erases the content at once, before or after the original, in one tenant only."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client

from accounts.models import InstagramAccount, Tenant
from messaging.models import Message
from tests.factories import InstagramAccountFactory
from tests.messaging.inbound_support import (
    BUSINESS,
    T0,
    deliver,
    envelope,
    item,
    messages,
)

pytestmark = pytest.mark.django_db

MID = "aWdfUNSENT"
SECRET_TEXT = "my card number is 4111 1111 1111 1111"
PHOTO = "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=555&signature=SECRETPHOTO"
MESSAGING_TABLES = [
    "messaging_message",
    "messaging_reaction",
    "messaging_comment",
    "messaging_conversation",
    "messaging_contact",
]


@pytest.fixture
def account(tenant: Tenant) -> InstagramAccount:
    return InstagramAccountFactory(tenant=tenant, ig_user_id=BUSINESS)


def _original(mid: str = MID) -> bytes:
    message = {
        "mid": mid,
        "text": SECRET_TEXT,
        "attachments": [{"type": "image", "payload": {"url": PHOTO}}],
        "quick_reply": {"payload": "SECRET_PAYLOAD"},
        "referral": {"ref": "SECRET_REF", "source": "ADS", "ad_id": "1"},
    }
    return envelope({BUSINESS: [item({"message": message}, ts=T0)]})


def _unsend(mid: str = MID, business: str = BUSINESS) -> bytes:
    return envelope({business: [item({"message": {"mid": mid, "is_deleted": True}}, ts=T0 + 5000,
                                     business=business)]})  # fmt: skip


def _raw_rows_containing(*needles: str) -> list[tuple[str, str]]:
    """Search every column of every messaging table, as PostgreSQL stores it."""
    found: list[tuple[str, str]] = []
    with connection.cursor() as cursor:
        for table in MESSAGING_TABLES:
            cursor.execute(f"SELECT t::text FROM {table} AS t")  # noqa: S608 (our table names)
            for (row,) in cursor.fetchall():
                found.extend((table, n) for n in needles if n in row)
    return found


def _assert_tombstone(tenant: Tenant) -> Message:
    (message,) = messages(tenant)
    assert message.mid == MID
    assert message.is_unsent
    assert message.text == ""
    assert message.attachments == []
    assert message.quick_reply_payload == ""
    assert message.referral is None
    assert _raw_rows_containing(SECRET_TEXT, PHOTO, "SECRETPHOTO", "SECRET_PAYLOAD",
                                "SECRET_REF") == []  # fmt: skip
    return message


def test_unsend_erases_text_and_attachments_from_every_messaging_row(
    client: Client, tenant: Tenant, account: InstagramAccount
) -> None:
    deliver(client, _original())
    assert _raw_rows_containing(SECRET_TEXT, PHOTO) != []
    deliver(client, _unsend())
    message = _assert_tombstone(tenant)
    assert message.kind == Message.Kind.IMAGE  # what it was, not what it said


def test_unsend_before_the_original_keeps_the_late_original_empty(
    client: Client, tenant: Tenant, account: InstagramAccount
) -> None:
    deliver(client, _unsend())
    (tombstone,) = messages(tenant)
    assert tombstone.kind == Message.Kind.UNKNOWN
    assert tombstone.is_unsent
    deliver(client, _original())
    deliver(client, _original() + b" ")
    _assert_tombstone(tenant)


def test_repeated_unsend_is_idempotent(
    client: Client, tenant: Tenant, account: InstagramAccount
) -> None:
    deliver(client, _original())
    deliver(client, _unsend())
    first = _assert_tombstone(tenant)
    deliver(client, _unsend() + b" ")
    again = _assert_tombstone(tenant)
    assert again.deleted_at == first.deleted_at


def test_an_edit_after_the_unsend_brings_no_text_back(
    client: Client, tenant: Tenant, account: InstagramAccount
) -> None:
    deliver(client, _original())
    deliver(client, _unsend())
    edit = item({"message_edit": {"mid": MID, "text": SECRET_TEXT, "num_edit": 1}}, ts=T0 + 9000)
    deliver(client, envelope({BUSINESS: [edit]}))
    _assert_tombstone(tenant)


def test_unsend_naming_another_tenants_message_leaves_it_untouched(
    client: Client, tenant: Tenant, other_tenant: Tenant, account: InstagramAccount
) -> None:
    other = InstagramAccountFactory(tenant=other_tenant)
    theirs = envelope(
        {other.ig_user_id: [item({"message": {"mid": MID, "text": "theirs"}},
                                 business=other.ig_user_id)]}
    )  # fmt: skip
    deliver(client, theirs)
    # Tenant A's account receives an unsend for the same mid: only A gets a tombstone.
    deliver(client, _unsend())
    (mine,) = messages(tenant)
    assert mine.is_unsent
    assert mine.kind == Message.Kind.UNKNOWN
    (kept,) = messages(other_tenant)
    assert kept.text == "theirs"
    assert not kept.is_unsent
