"""Conversations API: listing with cursor pagination, messages, message details, profiles
(REFERENCE §0.7, §5)."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qs

import pytest

from integrations.meta.client import AccountClient, Host, MetaClient
from integrations.meta.errors import MetaPermanentError, Reason
from integrations.meta.sandbox.testing import RunningSandbox
from tests.contract import support as w

MANY = 60


def seed_many_threads(sbx: RunningSandbox, account: str = "acme.store", count: int = MANY) -> None:
    for n in range(count):
        sbx.control("POST", "customers", {"username": f"shopper{n:02d}"})
        sbx.customer(f"shopper{n:02d}", "send", account=account, text=f"Question {n}")


@pytest.mark.parametrize("page_size", [None, 7, 100])
def test_iterate_every_page_of_many_conversations(
    sbx: RunningSandbox, acme: AccountClient, page_size: int | None
) -> None:
    seed_many_threads(sbx)
    conversations = list(acme.iter_conversations(limit=page_size))
    ids = [c.id for c in conversations]
    assert len(ids) == MANY + 3  # plus alice, bob and carla from the default world
    assert len(set(ids)) == len(ids)
    assert all(i.startswith("aWdfZAG06") for i in ids)
    times = [c.updated_time for c in conversations]
    assert all(t is not None for t in times)
    assert times == sorted(times, reverse=True)  # type: ignore[type-var]
    usernames = {p.username for c in conversations for p in c.participants}
    assert {"acme.store", "alice", "shopper00", "shopper59"} <= usernames


def test_pages_and_cursors(sbx: RunningSandbox, acme: AccountClient) -> None:
    seed_many_threads(sbx, count=30)
    first = acme.list_conversations(limit=25)
    assert len(first.items) == 25
    assert first.has_next
    assert first.before is not None
    assert first.after is not None
    assert first.after.startswith("QVFI")
    second = acme.list_conversations(limit=25, after=first.after)
    assert len(second.items) == 8
    assert not second.has_next  # `next` is absent on the last page
    assert not {c.id for c in first.items} & {c.id for c in second.items}
    # Cursors are stable: asking again gives the same page.
    again = acme.list_conversations(limit=25, after=first.after)
    assert [c.id for c in again.items] == [c.id for c in second.items]


def test_next_links_carry_the_query_and_stay_on_the_host(
    sbx: RunningSandbox, acme: AccountClient
) -> None:
    seed_many_threads(sbx, count=5)
    page = acme.list_conversations(limit=3)
    assert page.next_url is not None
    assert page.next_url.startswith(f"{sbx.facebook_url}/{w.VERSION}/{w.PAGE_ACME}/conversations?")
    assert "platform=instagram" in page.next_url
    assert "limit=3" in page.next_url


def test_instagram_login_conversations(sbx: RunningSandbox, creator: AccountClient) -> None:
    seed_many_threads(sbx, account="chloe.creates", count=30)
    conversations = list(creator.iter_conversations())
    assert len(conversations) == 31
    (dmitri,) = [
        c for c in conversations if any(p.id == w.DMITRI_AT_CREATOR for p in c.participants)
    ]
    assert {p.id for p in dmitri.participants} == {w.IG_CREATOR, w.DMITRI_AT_CREATOR}


def test_platform_is_required_on_the_page_host(meta: MetaClient) -> None:
    without = meta.request("GET", Host.FACEBOOK, f"{w.PAGE_ACME}/conversations", token=w.ACME_TOKEN)
    assert without["data"] == []  # Messenger conversations, of which there are none
    with_platform = meta.request(
        "GET",
        Host.FACEBOOK,
        f"{w.PAGE_ACME}/conversations",
        token=w.ACME_TOKEN,
        params={"platform": "instagram"},
    )
    assert len(with_platform["data"]) == 3


def test_find_conversation_for_one_customer(acme: AccountClient) -> None:
    alice = acme.find_conversation(w.ALICE_AT_ACME)
    assert alice is not None
    assert any(p.id == w.ALICE_AT_ACME and p.username == "alice" for p in alice.participants)
    assert acme.find_conversation(w.DMITRI_AT_ACME) is None  # commented, never wrote


def test_get_conversation_details(acme: AccountClient) -> None:
    found = acme.find_conversation(w.CARLA_AT_ACME)
    assert found is not None
    conversation = acme.get_conversation(found.id)
    assert conversation.id == found.id
    assert conversation.updated_time is not None
    assert conversation.updated_time.tzinfo is UTC
    assert [(p.id, p.username) for p in conversation.participants] == [
        (w.IG_ACME, "acme.store"),
        (w.CARLA_AT_ACME, "carla"),
    ]
    with_messages = acme.get_conversation(
        found.id, fields="id,is_owner,messages.limit(1){id,message}"
    )
    assert with_messages.is_owner is True
    assert [m.text for m in with_messages.messages] == ["Anytime!"]


def test_messages_are_newest_first_across_pages(sbx: RunningSandbox, acme: AccountClient) -> None:
    for n in range(30):
        sbx.customer("alice", "send", account="acme.store", text=f"message {n}")
    acme.send_text(w.ALICE_AT_ACME, "our answer")
    conversation = acme.find_conversation(w.ALICE_AT_ACME)
    assert conversation is not None
    first = acme.conversation_messages(conversation.id)
    assert len(first.items) == 25
    assert first.has_next
    assert first.items[0].text == "our answer"
    assert first.items[0].sender is not None
    assert first.items[0].sender.id == w.IG_ACME
    assert first.items[1].text == "message 29"
    assert first.items[1].recipients[0].id == w.IG_ACME
    # The nested edge's `next` addresses `/{conversation}/messages` with the inner fields.
    assert first.next_url is not None
    next_path, _, next_query = first.next_url.partition("?")
    assert next_path.endswith(f"/{conversation.id}/messages")
    assert parse_qs(next_query)["fields"] == ["id,created_time,from,to,message"]
    every = list(acme.iter_conversation_messages(conversation.id))
    assert len(every) == 32
    assert len({m.id for m in every}) == 32
    assert every[-1].text == "Hi! Do you ship to Lisbon?"
    created = [m.created_time for m in every]
    assert created == sorted(created, reverse=True)  # type: ignore[type-var]


def test_only_the_twenty_newest_messages_have_details(
    sbx: RunningSandbox, creator: AccountClient
) -> None:
    for n in range(21):
        sbx.customer("dmitri", "send", account="chloe.creates", text=f"m{n}")
    conversation = creator.find_conversation(w.DMITRI_AT_CREATOR)
    assert conversation is not None
    ids = [m.id for m in creator.iter_conversation_messages(conversation.id, fields="id")]
    assert len(ids) == 22
    newest = creator.get_message(ids[0])
    assert newest.text == "m20"
    assert creator.get_message(ids[19]).text == "m1"
    with pytest.raises(MetaPermanentError) as caught:
        creator.get_message(ids[20])
    w.assert_error(caught.value, MetaPermanentError, Reason.INVALID_PARAMETER, 100)


def test_message_details_by_kind(sbx: RunningSandbox, acme: AccountClient) -> None:
    def send(kind: str, **extra: object) -> str:
        return str(sbx.customer("alice", "send", account="acme.store", kind=kind, **extra)["mid"])

    text = send("text", text="plain")
    image = send("image", url="https://cdn.example.com/i.jpg")
    video = send("video", url="https://cdn.example.com/v.mp4")
    audio = send("audio")
    file = send("file")
    share = send("post_share", url="https://www.instagram.com/p/abc/")
    mention = send("story_mention")
    story_reply = send("story_reply", text="Love it")
    quoted = send("text", text="that one", reply_to_mid=text)

    plain = acme.get_message(text)
    assert plain.id == text
    assert plain.text == "plain"
    assert plain.sender is not None
    assert (plain.sender.id, plain.sender.username) == (w.ALICE_AT_ACME, "alice")
    assert [(r.id, r.username) for r in plain.recipients] == [(w.IG_ACME, "acme.store")]
    assert plain.created_time is not None
    assert plain.created_time <= datetime.now(UTC).replace(year=2100)

    (img,) = acme.get_message(image).attachments
    assert (img.mime_type, img.url) == ("image/jpeg", "https://cdn.example.com/i.jpg")
    assert img.preview_url
    (vid,) = acme.get_message(video).attachments
    assert (vid.mime_type, vid.url) == ("video/mp4", "https://cdn.example.com/v.mp4")
    assert acme.get_message(audio).attachments[0].url
    assert acme.get_message(file).attachments[0].mime_type == "application/pdf"
    assert acme.get_message(share).share_urls == ("https://www.instagram.com/p/abc/",)
    story = acme.get_message(mention).story
    assert story is not None
    assert story.kind == "mention"
    assert story.link
    reply = acme.get_message(story_reply)
    assert reply.story is not None
    assert reply.story.kind == "reply_to"
    assert reply.text == "Love it"
    assert acme.get_message(quoted).reply_to_mid == text

    minimal = acme.get_message(text, fields="id,created_time")
    assert minimal.text is None


def test_unknown_field_fails_the_whole_call(acme: AccountClient) -> None:
    found = acme.find_conversation(w.ALICE_AT_ACME)
    assert found is not None
    with pytest.raises(MetaPermanentError) as caught:
        acme.get_conversation(found.id, fields="id,no_such_field")
    w.assert_error(caught.value, MetaPermanentError, Reason.INVALID_PARAMETER, 100)
    assert "nonexisting field" in caught.value.message


def test_unsent_messages_are_not_listed(sbx: RunningSandbox, acme: AccountClient) -> None:
    mid = sbx.customer("alice", "send", account="acme.store", text="oops")["mid"]
    sbx.customer("alice", "unsend", account="acme.store", mid=mid)
    found = acme.find_conversation(w.ALICE_AT_ACME)
    assert found is not None
    assert mid not in {m.id for m in acme.iter_conversation_messages(found.id)}
    with pytest.raises(MetaPermanentError):
        acme.get_message(mid)


def test_idle_request_threads_drop_out_after_thirty_days(
    sbx: RunningSandbox, acme: AccountClient
) -> None:
    assert acme.find_conversation(w.BOB_AT_ACME) is not None  # Requests folder
    sbx.advance(days=29)
    assert acme.find_conversation(w.BOB_AT_ACME) is not None
    sbx.advance(days=2)
    assert acme.find_conversation(w.BOB_AT_ACME) is None
    assert acme.find_conversation(w.ALICE_AT_ACME) is not None  # Inbox: she follows Acme


@pytest.mark.parametrize("host", ["facebook", "instagram"])
def test_user_profile(acme: AccountClient, creator: AccountClient, host: str) -> None:
    account, igsid = (
        (acme, w.ALICE_AT_ACME) if host == "facebook" else (creator, w.DMITRI_AT_CREATOR)
    )
    profile = account.get_user_profile(igsid)
    assert profile.id == igsid
    if host == "facebook":
        assert (profile.name, profile.username) == ("Alice Martin", "alice")
        assert profile.is_user_follow_business is True
    else:
        assert (profile.name, profile.username) == ("Dmitri Søren", "dmitri")
        assert profile.is_user_follow_business is False
    assert profile.is_business_follow_user is False
    assert profile.is_verified_user is False
    assert profile.follower_count == 100
    assert profile.profile_pic is not None
    assert profile.profile_pic.startswith("https://")


def test_profile_consent_comes_with_the_first_message(
    sbx: RunningSandbox, acme: AccountClient
) -> None:
    sbx.customer("dmitri", "postback", account="acme.store", title="Track", payload="TRACK")
    assert acme.get_user_profile(w.DMITRI_AT_ACME).username == "dmitri"
