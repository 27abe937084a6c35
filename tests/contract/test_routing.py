"""Conversation routing (ex-handover): pass/take/release/request/extend and thread_owner
(REFERENCE §6)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from integrations.meta.client import INSTAGRAM_INBOX_APP_ID, AccountClient
from integrations.meta.errors import MetaPermanentError, MetaPolicyError, Reason
from integrations.meta.sandbox.testing import RunningSandbox
from tests.contract import support as w


def sandbox_now(sbx: RunningSandbox) -> datetime:
    return datetime.fromtimestamp(sbx.control("GET", "clock")["now_ms"] / 1000, tz=UTC)


@pytest.fixture(params=["facebook", "instagram"])
def routed(
    request: pytest.FixtureRequest, acme: AccountClient, creator: AccountClient
) -> tuple[AccountClient, str, str, str]:
    """(account, customer igsid, customer username, account username)."""
    if request.param == "facebook":
        return acme, w.ALICE_AT_ACME, "alice", "acme.store"
    return creator, w.DMITRI_AT_CREATOR, "dmitri", "chloe.creates"


def test_idle_thread_has_no_owner(routed: tuple[AccountClient, str, str, str]) -> None:
    account, igsid, _, _ = routed
    owner = account.thread_owner(igsid)
    assert owner.app_id is None
    assert owner.expires_at is None


def test_pass_to_the_inbox_then_take_back(
    sbx: RunningSandbox, routed: tuple[AccountClient, str, str, str]
) -> None:
    account, igsid, _, username = routed
    assert account.pass_thread_control(igsid, INSTAGRAM_INBOX_APP_ID, metadata="escalate")
    owner = account.thread_owner(igsid)
    assert owner.app_id == INSTAGRAM_INBOX_APP_ID
    assert owner.expires_at is not None
    assert abs(owner.expires_at - (sandbox_now(sbx) + timedelta(hours=24))) < timedelta(minutes=2)

    with pytest.raises(MetaPolicyError) as send:
        account.send_text(igsid, "Bot reply while the Inbox owns the thread")
    w.assert_error(send.value, MetaPolicyError, Reason.NOT_THREAD_OWNER, 100, 2534037)
    with pytest.raises(MetaPolicyError) as pass_again:
        account.pass_thread_control(igsid, INSTAGRAM_INBOX_APP_ID)
    assert pass_again.value.reason == Reason.NOT_THREAD_OWNER
    with pytest.raises(MetaPolicyError) as release:
        account.release_thread_control(igsid)
    assert release.value.reason == Reason.NOT_THREAD_OWNER

    # Default routing: take is blocked, request is allowed.
    with pytest.raises(MetaPolicyError) as take:
        account.take_thread_control(igsid, metadata="agent override")
    w.assert_error(take.value, MetaPolicyError, Reason.THREAD_OWNED_BY_OTHER_APP, 10, 2018300)
    assert account.request_thread_control(igsid, metadata="bot wants it back")

    sbx.control("POST", f"accounts/{username}", {"take_thread_allowed": True})
    assert account.take_thread_control(igsid, metadata="agent override")
    assert account.thread_owner(igsid).app_id == w.APP_ID
    assert account.send_text(igsid, "Back with the bot").message_id


def test_extend_and_release(
    sbx: RunningSandbox, routed: tuple[AccountClient, str, str, str]
) -> None:
    account, igsid, _, username = routed
    with pytest.raises(MetaPolicyError) as not_owner:
        account.extend_thread_control(igsid, 3600)
    assert not_owner.value.reason == Reason.NOT_THREAD_OWNER
    sbx.control("POST", f"accounts/{username}", {"take_thread_allowed": True})
    assert account.take_thread_control(igsid)
    first = account.thread_owner(igsid).expires_at
    assert first is not None
    assert account.extend_thread_control(igsid, 86400)
    extended = account.thread_owner(igsid).expires_at
    assert extended is not None
    assert extended - first == timedelta(days=1)
    with pytest.raises(MetaPermanentError) as too_long:
        account.extend_thread_control(igsid, 8 * 86400)
    w.assert_error(too_long.value, MetaPermanentError, Reason.INVALID_PARAMETER, 100)
    assert account.release_thread_control(igsid)
    assert account.thread_owner(igsid).app_id is None
    assert account.send_text(igsid, "Idle thread, anyone may answer").message_id


def test_ownership_lapses_after_a_day(
    sbx: RunningSandbox, routed: tuple[AccountClient, str, str, str]
) -> None:
    account, igsid, customer, username = routed
    sbx.control("POST", "threads/owner", {"account": username, "customer": customer})
    assert account.thread_owner(igsid).app_id == INSTAGRAM_INBOX_APP_ID
    sbx.advance(hours=25)
    assert account.thread_owner(igsid).app_id is None


def test_routing_on_unknown_recipient(acme: AccountClient) -> None:
    with pytest.raises(MetaPermanentError) as caught:
        acme.thread_owner("6000000000199999")
    assert caught.value.reason == Reason.RECIPIENT_NOT_FOUND


def test_messaging_feature_status_with_a_page_token(acme: AccountClient) -> None:
    assert acme.messaging_feature_status() == {
        "hop_v2": True,
        "msgr_multi_app": True,
        "ig_multi_app": True,
    }
