"""Secrets at rest: an encrypted text field on MultiFernet with a key list from settings.

The first key in ``settings.FIELD_ENCRYPTION_KEYS`` encrypts; every key decrypts, so keys rotate
by putting a new key first, running ``manage.py rotate_encryption_keys``, then dropping the old
key. A value that no key can decrypt raises ``DecryptionError``: never a silent passthrough.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models

PREFIX = "fernet:"


class DecryptionError(Exception):
    """A stored secret could not be decrypted with any configured key."""


@lru_cache(maxsize=8)
def _fernet_for(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEYS is empty: secrets cannot be stored.")
    try:
        return MultiFernet([Fernet(key.encode()) for key in keys])
    except ValueError as exc:
        raise ImproperlyConfigured(f"FIELD_ENCRYPTION_KEYS holds an invalid key: {exc}") from exc


def fernet() -> MultiFernet:
    return _fernet_for(tuple(settings.FIELD_ENCRYPTION_KEYS))


def encrypt(plaintext: str) -> str:
    return PREFIX + fernet().encrypt(plaintext.encode()).decode()


def decrypt(stored: str) -> str:
    if not stored.startswith(PREFIX):
        raise DecryptionError("The stored value is not an encrypted secret.")
    try:
        return fernet().decrypt(stored[len(PREFIX) :].encode()).decode()
    except InvalidToken as exc:
        raise DecryptionError("No configured encryption key decrypts this value.") from exc


def rotate(stored: str) -> str:
    """The same secret re-encrypted under the newest key."""
    if not stored.startswith(PREFIX):
        raise DecryptionError("The stored value is not an encrypted secret.")
    try:
        token = fernet().rotate(stored[len(PREFIX) :].encode())
    except InvalidToken as exc:
        raise DecryptionError("No configured encryption key decrypts this value.") from exc
    return PREFIX + token.decode()


class EncryptedTextField(models.TextField):
    """Text stored encrypted; Python code only ever sees the plaintext."""

    description = "Text encrypted at rest with MultiFernet"

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> str | None:
        if value is None or value == "":
            return value
        return decrypt(value)

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return encrypt(str(value))


def encrypted_fields() -> list[tuple[type[models.Model], str]]:
    """Every (model, field name) that stores an encrypted secret."""
    from django.apps import apps

    return [
        (model, field.name)
        for model in apps.get_models()
        for field in model._meta.get_fields()
        if isinstance(field, EncryptedTextField)
    ]
