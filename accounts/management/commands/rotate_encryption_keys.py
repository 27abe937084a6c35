"""Re-encrypt every stored secret under the newest key of ``FIELD_ENCRYPTION_KEYS``.

Rotating a key: put the new key first in the list (keep the old one after it), deploy, run this
command, then drop the old key. The command reads the stored ciphertext as it is in the
database, re-encrypts it with ``accounts.crypto.rotate`` and writes the new ciphertext back as
is, so no value is ever encrypted twice. Values already under the newest key are left alone,
so running it again is harmless. It exits with an error, naming rows only by primary key, if any
stored value cannot be decrypted with the configured keys: the old key must then stay.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import models, transaction
from django.db.models.functions import Cast
from django_scopes import scopes_disabled

from accounts import crypto


@dataclass
class FieldReport:
    label: str
    rotated: int = 0
    current: int = 0
    empty: int = 0
    unreadable: list[Any] = field(default_factory=list)


class Command(BaseCommand):
    help = "Re-encrypt every encrypted field under the newest key in FIELD_ENCRYPTION_KEYS."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--batch-size",
            type=int,
            default=500,
            help="Rows locked and re-encrypted per transaction (default 500).",
        )

    def handle(self, *args: Any, batch_size: int, **options: Any) -> None:
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        newest = Fernet(settings.FIELD_ENCRYPTION_KEYS[0].encode())
        reports: list[FieldReport] = []
        # Secrets of every tenant are rotated in one pass: this is a platform job.
        with scopes_disabled():
            for model, name in _concrete_encrypted_fields():
                report = _rotate_field(model, name, newest, batch_size)
                reports.append(report)
                self.stdout.write(
                    f"{report.label}: {report.rotated} re-encrypted, {report.current} already "
                    f"under the newest key, {report.empty} empty, "
                    f"{len(report.unreadable)} unreadable"
                )
        rotated = sum(r.rotated for r in reports)
        current = sum(r.current for r in reports)
        self.stdout.write(f"Total: {rotated} re-encrypted, {current} already current.")
        broken = [r for r in reports if r.unreadable]
        if broken:
            where = "; ".join(
                f"{r.label} pk {', '.join(str(pk) for pk in r.unreadable[:20])}" for r in broken
            )
            raise CommandError(
                f"Some values cannot be decrypted with the configured keys ({where}). "
                "Keep the old key until they are fixed."
            )


def _concrete_encrypted_fields() -> list[tuple[type[models.Model], str]]:
    """Each encrypted column once: proxies and inherited fields share their parent's table."""
    return [
        (model, name)
        for model, name in crypto.encrypted_fields()
        if not model._meta.proxy and model._meta.get_field(name).model is model
    ]


def _is_current(stored: str, newest: Fernet) -> bool:
    try:
        newest.decrypt(stored[len(crypto.PREFIX) :].encode())
    except InvalidToken:
        return False
    return True


def _rotate_field(
    model: type[models.Model], name: str, newest: Fernet, batch_size: int
) -> FieldReport:
    report = FieldReport(label=f"{model._meta.label}.{name}")
    manager = model._default_manager
    # Cast to plain text: the stored ciphertext, without the field's decryption on read.
    raw = Cast(name, output_field=models.TextField())
    last_pk: Any = None
    while True:
        with transaction.atomic():
            rows = manager.all() if last_pk is None else manager.filter(pk__gt=last_pk)
            batch = list(
                rows.order_by("pk")
                .select_for_update()
                .annotate(stored_value=raw)
                .values_list("pk", "stored_value")[:batch_size]
            )
            for pk, stored in batch:
                if not stored:
                    report.empty += 1
                elif stored.startswith(crypto.PREFIX) and _is_current(stored, newest):
                    report.current += 1
                else:
                    try:
                        rotated = crypto.rotate(stored)
                    except crypto.DecryptionError:
                        report.unreadable.append(pk)
                        continue
                    # A Value with a plain text output field is written as is: the field's
                    # own encryption on save must not run on an already encrypted value.
                    manager.filter(pk=pk).update(
                        **{name: models.Value(rotated, output_field=models.TextField())}
                    )
                    report.rotated += 1
        if len(batch) < batch_size:
            return report
        last_pk = batch[-1][0]
