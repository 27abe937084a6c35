"""Structural rules of tenancy and route discovery, as functions, so tests can also feed them
deliberately broken models and prove they catch the breakage."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from django.db import models
from django.urls import URLPattern, URLResolver, get_resolver
from django_scopes import ScopeError, scope
from django_scopes.manager import DisabledQuerySet

# A scope value no real tenant has: queries built inside it name it in their parameters.
PROBE_TENANT_ID = 987_654_321


def is_tenant_owned(model: type[models.Model]) -> bool:
    try:
        field = model._meta.get_field("tenant")
    except Exception:
        return False
    return isinstance(field, models.ForeignKey)


def tenant_models(candidates: Iterable[type[models.Model]]) -> list[type[models.Model]]:
    return [m for m in candidates if is_tenant_owned(m) and not m._meta.abstract]


def manager_problems(model: type[models.Model]) -> list[str]:
    """Why a tenant-owned model's managers would let a query escape the tenant scope."""
    problems = []
    label = model._meta.label
    field = model._meta.get_field("tenant")
    if field.null:
        problems.append(f"{label}.tenant is nullable")
    for manager in model._meta.managers:
        name = f"{label}.{manager.name}"
        queryset = manager.get_queryset()
        if not isinstance(queryset, DisabledQuerySet):
            problems.append(f"{name} queries outside a tenant scope (not a ScopedManager)")
            continue
        try:
            list(manager.all())
        except ScopeError:
            pass
        else:  # pragma: no cover - DisabledQuerySet always raises
            problems.append(f"{name}.all() ran outside a tenant scope")
        with scope(tenant=PROBE_TENANT_ID):
            sql, params = manager.get_queryset().query.sql_with_params()
        where = sql.partition(" WHERE ")[2]
        if field.column not in where or PROBE_TENANT_ID not in params:
            problems.append(f"{name} is scoped, but not on its `tenant` field")
    return problems


def unowned_children(candidates: Iterable[type[models.Model]]) -> list[str]:
    """Models that point at a tenant-owned model but carry no `tenant` field of their own."""
    candidates = list(candidates)
    owned = {m for m in candidates if is_tenant_owned(m)}
    found = []
    for model in candidates:
        if model in owned or model._meta.abstract:
            continue
        for field in model._meta.get_fields(include_hidden=True):
            reverse = field.auto_created and not field.concrete
            target = getattr(field, "related_model", None)
            if field.is_relation and not reverse and target in owned:
                found.append(
                    f"{model._meta.label}.{field.name} points at tenant-owned "
                    f"{target._meta.label} but {model._meta.label} has no `tenant` field"
                )
    return found


# -- routes ------------------------------------------------------------------------------------

_REGEX_GROUP = re.compile(r"\(\?P<(\w+)>[^)]*\)")
_CONVERTER = re.compile(r"<(?:\w+:)?(\w+)>")


def walk_urls(
    patterns: Iterable[URLPattern | URLResolver] | None = None, prefix: str = ""
) -> Iterator[tuple[str, Callable[..., Any]]]:
    """(route, view) for every URL pattern, routes normalised to `/a/{param}/b`."""
    if patterns is None:
        patterns = get_resolver().url_patterns
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from walk_urls(pattern.url_patterns, prefix + str(pattern.pattern))
        else:
            yield normalise_route(prefix + str(pattern.pattern)), pattern.callback


def normalise_route(route: str) -> str:
    route = _REGEX_GROUP.sub(r"{\1}", route)
    route = _CONVERTER.sub(r"{\1}", route)
    return "/" + route.replace("^", "").replace("$", "").replace("\\", "")


def route_shape(route: str) -> str:
    """A route with its parameter names erased, to compare resolver and schema paths."""
    return re.sub(r"\{\w+\}", "{}", route)


def view_methods(view: Callable[..., Any]) -> set[str] | None:
    """The HTTP methods a class-based view answers; None for a function view."""
    actions = getattr(view, "actions", None)
    if actions:
        return {method.upper() for method in actions if method not in ("options", "head")}
    cls = getattr(view, "cls", None) or getattr(view, "view_class", None)
    if cls is None:
        return None
    return {
        method.upper()
        for method in cls.http_method_names
        if method not in ("options", "head") and hasattr(cls, method)
    }
