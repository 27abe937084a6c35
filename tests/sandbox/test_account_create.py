"""The control API creates business accounts: a new Page-linked account sends and receives."""

from __future__ import annotations

import urllib.error

import pytest
import requests

from integrations.meta.sandbox.testing import RunningSandbox
from tests.sandbox.helpers import fb, text_to


def test_a_created_account_receives_and_answers(sandbox: RunningSandbox) -> None:
    made = sandbox.control("POST", "accounts", {"username": "shop.one", "name": "Shop One"})
    assert made["username"] == "shop.one"
    assert made["token"] == made["page_token"]
    sandbox.control("POST", "customers", {"username": "dora"})
    got = sandbox.customer("dora", "send", account="shop.one", text="hi")
    response = requests.post(
        fb(sandbox, f"{made['page_id']}/messages"),
        params={"access_token": made["page_token"]},
        json=text_to(got["igsid"], "hello dora"),
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert "hello dora" in str(sandbox.received("dora", "shop.one"))
    usernames = [a["username"] for a in sandbox.control("GET", "accounts")["data"]]
    assert "shop.one" in usernames


def test_an_existing_username_is_refused(sandbox: RunningSandbox) -> None:
    sandbox.control("POST", "accounts", {"username": "shop.two"})
    with pytest.raises(urllib.error.HTTPError) as caught:
        sandbox.control("POST", "accounts", {"username": "shop.two"})
    assert caught.value.code == 409
