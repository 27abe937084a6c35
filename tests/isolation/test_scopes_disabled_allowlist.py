"""Tenant scopes are opened, and switched off, only where the architecture says so.

Two lists, each entry with its reason. A new file that switches scopes off or opens a scope
fails here until someone decides it belongs on a list (and says why).
"""

from __future__ import annotations

import ast
import re
from fnmatch import fnmatch
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SKIPPED_DIRS = {".venv", ".git", "tests", "node_modules", "var", "staticfiles", "__pycache__"}

# Where the scope guard may be switched off.
BYPASS_FILES = {
    "accounts/tenancy.py": "lookups that precede any scope: a person's memberships, a secret's row",
    "webhooks/router.py": "finds which tenant holds the Instagram account an event is for",
    "webhooks/partner_delivery.py": (
        "the callback relay claims due deliveries of every workspace, then sends each inside "
        "its own workspace's scope"
    ),
}
BYPASS_GLOBS = {
    "bench/*.py": "benchmarks seed and read whole databases of their own",
    "*/management/commands/*.py": "operator commands that work across tenants",
    "*/migrations/*.py": "schema and data migrations see every row",
    "*/admin.py": "the platform admin, for platform staff only",
}

# Where a tenant scope may be opened.
SCOPE_FILES = {
    "accounts/tenancy.py": "the request middleware and the Celery task decorator",
    "accounts/api/base.py": "partner API views open the scope of the key's tenant",
    "webhooks/router.py": "opens the scope of the tenant holding the event's account",
    "messaging/outbox.py": (
        "compiles its row-read statement once under a stand-in tenant (run later with the real "
        "tenant id, which it filters by); on the embedded database, hands a thread's next row "
        "on after commit inside that row's own tenant"
    ),
    "accounts/services.py": (
        "services whose scope comes from a row they hold: the tenant they just created, the "
        "invitation found by its token, the API key that just authenticated"
    ),
}
SCOPE_GLOBS = {
    "bench/*.py": "benchmarks seed workspaces of their own, one at a time",
    "*/management/commands/*.py": "operator commands that visit tenants one at a time",
}

BYPASS = re.compile(r"\b(?:with_)?scopes_disabled\b|\b_enabled\s*=\s*False\b|\._base_manager\b")


def _sources() -> dict[str, str]:
    found = {}
    for path in ROOT.rglob("*.py"):
        relative = path.relative_to(ROOT)
        if any(part in SKIPPED_DIRS or part.startswith(".") for part in relative.parts[:-1]):
            continue
        found[relative.as_posix()] = path.read_text(encoding="utf-8")
    return found


def _allowed(path: str, files: dict[str, str], globs: dict[str, str]) -> bool:
    return path in files or any(fnmatch(path, pattern) for pattern in globs)


def bypasses(source: str) -> list[str]:
    return [m.group(0) for m in BYPASS.finditer(source)]


def scope_openings(source: str) -> list[int]:
    """Line numbers where django-scopes' `scope` is called (under any imported name)."""
    tree = ast.parse(source)
    names: set[str] = set()
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("django_scopes"):
            names |= {a.asname or a.name for a in node.names if a.name == "scope"}
        elif isinstance(node, ast.Import):
            modules |= {
                a.asname or a.name for a in node.names if a.name.startswith("django_scopes")
            }
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if (isinstance(func, ast.Name) and func.id in names) or (
            isinstance(func, ast.Attribute)
            and func.attr == "scope"
            and isinstance(func.value, ast.Name | ast.Attribute)
            and ast.unparse(func.value) in modules
        ):
            lines.append(node.lineno)
    return lines


SOURCES = _sources()


def test_the_tree_is_scanned() -> None:
    assert "accounts/tenancy.py" in SOURCES
    assert not any(p.startswith(("tests/", ".venv/")) for p in SOURCES)


def test_scope_guard_is_switched_off_only_on_the_allowlist() -> None:
    offenders = {
        path: bypasses(source)
        for path, source in SOURCES.items()
        if bypasses(source) and not _allowed(path, BYPASS_FILES, BYPASS_GLOBS)
    }
    assert offenders == {}, "switching the tenant scope off outside the allowlist"


def test_scopes_are_opened_only_at_entry_points() -> None:
    offenders = {
        path: scope_openings(source)
        for path, source in SOURCES.items()
        if scope_openings(source) and not _allowed(path, SCOPE_FILES, SCOPE_GLOBS)
    }
    assert offenders == {}, "opening a tenant scope outside the entry points"


@pytest.mark.parametrize(
    ("files", "check"),
    [(BYPASS_FILES, bypasses), (SCOPE_FILES, scope_openings)],
    ids=["bypass", "scope"],
)
def test_every_named_file_on_the_lists_still_needs_its_place(files: dict[str, str], check) -> None:  # type: ignore[no-untyped-def]
    stale = [path for path in files if path not in SOURCES or not check(SOURCES[path])]
    assert stale == [], "remove these from the allowlist"


def test_detectors_see_through_aliases_and_ignore_look_alikes() -> None:
    source = (
        "import django_scopes\n"
        "from django_scopes import scope as tenant_scope, scopes_disabled\n"
        "tenant_scope(tenant=1)\n"
        "django_scopes.scope(tenant=2)\n"
        "graph.require_scope(ctx, 'messages')\n"
        "def scope(x): ...\n"
    )
    assert scope_openings(source) == [3, 4]
    assert bypasses(source) == ["scopes_disabled"]
    assert bypasses("Model.objects.with_scopes_disabled()") == ["with_scopes_disabled"]
    assert bypasses("Account._base_manager.all()") == ["._base_manager"]
    assert bypasses("with scope(_enabled=False):") == ["_enabled=False"]
    assert bypasses("require_scope(ctx)") == []
