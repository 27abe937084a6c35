"""S4: tokens at rest are encrypted, fail loudly with a wrong key, and rotate to a new key."""

from __future__ import annotations

import re
from io import StringIO
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import override_settings
from django_scopes import scope

from accounts import crypto, services
from accounts.crypto import DecryptionError
from accounts.models import InstagramAccount, Membership, Role, Tenant
from tests.factories import InstagramAccountFactory, MembershipFactory
from tests.security.production import ROOT, production_env, run_python

pytestmark = pytest.mark.django_db

ACCOUNT_TABLE = InstagramAccount._meta.db_table

# Shapes of Meta access tokens: Facebook Login (EAA…) and Instagram Login (IGAA…, IGQV…).
TOKEN_SHAPE = re.compile(r"(?<![A-Za-z0-9])(EAA|IG[A-Z]{2})[A-Za-z0-9_-]{8,}")
# A whole stored ciphertext: random base64, where a token shape can appear by chance.
CIPHERTEXT = re.compile(r"^fernet:[A-Za-z0-9_=-]+$")


def _raw_token(pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT access_token FROM {ACCOUNT_TABLE} WHERE id = %s", [pk])  # noqa: S608
        return cursor.fetchone()[0]


def _write_raw_token(pk: int, value: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {ACCOUNT_TABLE} SET access_token = %s WHERE id = %s",  # noqa: S608
            [value, pk],
        )


def _load(account: InstagramAccount) -> InstagramAccount:
    with scope(tenant=account.tenant_id):
        return InstagramAccount.objects.get(pk=account.pk)


def test_access_token_column_holds_ciphertext_only(tenant: Tenant) -> None:
    token = "EAAGm0PX4ZCpsBAKZBsample0page0token0ZDZD"
    account = InstagramAccountFactory(tenant=tenant, access_token=token)

    raw = _raw_token(account.pk)

    assert raw.startswith(crypto.PREFIX)
    assert token not in raw
    assert _load(account).access_token == token


def test_wrong_key_raises_decryption_error(tenant: Tenant) -> None:
    account = InstagramAccountFactory(tenant=tenant)
    with (
        override_settings(FIELD_ENCRYPTION_KEYS=[Fernet.generate_key().decode()]),
        pytest.raises(DecryptionError),
    ):
        _load(account)


def test_plaintext_in_the_column_is_refused_not_passed_through(tenant: Tenant) -> None:
    account = InstagramAccountFactory(tenant=tenant)
    _write_raw_token(account.pk, "EAAG-written-around-the-field")
    with pytest.raises(DecryptionError):
        _load(account)


def test_empty_key_list_refuses_to_encrypt() -> None:
    from django.core.exceptions import ImproperlyConfigured

    with override_settings(FIELD_ENCRYPTION_KEYS=[]), pytest.raises(ImproperlyConfigured):
        crypto.encrypt("EAAG-anything")


# -- rotation ------------------------------------------------------------------------------


def _rotate(**options: int) -> str:
    out = StringIO()
    call_command("rotate_encryption_keys", stdout=out, **options)
    return out.getvalue()


def _account_line(output: str) -> str:
    return next(line for line in output.splitlines() if "InstagramAccount.access_token" in line)


def test_rotation_moves_every_token_to_the_new_key(tenant: Tenant, other_tenant: Tenant) -> None:
    old_key = settings.FIELD_ENCRYPTION_KEYS[0]
    new_key = Fernet.generate_key().decode()
    accounts = [InstagramAccountFactory(tenant=t) for t in (tenant, other_tenant) for _ in range(3)]
    tokens = {a.pk: a.access_token for a in accounts}
    empty = InstagramAccountFactory(tenant=tenant, access_token="")
    before = {pk: _raw_token(pk) for pk in tokens}

    with override_settings(FIELD_ENCRYPTION_KEYS=[new_key, old_key]):
        first = _rotate(batch_size=2)  # several batches
        second = _rotate(batch_size=2)

    assert _account_line(first).startswith(
        "accounts.InstagramAccount.access_token: 6 re-encrypted, 0 already under the newest key, "
        "1 empty, 0 unreadable"
    )
    # Running it again changes nothing.
    assert "0 re-encrypted, 6 already under the newest key" in _account_line(second)
    assert all(_raw_token(pk) != before[pk] for pk in tokens)
    assert _raw_token(empty.pk) == ""

    with override_settings(FIELD_ENCRYPTION_KEYS=[new_key]):
        for account in accounts:
            assert _load(account).access_token == tokens[account.pk]
    with override_settings(FIELD_ENCRYPTION_KEYS=[old_key]), pytest.raises(DecryptionError):
        _load(accounts[0])


def test_rotation_stops_with_an_error_when_a_value_cannot_be_decrypted(tenant: Tenant) -> None:
    readable = InstagramAccountFactory(tenant=tenant)
    broken = InstagramAccountFactory(tenant=tenant)
    stranger = Fernet(Fernet.generate_key())
    _write_raw_token(broken.pk, crypto.PREFIX + stranger.encrypt(b"EAAG-lost").decode())
    new_key = Fernet.generate_key().decode()

    with (
        override_settings(FIELD_ENCRYPTION_KEYS=[new_key, *settings.FIELD_ENCRYPTION_KEYS]),
        pytest.raises(CommandError, match=rf"pk {broken.pk}\b") as excinfo,
    ):
        _rotate()

    assert "EAAG-lost" not in str(excinfo.value)
    with override_settings(FIELD_ENCRYPTION_KEYS=[new_key]):
        assert _load(readable).access_token == readable.access_token


# -- nothing token-like is stored in clear, anywhere ------------------------------------------


def _text_columns() -> list[tuple[str, str]]:
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT table_name, column_name FROM information_schema.columns
            WHERE table_schema = current_schema()
              AND data_type IN ('text', 'character varying', 'character', 'json', 'jsonb')
            ORDER BY table_name, column_name
            """
        )
        return cursor.fetchall()


def _column_values(table: str, column: str) -> list[str]:
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {quote(column)}::text FROM {quote(table)} "  # noqa: S608
            f"WHERE {quote(column)} IS NOT NULL"
        )
        return [row[0] for row in cursor.fetchall()]


def test_no_table_holds_a_token_or_secret_in_clear(tenant: Tenant) -> None:
    owner = MembershipFactory(tenant=tenant, role=Role.OWNER)
    fb_token = "EAAGm0PX4ZCpsBAKZBfacebook0login0page0token"
    ig_token = "IGAAT0instagram0login0user0token0sample0value"
    InstagramAccountFactory(tenant=tenant, access_token=fb_token)
    InstagramAccountFactory(
        tenant=tenant,
        access_token=ig_token,
        login_kind=InstagramAccount.LoginKind.INSTAGRAM,
    )
    with scope(tenant=tenant):
        key, key_secret = services.api_key_create(
            tenant=tenant, name="crm", scopes=["members:read"], created_by=owner.user
        )
        _, invitation_token = services.invitation_create(
            tenant=tenant,
            email="new.agent@example.com",
            role=Role.AGENT,
            invited_by=owner.user,
            acting_role=Role.OWNER,
        )
        assert Membership.objects.count() == 1
    secrets = {
        "facebook token": fb_token,
        "instagram token": ig_token,
        "api key": key_secret,
        "api key secret part": key_secret.removeprefix(key.prefix + "_"),
        "invitation token": invitation_token,
    }

    columns = _text_columns()
    assert (ACCOUNT_TABLE, "access_token") in columns
    hits = []
    for table, column in columns:
        for value in _column_values(table, column):
            hits += [(table, column, name) for name, s in secrets.items() if s in value]
            if not CIPHERTEXT.match(value) and TOKEN_SHAPE.search(value):
                hits.append((table, column, "token-shaped value"))
    assert hits == []


# -- production refuses to start without usable keys --------------------------------------------

SETUP = ["-c", "import django; django.setup(); print('started')"]


def test_production_settings_start_with_a_valid_key(tmp_path: Path) -> None:
    result = run_python(SETUP, production_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "started" in result.stdout


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(None, id="unset"),
        pytest.param("", id="empty"),
        pytest.param(" , ", id="blank-items"),
        pytest.param("not-a-fernet-key", id="invalid"),
    ],
)
def test_production_settings_refuse_to_start_without_a_usable_key(
    tmp_path: Path, value: str | None
) -> None:
    if value is None and (ROOT / ".env").exists():
        pytest.skip("a local .env file may provide the keys")
    result = run_python(SETUP, production_env(tmp_path, FIELD_ENCRYPTION_KEYS=value))
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "FIELD_ENCRYPTION_KEYS" in result.stderr
    assert "started" not in result.stdout
    if value and value.strip(" ,"):
        assert value not in result.stderr  # the message never echoes key material
