"""Messaging rules and the typed error each one raises (REFERENCE §4.6, §4.7, §5.4, §11)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from integrations.meta.client import AccountClient, Host, MetaClient
from integrations.meta.errors import (
    MetaAuthError,
    MetaPermanentError,
    MetaPermissionError,
    MetaPolicyError,
    Reason,
)
from integrations.meta.models import Button, QuickReply, TemplateElement
from integrations.meta.sandbox.testing import RunningSandbox
from tests.contract import support as w

# -- 24 h window and HUMAN_AGENT (§4.6) ------------------------------------------------------------


def test_window_closed_on_the_facebook_host(acme: AccountClient) -> None:
    with pytest.raises(MetaPolicyError) as caught:
        acme.send_text(w.CARLA_AT_ACME, "Still there?")  # wrote 10 days ago
    err = caught.value
    w.assert_error(err, MetaPolicyError, Reason.WINDOW_CLOSED, 10, 2018278)
    assert (err.http_status, err.error_type) == (400, "OAuthException")


def test_window_closed_on_the_instagram_host_is_403_igapiexception(
    sbx: RunningSandbox, creator: AccountClient
) -> None:
    assert creator.send_text(w.DMITRI_AT_CREATOR, "Within 24 h").message_id
    sbx.advance(hours=21)  # dmitri wrote 2 h before: now 23 h
    assert creator.send_text(w.DMITRI_AT_CREATOR, "Still within 24 h").message_id
    sbx.advance(hours=2)
    with pytest.raises(MetaPolicyError) as caught:
        creator.send_text(w.DMITRI_AT_CREATOR, "Too late")
    err = caught.value
    w.assert_error(err, MetaPolicyError, Reason.WINDOW_CLOSED, 10, 2534022)
    assert (err.http_status, err.error_type) == (403, "IGApiException")
    with pytest.raises(MetaPolicyError) as typing:
        creator.typing_on(w.DMITRI_AT_CREATOR)
    assert typing.value.reason == Reason.WINDOW_CLOSED


def test_customer_message_reopens_the_window(sbx: RunningSandbox, acme: AccountClient) -> None:
    with pytest.raises(MetaPolicyError):
        acme.send_text(w.CARLA_AT_ACME, "Hello?")
    sbx.customer("carla", "send", account="acme.store", text="Back again")
    assert acme.send_text(w.CARLA_AT_ACME, "Welcome back").message_id


@pytest.mark.parametrize("trigger", ["postback", "referral"])
def test_postback_and_referral_open_the_window(
    sbx: RunningSandbox, acme: AccountClient, trigger: str
) -> None:
    sbx.customer("carla", trigger, account="acme.store")
    assert acme.send_text(w.CARLA_AT_ACME, "How can we help?").message_id


def test_human_agent_within_seven_days(sbx: RunningSandbox, acme: AccountClient) -> None:
    with pytest.raises(MetaPolicyError) as plain:
        acme.send_text(w.BOB_AT_ACME, "Following up")  # wrote 2 days ago
    assert plain.value.reason == Reason.WINDOW_CLOSED
    result = acme.send_text(w.BOB_AT_ACME, "Following up on your return.", human_agent=True)
    assert result.message_id
    got = sbx.received("bob", account=w.IG_ACME)[-1]
    assert got["tag"] == "HUMAN_AGENT"
    with pytest.raises(MetaPolicyError) as too_old:
        acme.send_text(w.CARLA_AT_ACME, "Following up", human_agent=True)  # 10 days
    w.assert_error(too_old.value, MetaPolicyError, Reason.WINDOW_CLOSED, 10, 2018278)


def test_human_agent_ends_after_seven_days_on_instagram_login(
    sbx: RunningSandbox, creator: AccountClient
) -> None:
    sbx.advance(days=6, hours=20)
    assert creator.send_text(w.DMITRI_AT_CREATOR, "Sorry for the wait", human_agent=True).message_id
    sbx.advance(hours=4)
    with pytest.raises(MetaPolicyError) as caught:
        creator.send_text(w.DMITRI_AT_CREATOR, "Sorry for the wait", human_agent=True)
    w.assert_error(caught.value, MetaPolicyError, Reason.WINDOW_CLOSED, 10, 2534022)


def test_human_agent_needs_the_app_feature(sbx: RunningSandbox, acme: AccountClient) -> None:
    sbx.control("POST", f"apps/{w.APP_ID}", {"human_agent": False})
    with pytest.raises(MetaPermissionError) as caught:
        acme.send_text(w.BOB_AT_ACME, "Following up", human_agent=True)
    w.assert_error(caught.value, MetaPermissionError, Reason.HUMAN_AGENT_NOT_APPROVED, 100, 2018276)
    # Even inside the 24 h window the tag is refused without the feature.
    with pytest.raises(MetaPermissionError):
        acme.send_text(w.ALICE_AT_ACME, "Hi", human_agent=True)
    assert acme.send_text(w.ALICE_AT_ACME, "Hi").message_id


# -- private replies (§4.7) ------------------------------------------------------------------------


def test_private_reply_within_seven_days_only(sbx: RunningSandbox, acme: AccountClient) -> None:
    with pytest.raises(MetaPolicyError) as old:
        acme.send_private_reply(w.COMMENT_BOB_ACME_OLD, "Thanks!")  # 8 days old
    w.assert_error(old.value, MetaPolicyError, Reason.ALREADY_REPLIED, 100, 2534025)
    sbx.advance(days=7)  # the fresh comment (1 h old) is now past 7 days
    with pytest.raises(MetaPolicyError) as aged:
        acme.send_private_reply(w.COMMENT_DMITRI_ACME, "Thanks!")
    w.assert_error(aged.value, MetaPolicyError, Reason.ALREADY_REPLIED, 100, 2534025)


def test_private_reply_rules(sbx: RunningSandbox, acme: AccountClient) -> None:
    comment = sbx.customer("carla", "comment", media_id=w.MEDIA_ACME_REEL, text="Price?")
    result = acme.send_private_reply(comment["comment_id"], "Sent you the price in DM")
    assert result.recipient_id == "6000000000100003"
    with pytest.raises(MetaPolicyError) as twice:
        acme.send_private_reply(comment["comment_id"], "Again")
    w.assert_error(twice.value, MetaPolicyError, Reason.ALREADY_REPLIED, 100, 2534025)
    with pytest.raises(MetaPolicyError) as unknown:
        acme.send_private_reply("17950000000099999", "Hi")
    assert unknown.value.reason == Reason.ALREADY_REPLIED
    # After a private reply the business waits for the customer's answer.
    with pytest.raises(MetaPolicyError) as waiting:
        acme.send_text(w.DMITRI_AT_ACME, "Did you see my reply?")
    acme.send_private_reply(w.COMMENT_DMITRI_ACME, "Thanks for asking!")
    with pytest.raises(MetaPolicyError) as waiting:
        acme.send_text(w.DMITRI_AT_ACME, "Did you see my reply?")
    assert waiting.value.reason == Reason.WINDOW_CLOSED
    sbx.customer("dmitri", "send", account="acme.store", text="Yes, thanks")
    assert acme.send_text(w.DMITRI_AT_ACME, "Great!").message_id


# -- size and count limits: checked by the client, and by Meta (§4.3) ------------------------------


def _qr(n: int, title: str = "Opt") -> list[dict[str, str]]:
    return [{"content_type": "text", "title": f"{title}", "payload": f"P{i}"} for i in range(n)]


def _element(n: int, buttons: int = 1) -> dict[str, object]:
    return {
        "title": f"Card {n}",
        "buttons": [{"type": "postback", "title": f"B{b}", "payload": "X"} for b in range(buttons)],
    }


def _template(elements: list[dict[str, object]]) -> dict[str, object]:
    return {
        "attachment": {
            "type": "template",
            "payload": {"template_type": "generic", "elements": elements},
        }
    }


@pytest.mark.parametrize(
    ("message", "subcode"),
    [
        pytest.param({"text": "a" * 1001}, None, id="text-1001-bytes"),
        pytest.param({"text": "é" * 500 + "a"}, None, id="text-1001-utf8-bytes"),
        pytest.param({"text": "Pick", "quick_replies": _qr(14)}, 2534015, id="14-quick-replies"),
        pytest.param(
            {"text": "Pick", "quick_replies": _qr(1, "x" * 21)}, 2534015, id="qr-title-21"
        ),
        pytest.param(_template([_element(n) for n in range(11)]), 2534015, id="11-elements"),
        pytest.param(_template([_element(0, buttons=4)]), 2534015, id="4-buttons"),
        pytest.param(
            {
                "attachments": [
                    {"type": "image", "payload": {"url": f"https://c.example/{n}.png"}}
                    for n in range(11)
                ]
            },
            2534015,
            id="11-images",
        ),
    ],
)
def test_meta_refuses_oversized_messages(
    meta: MetaClient, acme: AccountClient, message: dict[str, object], subcode: int | None
) -> None:
    body = {"recipient": {"id": w.ALICE_AT_ACME}, "messaging_type": "RESPONSE", "message": message}
    with pytest.raises(MetaPermanentError) as caught:
        w.raw_send(meta, acme, body)
    reason = Reason.INVALID_PARAMETER if subcode is None else Reason.INVALID_MESSAGE
    w.assert_error(caught.value, MetaPermanentError, reason, 100, subcode)


def test_the_client_refuses_the_same_limits_before_any_call(
    sbx: RunningSandbox, acme: AccountClient
) -> None:
    before = len(sbx.received("alice", account=w.IG_ACME))
    with pytest.raises(ValueError, match="1000 bytes"):
        acme.send_text(w.ALICE_AT_ACME, "é" * 500 + "a")
    with pytest.raises(ValueError, match="quick replies"):
        acme.send_text(w.ALICE_AT_ACME, "Pick", quick_replies=[QuickReply("a", "A")] * 14)
    with pytest.raises(ValueError, match="1-20"):
        acme.send_text(w.ALICE_AT_ACME, "Pick", quick_replies=[QuickReply("x" * 21, "A")])
    with pytest.raises(ValueError, match="elements"):
        acme.send_generic_template(w.ALICE_AT_ACME, [TemplateElement(title="t")] * 11)
    with pytest.raises(ValueError, match="buttons"):
        acme.send_generic_template(
            w.ALICE_AT_ACME,
            [TemplateElement(title="t", buttons=(Button("postback", "b", payload="p"),) * 4)],
        )
    with pytest.raises(ValueError, match="images"):
        acme.send_images(w.ALICE_AT_ACME, ["https://c.example/a.png"] * 11)
    assert len(sbx.received("alice", account=w.IG_ACME)) == before


# -- recipients and accounts (§1, §4.1, §5.4, §11) -------------------------------------------------


@pytest.mark.parametrize("host", ["facebook", "instagram"])
def test_blocked_customer_is_551(
    sbx: RunningSandbox, acme: AccountClient, creator: AccountClient, host: str
) -> None:
    account, igsid, customer, ig = (
        (acme, w.ALICE_AT_ACME, "alice", "acme.store")
        if host == "facebook"
        else (creator, w.DMITRI_AT_CREATOR, "dmitri", "chloe.creates")
    )
    sbx.customer(customer, "block", account=ig)
    with pytest.raises(MetaPolicyError) as caught:
        account.send_text(igsid, "Hi")
    w.assert_error(caught.value, MetaPolicyError, Reason.PERSON_UNAVAILABLE, 551, 1545041)
    sbx.customer(customer, "unblock", account=ig)
    assert account.send_text(igsid, "Hi").message_id


def test_not_eligible_account_is_36103(sbx: RunningSandbox, fresh: AccountClient) -> None:
    with pytest.raises(MetaPolicyError) as send:
        fresh.send_text(w.ALICE_AT_NOT_ELIGIBLE, "We're open!")
    w.assert_error(send.value, MetaPolicyError, Reason.NOT_ELIGIBLE, 36103)
    with pytest.raises(MetaPolicyError) as listing:
        fresh.list_conversations()  # the documented eligibility check
    w.assert_error(listing.value, MetaPolicyError, Reason.NOT_ELIGIBLE, 36103)
    sbx.control("POST", "accounts/fresh.start", {"eligible": True})
    assert fresh.send_text(w.ALICE_AT_NOT_ELIGIBLE, "We're open!").message_id
    assert len(fresh.list_conversations().items) == 1


def test_message_access_off_is_200_2534041(sbx: RunningSandbox, quiet: AccountClient) -> None:
    with pytest.raises(MetaPolicyError) as caught:
        quiet.send_text(w.BOB_AT_NO_ACCESS, "Hello")
    w.assert_error(caught.value, MetaPolicyError, Reason.MESSAGE_ACCESS_OFF, 200, 2534041)
    assert "Allow access to messages" in caught.value.user_message
    sbx.control("POST", f"accounts/{w.IG_NO_ACCESS}", {"message_access": True})
    assert quiet.send_text(w.BOB_AT_NO_ACCESS, "Hello").message_id


def test_unknown_recipient_is_2534014(acme: AccountClient) -> None:
    with pytest.raises(MetaPermanentError) as caught:
        acme.send_text("17841499900000001", "Hi")  # a public IG user id, not an IGSID
    w.assert_error(caught.value, MetaPermanentError, Reason.RECIPIENT_NOT_FOUND, 100, 2534014)


def test_instagram_id_on_the_facebook_host_is_code_3(meta: MetaClient) -> None:
    wrong_node = meta.facebook_page(w.IG_ACME, w.ACME_TOKEN)
    with pytest.raises(MetaPermanentError) as caught:
        wrong_node.send_text(w.ALICE_AT_ACME, "Hi")
    w.assert_error(caught.value, MetaPermanentError, Reason.CAPABILITY_MISSING, 3)


def test_user_token_where_a_page_token_is_needed(meta: MetaClient) -> None:
    with pytest.raises(MetaPermissionError) as caught:
        meta.facebook_page(w.PAGE_ACME, w.USER_TOKEN).send_text(w.ALICE_AT_ACME, "Hi")
    w.assert_error(caught.value, MetaPermissionError, Reason.PERMISSION_DENIED, 210)


def test_deleted_message_is_9000001(sbx: RunningSandbox, acme: AccountClient) -> None:
    mid = sbx.customer("alice", "send", account="acme.store", text="oops")["mid"]
    sbx.customer("alice", "unsend", account="acme.store", mid=mid)
    with pytest.raises(MetaPolicyError) as react:
        acme.react(w.ALICE_AT_ACME, mid)
    w.assert_error(react.value, MetaPolicyError, Reason.MESSAGE_DELETED, 100, 9000001)
    with pytest.raises(MetaPolicyError) as quote:
        acme.send_text(w.ALICE_AT_ACME, "About that", reply_to_mid=mid)
    assert quote.value.reason == Reason.MESSAGE_DELETED


def test_profile_needs_consent(acme: AccountClient) -> None:
    with pytest.raises(MetaPermissionError) as caught:
        acme.get_user_profile(w.DMITRI_AT_ACME)  # only commented, never messaged
    w.assert_error(caught.value, MetaPermissionError, Reason.PERMISSION_DENIED, 230)


# -- dead tokens (§1.5, §2.4, §9.3) ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("subcode", "reason"),
    [
        (460, Reason.PASSWORD_CHANGED),
        (458, Reason.APP_NOT_INSTALLED),
        (467, Reason.TOKEN_INVALID),
    ],
)
def test_revoked_page_token_is_190(
    sbx: RunningSandbox, acme: AccountClient, sleeps: list[float], subcode: int, reason: str
) -> None:
    sbx.control("POST", "tokens/revoke", {"token": w.ACME_TOKEN, "subcode": subcode})
    with pytest.raises(MetaAuthError) as send:
        acme.send_text(w.ALICE_AT_ACME, "Hi")
    w.assert_error(send.value, MetaAuthError, reason, 190, subcode)
    with pytest.raises(MetaAuthError):
        acme.list_conversations()
    assert sleeps == []  # never retried
    assert send.value.http_status == 400


def test_revoking_the_user_token_kills_its_page_tokens(
    sbx: RunningSandbox, meta: MetaClient, acme: AccountClient, bella: AccountClient
) -> None:
    sbx.control("POST", "tokens/revoke", {"token": w.USER_TOKEN, "subcode": 458})
    for call in (
        lambda: meta.list_pages(w.USER_TOKEN),
        lambda: acme.send_text(w.ALICE_AT_ACME, "x"),
    ):
        with pytest.raises(MetaAuthError) as caught:
            call()
        assert caught.value.reason == Reason.APP_NOT_INSTALLED
    with pytest.raises(MetaAuthError):
        bella.subscribed_apps()


def test_expired_tokens_are_190_463(
    sbx: RunningSandbox, creator: AccountClient, meta: MetaClient
) -> None:
    sbx.control("POST", "tokens/expire", {"token": w.CREATOR_TOKEN})
    with pytest.raises(MetaAuthError) as ig:
        creator.send_text(w.DMITRI_AT_CREATOR, "Hi")
    w.assert_error(ig.value, MetaAuthError, Reason.TOKEN_EXPIRED, 190, 463)
    sbx.control("POST", "tokens/expire", {"token": w.USER_TOKEN})
    with pytest.raises(MetaAuthError) as fb:
        meta.list_pages(w.USER_TOKEN)
    w.assert_error(fb.value, MetaAuthError, Reason.TOKEN_EXPIRED, 190, 463)


def test_revoked_instagram_token(sbx: RunningSandbox, creator: AccountClient) -> None:
    sbx.control("POST", "tokens/revoke", {"token": w.CREATOR_TOKEN, "subcode": 458})
    with pytest.raises(MetaAuthError) as caught:
        creator.subscribed_apps()
    w.assert_error(caught.value, MetaAuthError, Reason.APP_NOT_INSTALLED, 190, 458)


@pytest.mark.parametrize(
    ("host", "node", "token"),
    [
        ("instagram", "me", w.ACME_TOKEN),
        ("instagram", "me", w.USER_TOKEN),
        ("facebook", w.PAGE_ACME, w.CREATOR_TOKEN),
    ],
)
def test_token_of_the_other_host_is_refused(
    meta: MetaClient, host: str, node: str, token: str
) -> None:
    account = (
        meta.instagram_account(token, node)
        if host == "instagram"
        else meta.facebook_page(node, token)
    )
    assert account.host is Host(host)
    with pytest.raises(MetaAuthError) as caught:
        account.send_text(w.ALICE_AT_ACME, "Hi")
    w.assert_error(caught.value, MetaAuthError, Reason.TOKEN_INVALID, 190)


# -- appsecret_proof (§0.2) ------------------------------------------------------------------------


def test_appsecret_proof_keyed_per_host(
    sbx: RunningSandbox,
    make_client: Callable[..., MetaClient],
    acme: AccountClient,
    creator: AccountClient,
) -> None:
    sbx.control("POST", f"apps/{w.APP_ID}", {"require_appsecret_proof": True})
    assert acme.send_text(w.ALICE_AT_ACME, "proof ok").message_id
    assert creator.send_text(w.DMITRI_AT_CREATOR, "proof ok").message_id

    wrong_meta = make_client(app_secret="wrong-meta-secret")
    with pytest.raises(MetaPermanentError) as fb:
        wrong_meta.facebook_page(w.PAGE_ACME, w.ACME_TOKEN).send_text(w.ALICE_AT_ACME, "x")
    w.assert_error(fb.value, MetaPermanentError, Reason.INVALID_PARAMETER, 100)
    assert "appsecret_proof" in fb.value.message
    # The Instagram host checks the proof against the Instagram app secret.
    assert wrong_meta.instagram_account(w.CREATOR_TOKEN).send_text(w.DMITRI_AT_CREATOR, "x")

    wrong_ig = make_client(instagram_app_secret="wrong-ig-secret")
    with pytest.raises(MetaPermanentError) as ig:
        wrong_ig.instagram_account(w.CREATOR_TOKEN).send_text(w.DMITRI_AT_CREATOR, "x")
    w.assert_error(ig.value, MetaPermanentError, Reason.INVALID_PARAMETER, 100)

    no_secret = make_client(app_secret="", instagram_app_secret="")
    with pytest.raises(MetaPermanentError) as missing:
        no_secret.facebook_page(w.PAGE_ACME, w.ACME_TOKEN).send_text(w.ALICE_AT_ACME, "x")
    assert "appsecret_proof" in missing.value.message
