"""messenger_profile (ice breakers, persistent menu) and webhook subscriptions
(REFERENCE §7, §1.8, §2.6)."""

from __future__ import annotations

import pytest

from integrations.meta.client import (
    DEFAULT_INSTAGRAM_SUBSCRIBED_FIELDS,
    DEFAULT_PAGE_SUBSCRIBED_FIELDS,
    AccountClient,
    Host,
    MetaClient,
)
from integrations.meta.errors import MetaError, MetaPermanentError, Reason
from integrations.meta.models import Button, IceBreaker, IceBreakerSet, PersistentMenu
from tests.contract import support as w
from tests.contract.conftest import Receiver


@pytest.fixture(params=["facebook", "instagram"])
def account(
    request: pytest.FixtureRequest, acme: AccountClient, creator: AccountClient
) -> AccountClient:
    return acme if request.param == "facebook" else creator


ICE_BREAKERS = [
    IceBreakerSet(
        items=(
            IceBreaker("Where is my order?", "ORDER_STATUS"),
            IceBreaker("Talk to a human", "HUMAN"),
            IceBreaker("Opening hours?", "HOURS"),
            IceBreaker("Returns", "RETURNS"),
        )
    ),
    IceBreakerSet(
        items=(IceBreaker("Onde está a minha encomenda?", "ORDER_STATUS"),), locale="pt_PT"
    ),
]
MENU = [
    PersistentMenu(
        items=(
            Button("postback", "Track order", payload="TRACK"),
            Button("web_url", "Shop", url="https://shop.example.com"),
        )
    )
]


def test_ice_breakers_set_get_delete(account: AccountClient) -> None:
    assert account.get_ice_breakers() == []
    assert account.set_ice_breakers(ICE_BREAKERS)
    assert account.get_ice_breakers() == ICE_BREAKERS
    assert account.set_persistent_menu(MENU)
    assert account.delete_ice_breakers()
    assert account.get_ice_breakers() == []
    assert account.get_persistent_menu() == MENU  # deleting one field keeps the others


def test_persistent_menu_set_get_delete(account: AccountClient) -> None:
    assert account.get_persistent_menu() == []
    assert account.set_persistent_menu(MENU)
    assert account.get_persistent_menu() == MENU
    assert account.delete_persistent_menu()
    assert account.get_persistent_menu() == []


def test_at_most_four_ice_breakers(meta: MetaClient, acme: AccountClient) -> None:
    five = IceBreakerSet(items=tuple(IceBreaker(f"Q{n}", f"P{n}") for n in range(5)))
    with pytest.raises(ValueError, match="1-4"):
        acme.set_ice_breakers([five])
    with pytest.raises(MetaPermanentError) as caught:
        meta.request(
            "POST",
            Host.FACEBOOK,
            f"{w.PAGE_ACME}/messenger_profile",
            token=w.ACME_TOKEN,
            json_body={"platform": "instagram", "ice_breakers": [five.to_api()]},
        )
    w.assert_error(caught.value, MetaPermanentError, Reason.INVALID_PARAMETER, 100)
    assert acme.get_ice_breakers() == []


def test_instagram_menu_takes_postback_and_web_url_only(meta: MetaClient) -> None:
    menu = [{"locale": "default", "call_to_actions": [{"type": "nested", "title": "More"}]}]
    with pytest.raises(MetaPermanentError) as caught:
        meta.request(
            "POST",
            Host.INSTAGRAM,
            "me/messenger_profile",
            token=w.CREATOR_TOKEN,
            json_body={"platform": "instagram", "persistent_menu": menu},
        )
    assert caught.value.code == 100


# -- per-account subscription (§1.8 step 2, §2.6) --------------------------------------------------


def test_page_subscribe_list_unsubscribe(acme: AccountClient) -> None:
    assert acme.subscribed_apps() == []
    assert acme.subscribe_app()
    (app,) = acme.subscribed_apps()
    assert app.id == w.APP_ID
    assert app.name
    assert app.subscribed_fields == DEFAULT_PAGE_SUBSCRIBED_FIELDS
    assert acme.subscribe_app(["messages", "standby"])
    assert acme.subscribed_apps()[0].subscribed_fields == ("messages", "standby")
    assert acme.unsubscribe_app()
    assert acme.subscribed_apps() == []


@pytest.mark.parametrize("node", ["me", w.IG_CREATOR])
def test_instagram_subscribe_list_unsubscribe(meta: MetaClient, node: str) -> None:
    account = meta.instagram_account(w.CREATOR_TOKEN, node)
    assert account.subscribed_apps() == []
    assert account.subscribe_app()
    (app,) = account.subscribed_apps()
    assert app.subscribed_fields == DEFAULT_INSTAGRAM_SUBSCRIBED_FIELDS
    assert account.unsubscribe_app()
    assert account.subscribed_apps() == []


def test_subscribed_fields_are_required_and_checked(
    acme: AccountClient, creator: AccountClient
) -> None:
    with pytest.raises(MetaPermanentError) as missing:
        acme.subscribe_app([])
    w.assert_error(missing.value, MetaPermanentError, Reason.INVALID_PARAMETER, 100)
    with pytest.raises(MetaPermanentError) as unknown:
        creator.subscribe_app(["messages", "message_reads"])  # a Page field name
    assert unknown.value.code == 100


def test_instagram_id_subscription_on_the_facebook_host_is_code_3(meta: MetaClient) -> None:
    with pytest.raises(MetaPermanentError) as caught:
        meta.facebook_page(w.IG_ACME, w.ACME_TOKEN).subscribe_app()
    w.assert_error(caught.value, MetaPermanentError, Reason.CAPABILITY_MISSING, 3)


# -- app-level subscription (§1.8 step 1) ----------------------------------------------------------


def test_app_subscription_is_verified_and_listed(meta: MetaClient, receiver: Receiver) -> None:
    assert meta.list_app_subscriptions() == []
    fields = ["messages", "messaging_postbacks", "comments"]
    assert meta.set_app_subscription(
        object="instagram",
        callback_url=receiver.url,
        verify_token=receiver.verify_token,
        fields=fields,
    )
    (subscription,) = meta.list_app_subscriptions()
    assert subscription.object == "instagram"
    assert subscription.callback_url == receiver.url
    assert subscription.active
    assert subscription.fields == tuple(fields)


def test_app_subscription_fails_when_the_callback_does_not_echo(
    meta: MetaClient, receiver: Receiver
) -> None:
    with pytest.raises(MetaError) as caught:
        meta.set_app_subscription(
            object="instagram",
            callback_url=receiver.url,
            verify_token="not-the-verify-token",
            fields=["messages"],
        )
    assert caught.value.code == 2200
    assert meta.list_app_subscriptions() == []
