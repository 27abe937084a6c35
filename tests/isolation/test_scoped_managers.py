"""T9: tenant-owned rows are reachable only through managers that refuse to run outside a scope.

Every model with a `tenant` field must have only django-scopes managers scoped on `tenant`;
every related manager that leads to such a model (``tenant.memberships``, ``user.memberships``,
prefetches) must refuse too; and no model may point at tenant-owned rows without a `tenant` of
its own, because its rows could not be scoped.
"""

from __future__ import annotations

from typing import ClassVar

import pytest
from django.apps import apps
from django.db import models
from django.test.utils import isolate_apps
from django_scopes import ScopedManager, ScopeError, scope

from accounts.models import InstagramAccount, Membership, Tenant, User
from tests.isolation.structure import (
    PROBE_TENANT_ID,
    is_tenant_owned,
    manager_problems,
    tenant_models,
    unowned_children,
)

ALL_MODELS = apps.get_models()
TENANT_MODELS = tenant_models(ALL_MODELS)


def _label(model: type[models.Model]) -> str:
    return model._meta.label


def test_the_known_tenant_models_are_found() -> None:
    assert {
        "accounts.Membership",
        "accounts.Invitation",
        "accounts.ApiKey",
        "accounts.InstagramAccount",
    } <= {_label(m) for m in TENANT_MODELS}


@pytest.mark.parametrize("model", TENANT_MODELS, ids=_label)
def test_every_manager_of_a_tenant_model_is_scoped_on_tenant(model: type[models.Model]) -> None:
    assert manager_problems(model) == []


@pytest.mark.parametrize("model", TENANT_MODELS, ids=_label)
def test_default_manager_raises_scope_error_outside_a_scope(model: type[models.Model]) -> None:
    with pytest.raises(ScopeError):
        model._default_manager.filter(pk=1).exists()
    with pytest.raises(ScopeError):
        model._default_manager.count()


def test_no_model_points_at_tenant_rows_without_a_tenant_of_its_own() -> None:
    assert unowned_children(ALL_MODELS) == []


def _related_accessors() -> list[tuple[type[models.Model], str, type[models.Model]]]:
    """(model, accessor, tenant-owned target) for every related manager leading to tenant rows."""
    found = []
    for model in ALL_MODELS:
        for field in model._meta.get_fields():
            target = getattr(field, "related_model", None)
            if target is None or not is_tenant_owned(target):
                continue
            if field.one_to_many or (field.many_to_many and field.auto_created):
                found.append((model, field.get_accessor_name(), target))
            elif field.many_to_many:
                found.append((model, field.name, target))
    return found


RELATED = _related_accessors()


def test_related_managers_are_found() -> None:
    accessors = {(_label(m), name) for m, name, _ in RELATED}
    assert ("accounts.Tenant", "memberships") in accessors
    assert ("accounts.User", "memberships") in accessors


@pytest.mark.parametrize(
    ("model", "accessor", "target"),
    RELATED,
    ids=[f"{_label(m)}.{name}" for m, name, _ in RELATED],
)
def test_related_managers_refuse_outside_a_scope(
    model: type[models.Model], accessor: str, target: type[models.Model]
) -> None:
    # No database access is needed: the related manager refuses before building the query.
    instance = model(pk=PROBE_TENANT_ID)
    with pytest.raises(ScopeError):
        list(getattr(instance, accessor).all())
    with pytest.raises(ScopeError):
        getattr(instance, accessor).filter(pk=1).exists()


def test_no_reverse_one_to_one_leads_into_tenant_rows_from_outside() -> None:
    # Reverse one-to-one access uses the unscoped base manager: only tenant rows may have one.
    leaks = [
        f"{_label(model)}.{field.get_accessor_name()}"
        for model in ALL_MODELS
        if not is_tenant_owned(model)
        for field in model._meta.get_fields()
        if field.one_to_one
        and field.auto_created
        and not field.concrete
        and is_tenant_owned(field.related_model)
    ]
    assert leaks == []


@pytest.mark.django_db
def test_related_managers_inside_a_scope_see_only_that_tenant(
    tenant: Tenant, other_tenant: Tenant, make_member: object
) -> None:
    person = make_member(tenant).user  # type: ignore[operator]
    make_member(other_tenant, user=person)  # type: ignore[operator]
    with scope(tenant=tenant):
        assert [m.tenant_id for m in person.memberships.all()] == [tenant.pk]
        assert list(other_tenant.memberships.all()) == []
        user = User.objects.prefetch_related("memberships").get(pk=person.pk)
        assert [m.tenant_id for m in user.memberships.all()] == [tenant.pk]


@pytest.mark.django_db
def test_prefetching_tenant_rows_outside_a_scope_raises(tenant: Tenant) -> None:
    with pytest.raises(ScopeError):
        list(Tenant.objects.prefetch_related("memberships"))


def test_no_scope_value_means_no_filter_so_entry_points_never_pass_none() -> None:
    # django-scopes treats `scope(tenant=None)` as "no filter": every entry point must refuse
    # a missing tenant before opening a scope (the task decorator does, see test_task_scope).
    with scope(tenant=None):
        sql, _ = Membership.objects.all().query.sql_with_params()
    assert " WHERE " not in sql


# -- the rules catch broken models ----------------------------------------------------------


@isolate_apps("tests.isolation")
def test_rules_catch_a_child_without_tenant_and_an_unscoped_manager() -> None:
    class Note(models.Model):  # noqa: DJ008
        account = models.ForeignKey(InstagramAccount, on_delete=models.CASCADE, related_name="+")

        class Meta:
            app_label = "isolation"

    class Draft(models.Model):  # noqa: DJ008
        tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")

        class Meta:
            app_label = "isolation"

    class Scoped(models.Model):  # noqa: DJ008
        tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
        account = models.ForeignKey(InstagramAccount, on_delete=models.CASCADE, related_name="+")

        objects = ScopedManager(tenant="tenant")
        everything: ClassVar[models.Manager[Scoped]] = models.Manager()

        class Meta:
            app_label = "isolation"

    class WrongDimension(models.Model):  # noqa: DJ008
        tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
        account = models.ForeignKey(InstagramAccount, on_delete=models.CASCADE, related_name="+")

        objects = ScopedManager(account="account")

        class Meta:
            app_label = "isolation"

    [note] = unowned_children([Note, InstagramAccount])
    assert "isolation.Note.account" in note
    assert "accounts.InstagramAccount" in note
    assert unowned_children([Scoped, InstagramAccount]) == []
    assert manager_problems(Draft) == [
        "isolation.Draft.objects queries outside a tenant scope (not a ScopedManager)"
    ]
    assert manager_problems(Scoped) == [
        "isolation.Scoped.everything queries outside a tenant scope (not a ScopedManager)"
    ]
    assert manager_problems(WrongDimension) == [
        "isolation.WrongDimension.objects is scoped, but not on its `tenant` field"
    ]
