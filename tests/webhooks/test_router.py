from __future__ import annotations

import pytest
from django_scopes import ScopeError

from accounts.models import InstagramAccount, Membership, Tenant
from tests.factories import InstagramAccountFactory
from webhooks.router import routed_to_account

pytestmark = pytest.mark.django_db


def test_event_opens_the_scope_of_the_tenant_owning_the_account(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    mine = InstagramAccountFactory(tenant=tenant)
    InstagramAccountFactory(tenant=other_tenant)
    with routed_to_account(mine.ig_user_id) as account:
        assert account is not None
        assert account.tenant_id == tenant.pk
        # Inside, only this tenant's rows are visible.
        assert list(InstagramAccount.objects.values_list("tenant_id", flat=True)) == [tenant.pk]
    with pytest.raises(ScopeError):
        list(Membership.objects.all())


@pytest.mark.parametrize(
    "meta_id", ["", "999999", "17841400000000000' OR 1=1", "abc", "\u00b2", "\u0663"]
)
def test_unknown_or_malformed_account_ids_route_nowhere(meta_id: str, tenant: Tenant) -> None:
    InstagramAccountFactory(tenant=tenant)
    with routed_to_account(meta_id) as account:
        assert account is None


def test_disconnected_accounts_receive_nothing(tenant: Tenant) -> None:
    account = InstagramAccountFactory(tenant=tenant, status=InstagramAccount.Status.DISCONNECTED)
    with routed_to_account(account.ig_user_id) as found:
        assert found is None
