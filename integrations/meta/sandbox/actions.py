"""World mutations: customers acting, the business sending, comments. Call with the lock held."""

from __future__ import annotations

from typing import Any

from .core import Sandbox
from .models import Comment, Conversation, Customer, IgAccount, Message

CDN = "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id={asset}&signature=sandbox"
INBOUND_ATTACHMENT_TYPES = {"image", "video", "audio", "file"}
REACTION_EMOJI = {
    "love": "\u2764\ufe0f",
    "like": "\U0001f44d",
    "laugh": "\U0001f602",
    "wow": "\U0001f62e",
    "sad": "\U0001f622",
    "angry": "\U0001f620",
    "smile": "\U0001f60a",
}


class ActionError(ValueError):
    """A control action that cannot be applied."""


def customer_create(
    sb: Sandbox,
    *,
    username: str,
    name: str | None = None,
    follows: list[str] | None = None,
    follower_count: int = 100,
    is_verified_user: bool = False,
) -> Customer:
    for existing in sb.world.customers.values():
        if existing.username == username:
            raise ActionError(f"customer {username!r} exists")
    seq = sb.seq("customer")
    customer = Customer(
        id=f"cust_{seq}",
        seq=seq,
        username=username,
        name=name or username.replace(".", " ").title(),
        ig_user_id=str(17_841_499_900_000_000 + seq),
        profile_pic=f"https://scontent.cdninstagram.com/sandbox/{username}.jpg",
        follower_count=follower_count,
        is_verified_user=is_verified_user,
        follows=list(follows or []),
    )
    for account in sb.world.accounts.values():
        sb.igsid_for(customer, account)
    sb.world.customers[customer.id] = customer
    sb.mark_dirty()
    return customer


def _wrap(sender: str, recipient: str, ts: int, key: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"sender": {"id": sender}, "recipient": {"id": recipient}, "timestamp": ts, key: value}


def _asset(sb: Sandbox) -> str:
    return str(9_000_000_000_000_000 + sb.seq("asset"))


def _touch_inbound(sb: Sandbox, conv: Conversation, customer: Customer, at_ms: int) -> None:
    conv.updated_ms = max(conv.updated_ms, at_ms)
    conv.last_inbound_ms = max(conv.last_inbound_ms or 0, at_ms)
    if conv.ig_id not in customer.consent:
        customer.consent.append(conv.ig_id)
    if conv.ig_id in customer.follows:
        conv.folder = "inbox"


def inbound_message(
    sb: Sandbox,
    account: IgAccount,
    customer: Customer,
    *,
    kind: str = "text",
    text: str | None = None,
    attachments: list[dict[str, Any]] | None = None,
    reply_to: dict[str, Any] | None = None,
    quick_reply: dict[str, Any] | None = None,
    referral: dict[str, Any] | None = None,
    story: dict[str, Any] | None = None,
    at_ms: int | None = None,
    emit: bool = True,
) -> Message:
    """The customer sends a DM to the business."""
    if account.id in customer.blocked:
        raise ActionError("customer has blocked this business; unblock first")
    at = at_ms if at_ms is not None else sb.now_ms()
    conv = sb.conversation_for(account, customer)
    mid = sb.new_mid(account.id)
    msg = Message(
        mid=mid,
        conversation_id=conv.id,
        ig_id=account.id,
        igsid=conv.igsid,
        direction="in",
        created_ms=at,
        text=text,
        attachments=list(attachments or []),
        kind=kind,
        reply_to=reply_to,
        quick_reply=quick_reply,
        referral=referral,
        story=story,
    )
    sb.world.messages[mid] = msg
    conv.message_ids.append(mid)
    _touch_inbound(sb, conv, customer, at)
    if emit:
        body: dict[str, Any] = {"mid": mid}
        if text is not None:
            body["text"] = text
        if msg.attachments:
            body["attachments"] = msg.attachments
        if quick_reply:
            body["quick_reply"] = quick_reply
        if referral:
            body["referral"] = referral
        if reply_to:
            body["reply_to"] = reply_to
        item = _wrap(conv.igsid, account.id, at, "message", body)
        sb.enqueue_event(account, "messaging", "messages", item, conv)
    sb.mark_dirty()
    return msg


def customer_send(
    sb: Sandbox, account: IgAccount, customer: Customer, params: dict[str, Any]
) -> Message:
    """Build an inbound message of a given kind from control parameters."""
    kind = str(params.get("kind") or params.get("type") or "text")
    text = params.get("text")
    url = params.get("url")
    asset = _asset(sb)
    media_url = url or CDN.format(asset=asset)
    attachments: list[dict[str, Any]] = []
    story: dict[str, Any] | None = None
    reply_to: dict[str, Any] | None = None
    quick_reply: dict[str, Any] | None = None
    referral: dict[str, Any] | None = None
    if kind == "text":
        if text is None:
            raise ActionError("text is required")
    elif kind in INBOUND_ATTACHMENT_TYPES:
        count = max(1, min(int(params.get("count", 1)), 10))
        for index in range(count):
            item_url = media_url if index == 0 else CDN.format(asset=_asset(sb))
            attachments.append({"type": kind, "payload": {"url": item_url}})
    elif kind == "ephemeral":
        attachments.append({"type": "ephemeral"})
    elif kind == "story_mention":
        attachments.append({"type": "story_mention", "payload": {"url": media_url}})
        story = {"mention": {"link": media_url, "id": asset}}
    elif kind == "story_reply":
        story_id = str(params.get("story_id") or asset)
        reply_to = {"story": {"url": media_url, "id": story_id}}
        if params.get("link_sticker_url"):
            reply_to["story"]["link_sticker_url"] = params["link_sticker_url"]
        story = {"reply_to": {"link": media_url, "id": story_id}}
        text = text if text is not None else "Love this!"
    elif kind in ("post_share", "share", "ig_post"):
        media_id = str(params.get("media_id") or asset)
        title = params.get("title", "caption text")
        post = {"ig_post_media_id": media_id, "title": title, "url": media_url}
        style = params.get("style", "ig_post")
        if style in ("share", "both"):
            attachments.append({"type": "share", "payload": {"url": media_url}})
        if style in ("ig_post", "both"):
            attachments.append({"type": "ig_post", "payload": post})
        kind = "share"
    elif kind in ("reel", "ig_reel"):
        reel_id = str(params.get("reel_id") or asset)
        payload = {"reel_video_id": reel_id, "title": params.get("title", "reel"), "url": media_url}
        attachments.append({"type": "ig_reel", "payload": payload})
        kind = "reel"
    elif kind == "quick_reply":
        quick_reply = {"payload": str(params.get("payload", ""))}
        if text is None:
            raise ActionError("text (the tapped title) is required")
    elif kind in ("ad_referral", "referral_message"):
        referral = {
            "ref": params.get("ref", "summer-sale"),
            "ad_id": str(params.get("ad_id", "238000000000001")),
            "source": "ADS",
            "type": "OPEN_THREAD",
            "ads_context_data": {
                "ad_title": params.get("ad_title", "Summer sale"),
                "photo_url": "https://scontent.cdninstagram.com/sandbox/ad.jpg",
            },
        }
        text = text if text is not None else "Is this available?"
    elif kind == "unsupported":
        msg = inbound_message(sb, account, customer, kind=kind, emit=False)
        conv = sb.world.conversations[msg.conversation_id]
        item = _wrap(conv.igsid, account.id, msg.created_ms, "message", {"mid": msg.mid})
        item["message"]["is_unsupported"] = True
        sb.enqueue_event(account, "messaging", "messages", item, conv)
        return msg
    else:
        raise ActionError(f"unknown message kind {kind!r}")
    if params.get("reply_to_mid"):
        reply_to = {"mid": str(params["reply_to_mid"])}
    return inbound_message(
        sb,
        account,
        customer,
        kind=kind,
        text=text,
        attachments=attachments,
        reply_to=reply_to,
        quick_reply=quick_reply,
        referral=referral,
        story=story,
    )


def _message_in(sb: Sandbox, conv: Conversation, mid: str | None, *, inbound: bool) -> Message:
    if mid:
        msg = sb.world.messages.get(mid)
        if msg is None or msg.conversation_id != conv.id:
            raise ActionError(f"message {mid!r} not in this conversation")
        return msg
    for candidate in reversed(conv.message_ids):
        msg = sb.world.messages[candidate]
        if (msg.direction == "in") == inbound:
            return msg
    raise ActionError("no suitable message in this conversation")


def customer_react(
    sb: Sandbox, account: IgAccount, customer: Customer, params: dict[str, Any], *, react: bool
) -> dict[str, Any]:
    conv = sb.conversation_for(account, customer)
    msg = _message_in(sb, conv, params.get("mid"), inbound=False)
    now = sb.now_ms()
    value: dict[str, Any] = {"mid": msg.mid, "action": "react" if react else "unreact"}
    msg.reactions = [r for r in msg.reactions if r.get("by") != customer.id]
    if react:
        name = str(params.get("reaction", "love"))
        emoji = str(params.get("emoji") or REACTION_EMOJI.get(name, "\u2764\ufe0f"))
        value.update({"reaction": name, "emoji": emoji})
        msg.reactions.append({"by": customer.id, "reaction": name, "emoji": emoji})
    item = _wrap(conv.igsid, account.id, now, "reaction", value)
    sb.enqueue_event(account, "messaging", "message_reactions", item, conv)
    return {"mid": msg.mid}


def customer_unsend(
    sb: Sandbox, account: IgAccount, customer: Customer, params: dict[str, Any]
) -> dict[str, Any]:
    conv = sb.conversation_for(account, customer)
    msg = _message_in(sb, conv, params.get("mid"), inbound=True)
    msg.deleted = True
    msg.text = None
    msg.attachments = []
    item = _wrap(conv.igsid, account.id, sb.now_ms(), "message", {"mid": msg.mid})
    item["message"]["is_deleted"] = True
    sb.enqueue_event(account, "messaging", "messages", item, conv)
    return {"mid": msg.mid}


def customer_edit(
    sb: Sandbox, account: IgAccount, customer: Customer, params: dict[str, Any]
) -> dict[str, Any]:
    conv = sb.conversation_for(account, customer)
    msg = _message_in(sb, conv, params.get("mid"), inbound=True)
    if msg.deleted:
        raise ActionError("message was unsent")
    text = params.get("text")
    if not isinstance(text, str):
        raise ActionError("text is required")
    msg.text = text
    msg.num_edit += 1
    value = {"mid": msg.mid, "text": text, "num_edit": msg.num_edit}
    item = _wrap(conv.igsid, account.id, sb.now_ms(), "message_edit", value)
    sb.enqueue_event(account, "messaging", "message_edit", item, conv)
    return {"mid": msg.mid, "num_edit": msg.num_edit}


def customer_postback(
    sb: Sandbox, account: IgAccount, customer: Customer, params: dict[str, Any]
) -> dict[str, Any]:
    conv = sb.conversation_for(account, customer)
    now = sb.now_ms()
    mid = sb.new_mid(account.id)
    _touch_inbound(sb, conv, customer, now)
    value = {
        "mid": mid,
        "title": str(params.get("title", "Get started")),
        "payload": str(params.get("payload", "GET_STARTED")),
    }
    item = _wrap(conv.igsid, account.id, now, "postback", value)
    sb.enqueue_event(account, "messaging", "messaging_postbacks", item, conv)
    return {"mid": mid}


def customer_referral(
    sb: Sandbox, account: IgAccount, customer: Customer, params: dict[str, Any]
) -> dict[str, Any]:
    conv = sb.conversation_for(account, customer)
    now = sb.now_ms()
    _touch_inbound(sb, conv, customer, now)
    value = {
        "ref": str(params.get("ref", "campaign42")),
        "source": str(params.get("source", "IGME-SOURCE-LINK")),
        "type": "OPEN_THREAD",
    }
    item = _wrap(conv.igsid, account.id, now, "referral", value)
    sb.enqueue_event(account, "messaging", "messaging_referral", item, conv)
    return {"ref": value["ref"]}


def customer_read(
    sb: Sandbox, account: IgAccount, customer: Customer, params: dict[str, Any]
) -> dict[str, Any]:
    conv = sb.conversation_for(account, customer)
    msg = _message_in(sb, conv, params.get("mid"), inbound=False)
    item = _wrap(conv.igsid, account.id, sb.now_ms(), "read", {"mid": msg.mid})
    sb.enqueue_event(account, "messaging", "messaging_seen", item, conv)
    return {"mid": msg.mid}


def customer_block(
    sb: Sandbox, account: IgAccount, customer: Customer, *, blocked: bool
) -> dict[str, Any]:
    if blocked and account.id not in customer.blocked:
        customer.blocked.append(account.id)
    if not blocked and account.id in customer.blocked:
        customer.blocked.remove(account.id)
    sb.mark_dirty()
    return {"blocked": blocked}


def customer_follow(
    sb: Sandbox, account: IgAccount, customer: Customer, *, follows: bool
) -> dict[str, Any]:
    if follows and account.id not in customer.follows:
        customer.follows.append(account.id)
    if not follows and account.id in customer.follows:
        customer.follows.remove(account.id)
    sb.mark_dirty()
    return {"follows": follows}


def comment_create(
    sb: Sandbox,
    customer: Customer | None,
    media_id: str,
    *,
    text: str,
    parent_id: str | None = None,
    at_ms: int | None = None,
    emit: bool = True,
    live: bool = False,
) -> Comment:
    media = sb.world.media.get(media_id)
    if media is None:
        raise ActionError(f"unknown media {media_id!r}")
    if parent_id is not None and parent_id not in sb.world.comments:
        raise ActionError(f"unknown parent comment {parent_id!r}")
    account = sb.world.accounts[media.ig_id]
    comment = Comment(
        id=str(17_950_000_000_000_000 + sb.seq("comment")),
        media_id=media.id,
        ig_id=media.ig_id,
        customer_id=customer.id if customer else None,
        from_business=customer is None,
        text=text,
        created_ms=at_ms if at_ms is not None else sb.now_ms(),
        parent_id=parent_id,
    )
    sb.world.comments[comment.id] = comment
    if emit:
        author: dict[str, Any]
        if customer is None:
            author = {
                "id": account.id,
                "username": account.username,
                "self_ig_scoped_id": account.id,
            }
        else:
            author = {"id": str(customer.ig_user_id), "username": customer.username}
        value: dict[str, Any] = {
            "from": author,
            "media": {"id": media.id, "media_product_type": media.media_product_type},
            "id": comment.id,
            "text": text,
        }
        if parent_id:
            value["parent_id"] = parent_id
        field = "live_comments" if live else "comments"
        sb.enqueue_event(account, "changes", field, {"field": field, "value": value})
    sb.mark_dirty()
    return comment


def record_outbound(
    sb: Sandbox,
    account: IgAccount,
    conv: Conversation,
    *,
    app_id: str | None,
    kind: str,
    text: str | None = None,
    attachments: list[dict[str, Any]] | None = None,
    reply_to: dict[str, Any] | None = None,
    tag: str | None = None,
    comment_id: str | None = None,
    metadata: str | None = None,
    body: dict[str, Any] | None = None,
    at_ms: int | None = None,
) -> Message:
    """Store a message sent by the business and queue its echo."""
    now = at_ms if at_ms is not None else sb.now_ms()
    mid = sb.new_mid(account.id)
    msg = Message(
        mid=mid,
        conversation_id=conv.id,
        ig_id=account.id,
        igsid=conv.igsid,
        direction="out",
        created_ms=now,
        text=text,
        attachments=list(attachments or []),
        kind=kind,
        reply_to=reply_to,
        app_id=app_id,
        tag=tag,
        comment_id=comment_id,
        metadata=metadata,
        body=body,
    )
    sb.world.messages[mid] = msg
    conv.message_ids.append(mid)
    conv.updated_ms = now
    conv.folder = "inbox"
    echo: dict[str, Any] = {"mid": mid, "is_echo": True}
    if text is not None:
        echo["text"] = text
    if msg.attachments:
        echo["attachments"] = msg.attachments
    if reply_to:
        echo["reply_to"] = reply_to
    if app_id:
        echo["app_id"] = int(app_id) if app_id.isdigit() else app_id
    if metadata is not None:
        echo["metadata"] = metadata
    field = "message_echoes" if account.login == "instagram" else "messages"
    item = _wrap(account.id, conv.igsid, now, "message", echo)
    sb.enqueue_event(account, "messaging", field, item, conv)
    sb.mark_dirty()
    return msg
