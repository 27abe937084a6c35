"""Every Send API kind, reactions, sender actions and attachment upload, on both login paths
(REFERENCE §4). What the customer got is read back from the sandbox."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from integrations.meta.client import AccountClient, MetaClient
from integrations.meta.errors import MetaPermanentError, MetaPolicyError, Reason
from integrations.meta.models import Button, QuickReply, TemplateElement
from integrations.meta.sandbox.testing import RunningSandbox
from tests.contract import support as w

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@dataclass
class Path:
    """One connected account and the people/objects it can address."""

    name: str
    account: AccountClient
    ig_id: str
    customer: str  # username of a customer inside the 24 h window
    igsid: str
    media_id: str
    comment_id: str  # a fresh customer comment on the account's media
    commenter_igsid: str


@pytest.fixture(params=["facebook", "instagram"])
def path(request: pytest.FixtureRequest, acme: AccountClient, creator: AccountClient) -> Path:
    if request.param == "facebook":
        return Path(
            "facebook",
            acme,
            w.IG_ACME,
            "alice",
            w.ALICE_AT_ACME,
            w.MEDIA_ACME_POST,
            w.COMMENT_DMITRI_ACME,
            w.DMITRI_AT_ACME,
        )
    return Path(
        "instagram",
        creator,
        w.IG_CREATOR,
        "dmitri",
        w.DMITRI_AT_CREATOR,
        w.MEDIA_CREATOR_POST,
        w.COMMENT_ALICE_CREATOR,
        w.ALICE_AT_CREATOR,
    )


def last_received(sbx: RunningSandbox, path: Path, customer: str | None = None) -> dict:
    items = sbx.received(customer or path.customer, account=path.ig_id)
    assert items, "the customer received nothing"
    return items[-1]


def latest_inbound_mid(path: Path) -> str:
    conversation = path.account.find_conversation(path.igsid)
    assert conversation is not None
    messages = path.account.conversation_messages(conversation.id, fields="id,from")
    for message in messages.items:
        if message.sender is not None and message.sender.id == path.igsid:
            return message.id
    raise AssertionError("no inbound message")


def test_send_text_answers_recipient_and_mid(sbx: RunningSandbox, path: Path) -> None:
    result = path.account.send_text(path.igsid, "Olá! ☀️ We ship to Lisbon.", metadata="outbox-7")
    assert result.recipient_id == path.igsid
    assert result.message_id is not None
    assert result.message_id.startswith("aWdf")  # base64 of "ig_"
    got = last_received(sbx, path)
    assert (got["mid"], got["kind"], got["text"]) == (
        result.message_id,
        "text",
        "Olá! ☀️ We ship to Lisbon.",
    )
    assert got["app_id"] == w.APP_ID
    assert got["tag"] is None


def test_a_rebound_client_sends_for_the_same_account_through_its_own_session(
    sbx: RunningSandbox, path: Path, make_client: Any
) -> None:
    """A worker's call threads each use their own session: the account, host and token carry
    over, the connection pool does not."""
    other = make_client()
    rebound = path.account.rebound(other)
    assert rebound.client is other
    assert path.account.rebound(path.account.client) is path.account
    result = rebound.send_text(path.igsid, "Sent from another session")
    assert result.message_id
    got = last_received(sbx, path)
    assert (got["text"], got["mid"]) == ("Sent from another session", result.message_id)


def test_send_text_of_exactly_1000_bytes(sbx: RunningSandbox, path: Path) -> None:
    text = "é" * 500  # 1000 UTF-8 bytes
    assert path.account.send_text(path.igsid, text).message_id
    assert last_received(sbx, path)["text"] == text


def test_send_text_with_quick_replies(sbx: RunningSandbox, path: Path) -> None:
    replies = [QuickReply(title=f"Size {n}", payload=f"SIZE_{n}") for n in range(12)]
    replies.append(QuickReply(content_type="user_email"))
    assert len(replies) == 13
    assert path.account.send_text(path.igsid, "Pick a size", quick_replies=replies).message_id
    got = last_received(sbx, path)
    assert len(got["quick_replies"]) == 13
    assert got["quick_replies"][0] == {
        "content_type": "text",
        "title": "Size 0",
        "payload": "SIZE_0",
    }
    assert got["quick_replies"][-1] == {"content_type": "user_email"}


def test_reply_quoting_a_message(sbx: RunningSandbox, path: Path) -> None:
    mid = latest_inbound_mid(path)
    assert path.account.send_text(path.igsid, "Yes, this one.", reply_to_mid=mid).message_id
    assert last_received(sbx, path)["reply_to"] == {"mid": mid}


@pytest.mark.parametrize(
    ("kind", "url"),
    [
        ("image", "https://cdn.example.com/a.png"),
        ("video", "https://cdn.example.com/clip.mp4"),
        ("audio", "https://cdn.example.com/voice.m4a"),
        ("file", "https://cdn.example.com/invoice.pdf"),
    ],
)
def test_send_attachment_by_url(sbx: RunningSandbox, path: Path, kind: str, url: str) -> None:
    result = path.account.send_attachment(path.igsid, kind, url=url)  # type: ignore[arg-type]
    assert result.recipient_id == path.igsid
    assert result.message_id
    got = last_received(sbx, path)
    assert got["kind"] == kind
    assert got["attachments"] == [{"type": kind, "payload": {"url": url}}]


def test_send_images(sbx: RunningSandbox, path: Path) -> None:
    urls = [f"https://cdn.example.com/{n}.png" for n in range(10)]
    assert path.account.send_images(path.igsid, urls).message_id
    got = last_received(sbx, path)
    assert got["kind"] == "images"
    assert [a["payload"]["url"] for a in got["attachments"]] == urls


def test_send_like_heart(sbx: RunningSandbox, path: Path) -> None:
    assert path.account.send_like_heart(path.igsid).message_id
    assert last_received(sbx, path)["attachments"] == [{"type": "like_heart"}]


def test_send_media_share_of_own_post(sbx: RunningSandbox, path: Path) -> None:
    assert path.account.send_media_share(path.igsid, path.media_id).message_id
    got = last_received(sbx, path)
    assert got["kind"] == "media_share"
    assert got["attachments"][0]["payload"]["id"] == path.media_id


def test_media_share_of_another_accounts_post_is_refused(path: Path) -> None:
    with pytest.raises(MetaPermanentError) as caught:
        path.account.send_media_share(path.igsid, w.MEDIA_BELLA_POST)
    w.assert_error(caught.value, MetaPermanentError, Reason.INVALID_MESSAGE, 100, 2534015)


def test_send_generic_template(sbx: RunningSandbox, path: Path) -> None:
    elements = [
        TemplateElement(
            title=f"Tee {n}",
            subtitle="$20",
            image_url="https://cdn.example.com/tee.png",
            default_action_url="https://shop.example.com/tee",
            buttons=(
                Button("web_url", "View", url="https://shop.example.com/tee"),
                Button("postback", "Buy", payload=f"BUY_{n}"),
            ),
        )
        for n in range(10)
    ]
    assert path.account.send_generic_template(path.igsid, elements).message_id
    got = last_received(sbx, path)
    assert got["kind"] == "template_generic"
    payload = got["attachments"][0]["payload"]
    assert payload["template_type"] == "generic"
    assert len(payload["elements"]) == 10
    assert payload["elements"][0]["default_action"] == {
        "type": "web_url",
        "url": "https://shop.example.com/tee",
    }


def test_send_button_template(sbx: RunningSandbox, path: Path) -> None:
    buttons = [Button("postback", "Talk to a human", payload="HUMAN")]
    assert path.account.send_button_template(path.igsid, "Need help?", buttons).message_id
    payload = last_received(sbx, path)["attachments"][0]["payload"]
    assert payload == {
        "template_type": "button",
        "text": "Need help?",
        "buttons": [{"type": "postback", "title": "Talk to a human", "payload": "HUMAN"}],
    }


def test_private_reply_returns_the_commenters_igsid(sbx: RunningSandbox, path: Path) -> None:
    result = path.account.send_private_reply(path.comment_id, "Thanks! Details in DM.")
    assert result.recipient_id == path.commenter_igsid
    assert result.message_id
    commenter = "dmitri" if path.name == "facebook" else "alice"
    got = last_received(sbx, path, commenter)
    assert got["comment_id"] == path.comment_id
    assert got["mid"] == result.message_id


def test_private_reply_only_once(path: Path) -> None:
    path.account.send_private_reply(path.comment_id, "Thanks!")
    with pytest.raises(MetaPolicyError) as caught:
        path.account.send_private_reply(path.comment_id, "Thanks again!")
    w.assert_error(caught.value, MetaPolicyError, Reason.ALREADY_REPLIED, 100, 2534025)


def test_sender_actions(sbx: RunningSandbox, path: Path) -> None:
    results = [
        path.account.typing_on(path.igsid),
        path.account.typing_off(path.igsid),
        path.account.mark_seen(path.igsid),
        path.account.send_sender_action(path.igsid, "typing_on"),
    ]
    for result in results:
        assert result.recipient_id == path.igsid
        assert result.message_id is None  # sender actions answer {"recipient_id"} only
    kinds = [item["type"] for item in sbx.received(path.customer, account=path.ig_id)[-4:]]
    assert kinds == ["typing_on", "typing_off", "mark_seen", "typing_on"]
    with pytest.raises(ValueError, match="sender action"):
        path.account.send_sender_action(path.igsid, "react")  # type: ignore[arg-type]


def test_react_and_unreact(sbx: RunningSandbox, path: Path) -> None:
    mid = latest_inbound_mid(path)
    reacted = path.account.react(path.igsid, mid)
    assert (reacted.recipient_id, reacted.message_id) == (path.igsid, None)
    got = last_received(sbx, path)
    assert (got["type"], got["mid"], got["reaction"]) == ("react", mid, "love")
    unreacted = path.account.unreact(path.igsid, mid)
    assert unreacted.recipient_id == path.igsid
    assert last_received(sbx, path)["type"] == "unreact"


def test_upload_by_url_then_send_by_attachment_id(sbx: RunningSandbox, path: Path) -> None:
    upload = path.account.upload_attachment("image", "https://cdn.example.com/logo.png")
    assert upload.attachment_id.isdigit()
    result = path.account.send_attachment(path.igsid, "image", attachment_id=upload.attachment_id)
    assert result.message_id
    got = last_received(sbx, path)
    assert got["attachments"] == [
        {"type": "image", "payload": {"url": "https://cdn.example.com/logo.png"}}
    ]


def test_upload_file_then_send_by_attachment_id(sbx: RunningSandbox, path: Path) -> None:
    upload = path.account.upload_attachment_file(
        "image", filename="logo.png", content=PNG, content_type="image/png"
    )
    assert upload.attachment_id
    assert path.account.send_attachment(
        path.igsid, "image", attachment_id=upload.attachment_id
    ).message_id
    url = last_received(sbx, path)["attachments"][0]["payload"]["url"]
    assert upload.attachment_id in url


def test_attachment_id_of_another_type_or_account(
    meta: MetaClient, acme: AccountClient, bella: AccountClient
) -> None:
    upload = acme.upload_attachment("image", "https://cdn.example.com/logo.png")
    with pytest.raises(MetaPermanentError) as mismatch:
        acme.send_attachment(w.ALICE_AT_ACME, "video", attachment_id=upload.attachment_id)
    w.assert_error(
        mismatch.value, MetaPermanentError, Reason.ATTACHMENT_UPLOAD_FAILED, 100, 2018047
    )
    with pytest.raises(MetaPermanentError) as foreign:
        bella.send_attachment(w.ALICE_AT_BELLA, "image", attachment_id=upload.attachment_id)
    w.assert_error(foreign.value, MetaPermanentError, Reason.INVALID_ATTACHMENT_ID, 100, 2018074)


def test_attachment_errors(acme: AccountClient) -> None:
    with pytest.raises(MetaPermanentError) as unfetchable:
        acme.send_attachment(w.ALICE_AT_ACME, "image", url="ftp://cdn.example.com/a.png")
    w.assert_error(
        unfetchable.value, MetaPermanentError, Reason.ATTACHMENT_FETCH_FAILED, 100, 2018008
    )
    with pytest.raises(MetaPermanentError) as wrong_type:
        acme.upload_attachment("image", "https://cdn.example.com/clip.mp4")
    w.assert_error(
        wrong_type.value, MetaPermanentError, Reason.ATTACHMENT_UPLOAD_FAILED, 100, 2018047
    )
    with pytest.raises(MetaPermanentError) as too_large:
        acme.upload_attachment_file(
            "image",
            filename="huge.png",
            content=b"\x00" * (8 * 1024 * 1024 + 1),
            content_type="image/png",
        )
    w.assert_error(too_large.value, MetaPermanentError, Reason.ATTACHMENT_TOO_LARGE, 100, 2018109)
    with pytest.raises(MetaPermanentError) as bad_id:
        acme.send_attachment(w.ALICE_AT_ACME, "image", attachment_id="1857777774829999")
    w.assert_error(bad_id.value, MetaPermanentError, Reason.INVALID_ATTACHMENT_ID, 100, 2018074)
