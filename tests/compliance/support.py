"""Helpers for the compliance tests: a search of every stored value, as PostgreSQL keeps it."""

from __future__ import annotations

from typing import Any

from django.db import connection
from django_scopes import scope

from accounts.models import AuditEntry, Tenant

# Every column that can hold text: character types, JSON, arrays of text, and raw bytes.
_SEARCHABLE = {"text", "character varying", "character", "json", "jsonb", "ARRAY", "bytea"}


def searchable_columns() -> list[tuple[str, str, str]]:
    """(table, column, type) of every text, JSON and bytea column of the public schema."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.table_name, c.column_name, c.data_type
            FROM information_schema.columns c
            JOIN information_schema.tables t
              ON t.table_name = c.table_name AND t.table_schema = c.table_schema
            WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'
            ORDER BY c.table_name, c.ordinal_position
            """
        )
        return [row for row in cursor.fetchall() if row[2] in _SEARCHABLE]


def rows_containing(*needles: str) -> list[tuple[str, str, str]]:
    """(table, column, needle) wherever a needle appears in any stored value of any table.

    bytea is read as ``encode(col, 'escape')``; JSON as its text (a needle with non-ASCII or
    ``/`` is also searched as JSON escapes it).
    """
    quote = connection.ops.quote_name
    found: list[tuple[str, str, str]] = []
    forms = {n: {n, n.replace("/", "\\/")} for n in needles if n}
    with connection.cursor() as cursor:
        for table, column, kind in searchable_columns():
            if kind == "bytea":
                value = f"encode({quote(column)}, 'escape')"
            else:
                value = f"{quote(column)}::text"
            for needle, variants in forms.items():
                clauses = " OR ".join([f"strpos({value}, %s) > 0"] * len(variants))
                cursor.execute(
                    f"SELECT 1 FROM {quote(table)} WHERE {clauses} LIMIT 1",  # noqa: S608
                    sorted(variants),
                )
                if cursor.fetchone():
                    found.append((table, column, needle))
    return found


def audit_actions(tenant: Tenant | int, action: str | None = None) -> list[AuditEntry]:
    with scope(tenant=tenant if isinstance(tenant, int) else tenant.pk):
        entries = AuditEntry.objects.order_by("id")
        if action is not None:
            entries = entries.filter(action=action)
        return list(entries)


def run_on_commit(callbacks: list[Any]) -> None:
    for callback in callbacks:
        callback()
