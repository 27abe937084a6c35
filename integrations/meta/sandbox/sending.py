"""Send API, attachment upload and messaging policy (windows, limits, routing)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from . import graph
from .actions import record_outbound
from .core import DAY_MS, HOUR_MS, Sandbox
from .errors import GraphError, invalid_param, missing_param
from .models import Attachment, Conversation, IgAccount

if TYPE_CHECKING:
    from .graph import Ctx

MAX_TEXT_BYTES = 1000
MAX_QUICK_REPLIES = 13
MAX_TEMPLATE_ELEMENTS = 10
MAX_ICE_BREAKERS = 4
MEDIA_TYPES = {"image", "video", "audio", "file"}
EXTENSIONS = {
    "image": {"png", "jpg", "jpeg", "gif", "webp"},
    "video": {"mp4", "ogg", "avi", "mov", "webm"},
    "audio": {"aac", "m4a", "wav", "mp4", "mp3", "ogg"},
    "file": {"pdf"},
}
SIZE_LIMITS = {"image": 8 * 1024 * 1024, "video": 25 * 1024 * 1024, "audio": 25 * 1024 * 1024}
SENDER_ACTIONS = {"typing_on", "typing_off", "mark_seen", "react", "unreact"}
WINDOW_MS = 24 * HOUR_MS
HUMAN_AGENT_MS = 7 * DAY_MS
PRIVATE_REPLY_MS = 7 * DAY_MS


def invalid_data(message: str) -> GraphError:
    return GraphError(100, f"(#100) {message}", subcode=2534015)


def window_open(sb: Sandbox, conv: Conversation, now: int) -> bool:
    return conv.last_inbound_ms is not None and now - conv.last_inbound_ms <= WINDOW_MS


def window_error(ctx: Ctx) -> GraphError:
    subcode = 2534022 if ctx.host == "instagram" else 2018278
    return GraphError(
        10,
        "(#10) This message is sent outside of allowed window.",
        subcode=subcode,
        user_title="Message Not Sent",
        user_msg="This person isn't available right now.",
    )


def unavailable_error() -> GraphError:
    return GraphError(
        551,
        "(#551) This person isn't available right now.",
        subcode=1545041,
        user_title="Message Not Sent",
        user_msg="This person isn't available right now.",
    )


def set_owner(
    sb: Sandbox,
    account: IgAccount,
    conv: Conversation,
    new_owner: str,
    *,
    previous: str | None,
    metadata: Any,
    action: Literal["pass", "take"] = "pass",
) -> None:
    """Give the thread to `new_owner` and queue the routing webhook.

    `action` says how ownership moved: the previous owner passed it (`pass_thread_control`)
    or the new owner took it (`take_thread_control`).
    """
    now = sb.now_ms()
    conv.owner_app_id = new_owner
    conv.owner_expires_ms = now + DAY_MS
    key = f"{action}_thread_control"
    value: dict[str, Any] = {"new_owner_app_id": new_owner}
    if previous:
        value["previous_owner_app_id"] = previous
    if metadata is not None:
        value["metadata"] = str(metadata)
    item = {
        "sender": {"id": conv.igsid},
        "recipient": {"id": account.id},
        "timestamp": now,
        key: value,
    }
    sb.enqueue_event(account, "messaging", "messaging_handover", item)


def _check_url(kind: str, url: Any) -> str:
    if not isinstance(url, str) or not url:
        raise missing_param("message[attachment][payload][url]")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise GraphError(100, "(#100) Failed to fetch the file from the url", subcode=2018008)
    ext = parts.path.rsplit(".", 1)[-1].lower() if "." in parts.path.rsplit("/", 1)[-1] else ""
    if ext and kind in EXTENSIONS:
        known = set().union(*EXTENSIONS.values())
        if ext in known and ext not in EXTENSIONS[kind]:
            raise GraphError(
                100,
                "(#100) Upload attachment failure: the file type does not match the attachment "
                "type.",
                subcode=2018047,
            )
    return url


def _media_payload(ctx: Ctx, account: IgAccount, kind: str, payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise missing_param("message[attachment][payload]")
    if "attachment_id" in payload:
        stored = ctx.sb.world.attachments.get(str(payload["attachment_id"]))
        if stored is None or stored.ig_id != account.id:
            raise GraphError(100, "(#100) Invalid attachment_id", subcode=2018074)
        if stored.type != kind:
            raise GraphError(
                100, "(#100) Attachment type does not match the attachment_id", subcode=2018047
            )
        return {"url": stored.url or f"https://lookaside.fbsbx.com/sandbox/{stored.id}"}
    return {"url": _check_url(kind, payload.get("url"))}


def _buttons(buttons: Any, where: str, *, minimum: int = 0) -> None:
    if buttons is None:
        buttons = []
    if not isinstance(buttons, list) or not minimum <= len(buttons) <= 3:
        raise invalid_data(f"{where} must have between {minimum} and 3 buttons")
    for button in buttons:
        if not isinstance(button, dict) or not button.get("title"):
            raise invalid_data(f"{where}: every button needs a title")
        if button.get("type") == "web_url":
            if not button.get("url"):
                raise invalid_data(f"{where}: web_url buttons need a url")
        elif button.get("type") == "postback":
            if not button.get("payload"):
                raise invalid_data(f"{where}: postback buttons need a payload")
        else:
            raise invalid_data(f"{where}: button type must be web_url or postback")


def _template(payload: Any) -> str:
    if not isinstance(payload, dict):
        raise missing_param("message[attachment][payload]")
    ttype = payload.get("template_type")
    if ttype == "generic":
        elements = payload.get("elements")
        if not isinstance(elements, list) or not elements:
            raise invalid_data("Generic template needs at least one element")
        if len(elements) > MAX_TEMPLATE_ELEMENTS:
            raise invalid_data(
                f"param message[attachment][payload][elements] must have at most "
                f"{MAX_TEMPLATE_ELEMENTS} items"
            )
        for element in elements:
            if not isinstance(element, dict) or not element.get("title"):
                raise invalid_data("Every generic template element needs a title")
            if len(str(element["title"])) > 80 or len(str(element.get("subtitle", ""))) > 80:
                raise invalid_data("Element title and subtitle must be at most 80 characters")
            _buttons(element.get("buttons"), "element")
        return "template_generic"
    if ttype == "button":
        text = payload.get("text")
        if not isinstance(text, str) or not text or len(text) > 640:
            raise invalid_data("Button template text must be 1 to 640 characters")
        _buttons(payload.get("buttons"), "button template", minimum=1)
        return "template_button"
    raise invalid_data(f"Unsupported template_type {ttype!r}")


def parse_message(
    ctx: Ctx, account: IgAccount, message: Any
) -> tuple[str, str | None, list[dict[str, Any]]]:
    """Validate a `message` object; answer (kind, text, attachments as echoed)."""
    if not isinstance(message, dict):
        raise missing_param("message")
    text = message.get("text")
    attachment = message.get("attachment")
    many = message.get("attachments")
    if text is None and attachment is None and many is None:
        raise invalid_data("Message cannot be empty, must provide valid attachment or text")
    if text is not None:
        if not isinstance(text, str) or not text:
            raise invalid_data("Param message[text] must be a non-empty string")
        if len(text.encode("utf-8")) > MAX_TEXT_BYTES:
            raise GraphError(
                100,
                "(#100) Length of param message[text] must be less than or equal to 1000",
            )
        if attachment is not None or many is not None:
            raise invalid_data("A message can carry text or attachments, not both")
    quick = message.get("quick_replies")
    if quick is not None:
        if text is None:
            raise invalid_data("Quick replies need message text")
        if not isinstance(quick, list) or not quick:
            raise invalid_data("param message[quick_replies] must be a non-empty list")
        if len(quick) > MAX_QUICK_REPLIES:
            raise invalid_data(
                f"param message[quick_replies] must have at most {MAX_QUICK_REPLIES} items"
            )
        for reply in quick:
            if not isinstance(reply, dict):
                raise invalid_data("Invalid quick reply")
            ctype = reply.get("content_type", "text")
            if ctype not in ("text", "user_phone_number", "user_email"):
                raise invalid_data(
                    "quick reply content_type must be text, user_phone_number or user_email"
                )
            if ctype == "text":
                title = reply.get("title")
                if not isinstance(title, str) or not title or len(title) > 20:
                    raise invalid_data("quick reply title must be 1 to 20 characters")
                if len(str(reply.get("payload", ""))) > 1000:
                    raise invalid_data("quick reply payload must be at most 1000 characters")
    if text is not None:
        return "text", text, []
    if many is not None:
        if not isinstance(many, list) or not many:
            raise invalid_data("param message[attachments] must be a non-empty list")
        if len(many) > 10:
            raise invalid_data("param message[attachments] must have at most 10 items")
        out = []
        for item in many:
            if not isinstance(item, dict) or item.get("type") != "image":
                raise invalid_data("Multiple attachments must all be of type image")
            out.append(
                {
                    "type": "image",
                    "payload": _media_payload(ctx, account, "image", item.get("payload")),
                }
            )
        return "images", None, out
    if not isinstance(attachment, dict):
        raise invalid_data("Invalid attachment")
    kind = attachment.get("type")
    payload = attachment.get("payload")
    if kind in MEDIA_TYPES:
        return (
            str(kind),
            None,
            [{"type": kind, "payload": _media_payload(ctx, account, str(kind), payload)}],
        )
    if kind == "like_heart":
        return "like_heart", None, [{"type": "like_heart"}]
    if kind == "MEDIA_SHARE":
        media_id = str((payload or {}).get("id") or "")
        media = ctx.sb.world.media.get(media_id)
        if media is None or media.ig_id != account.id:
            raise invalid_data("The media does not exist or does not belong to this account")
        return (
            "media_share",
            None,
            [{"type": "MEDIA_SHARE", "payload": {"id": media.id, "url": media.permalink}}],
        )
    if kind == "template":
        tkind = _template(payload)
        return tkind, None, [{"type": "template", "payload": payload}]
    raise invalid_data(f"Unsupported attachment type {kind!r}")


def _rate_category(kind: str) -> str:
    return "send_media" if kind in ("video", "audio") else "send_text"


def send(ctx: Ctx, node: str) -> dict[str, Any]:
    sb = ctx.sb
    account = graph.business_account(ctx, node, edge="messages")
    graph.count_call(ctx)
    app = ctx.require_app()
    params = ctx.params
    recipient = params.get("recipient")
    if not isinstance(recipient, dict) or not (recipient.get("id") or recipient.get("comment_id")):
        raise missing_param("recipient")
    graph.require_scope(ctx, "messages")
    check = graph.check_messaging_allowed
    check(account)
    sender_action = params.get("sender_action")
    message = params.get("message")
    messaging_type = str(params.get("messaging_type") or "RESPONSE")
    tag = params.get("tag")
    if messaging_type not in ("RESPONSE", "UPDATE", "MESSAGE_TAG"):
        raise invalid_param("Param messaging_type must be one of {RESPONSE, UPDATE, MESSAGE_TAG}")
    if sender_action is not None and message is not None:
        raise invalid_param("sender_action and message cannot be sent together")
    if sender_action is None and message is None:
        raise missing_param("message")
    if messaging_type == "MESSAGE_TAG" or tag:
        if messaging_type != "MESSAGE_TAG" or not tag:
            raise invalid_param("tag requires messaging_type MESSAGE_TAG and vice versa")
        if tag != "HUMAN_AGENT":
            raise invalid_param("Param tag must be HUMAN_AGENT for Instagram messaging")
        if not app.human_agent:
            raise GraphError(
                100,
                "(#100) Cannot tag messages with HUMAN_AGENT without prior approval",
                subcode=2018276,
            )
    if recipient.get("comment_id"):
        return _private_reply(ctx, account, str(recipient["comment_id"]), message)

    igsid = str(recipient["id"])
    customer = sb.customer_by_igsid(account.id, igsid)
    if customer is None:
        raise GraphError(100, "(#100) No matching user found", subcode=2534014)
    conv = sb.conversation_for(account, customer)
    if sender_action is not None:
        return _sender_action(ctx, account, conv, str(sender_action))

    kind, text, attachments = parse_message(ctx, account, message)
    graph.hit_rate(ctx, _rate_category(kind), subcode=2534040)
    if account.id in customer.blocked:
        raise unavailable_error()
    owner = sb.thread_owner(conv)
    if owner is not None and owner != app.id:
        raise GraphError(100, "(#100) The app is not the thread owner", subcode=2534037)
    now = sb.now_ms()
    last = conv.last_inbound_ms
    if tag == "HUMAN_AGENT":
        if last is None or now - last > HUMAN_AGENT_MS:
            raise window_error(ctx)
    elif not window_open(sb, conv, now):
        raise window_error(ctx)
    reply_to = params.get("reply_to")
    if reply_to is not None:
        mid = reply_to.get("mid") if isinstance(reply_to, dict) else None
        quoted = sb.world.messages.get(str(mid or ""))
        if quoted is None or quoted.conversation_id != conv.id:
            raise invalid_param("Param reply_to[mid] is not a message of this conversation")
        if quoted.deleted:
            raise GraphError(100, "(#100) The message was deleted", subcode=9000001)
        reply_to = {"mid": quoted.mid}
    metadata = message.get("metadata") if isinstance(message, dict) else None
    msg = record_outbound(
        sb,
        account,
        conv,
        app_id=app.id,
        kind=kind,
        text=text,
        attachments=attachments,
        reply_to=reply_to,
        tag=tag if isinstance(tag, str) else None,
        metadata=str(metadata) if metadata is not None else None,
        body={k: v for k, v in params.items() if k not in ("access_token", "appsecret_proof")},
    )
    if isinstance(message, dict) and message.get("quick_replies"):
        msg.body = msg.body or {}
    control = params.get("thread_control")
    if isinstance(control, dict):
        if control.get("control_type") == "pass":
            target = str(control.get("app_id") or "1217981644879628")
            set_owner(sb, account, conv, target, previous=app.id, metadata=None)
        elif control.get("control_type") == "release" and owner == app.id:
            conv.owner_app_id = None
    return {"recipient_id": igsid, "message_id": msg.mid}


def _sender_action(ctx: Ctx, account: IgAccount, conv: Conversation, action: str) -> dict[str, Any]:
    sb = ctx.sb
    if action not in SENDER_ACTIONS:
        raise invalid_param(
            "Param sender_action must be one of {typing_on, typing_off, mark_seen, react, unreact}"
        )
    graph.hit_rate(ctx, "send_text", subcode=2534040)
    customer = sb.world.customers[conv.customer_id]
    if account.id in customer.blocked:
        raise unavailable_error()
    now = sb.now_ms()
    if not window_open(sb, conv, now):
        raise window_error(ctx)
    entry: dict[str, Any] = {"type": action, "at": now, "app_id": ctx.app.id if ctx.app else None}
    if action in ("react", "unreact"):
        payload = ctx.params.get("payload")
        if not isinstance(payload, dict) or not payload.get("message_id"):
            raise missing_param("payload[message_id]")
        msg = sb.world.messages.get(str(payload["message_id"]))
        if msg is None or msg.conversation_id != conv.id:
            raise invalid_param("Invalid message_id")
        if msg.deleted:
            raise GraphError(100, "(#100) The message was deleted", subcode=9000001)
        msg.reactions = [r for r in msg.reactions if r.get("by") != "business"]
        if action == "react":
            reaction = str(payload.get("reaction") or "love")
            if ctx.host == "facebook" and reaction != "love":
                raise invalid_param("Invalid reaction: only love is supported")
            msg.reactions.append({"by": "business", "reaction": reaction, "emoji": reaction})
            entry["reaction"] = reaction
        entry["mid"] = msg.mid
    conv.actions.append(entry)
    if len(conv.actions) > 200:
        del conv.actions[:-200]
    sb.mark_dirty()
    return {"recipient_id": conv.igsid}


def _private_reply(ctx: Ctx, account: IgAccount, comment_id: str, message: Any) -> dict[str, Any]:
    sb = ctx.sb
    graph.require_scope(ctx, "comments")
    graph.hit_rate(ctx, "private_reply", subcode=2534040)
    comment = sb.world.comments.get(comment_id)

    def refuse(why: str) -> GraphError:
        return GraphError(
            100,
            f"(#100) This comment cannot receive a private reply: {why}",
            subcode=2534025,
            user_title="Private Reply Not Sent",
            user_msg="You can send one private reply to a comment within 7 days.",
        )

    if comment is None or comment.ig_id != account.id:
        raise refuse("the comment does not exist")
    if comment.deleted:
        raise refuse("the comment was deleted")
    if comment.from_business or comment.customer_id is None:
        raise refuse("the comment was written by the business")
    if comment.private_reply_mid is not None:
        raise refuse("a private reply was already sent")
    if sb.now_ms() - comment.created_ms > PRIVATE_REPLY_MS:
        raise refuse("the comment is older than 7 days")
    kind, text, attachments = parse_message(ctx, account, message)
    customer = sb.world.customers[comment.customer_id]
    if account.id in customer.blocked:
        raise unavailable_error()
    conv = sb.conversation_for(account, customer)
    msg = record_outbound(
        sb,
        account,
        conv,
        app_id=ctx.app.id if ctx.app else None,
        kind=kind,
        text=text,
        attachments=attachments,
        comment_id=comment.id,
    )
    comment.private_reply_mid = msg.mid
    return {"recipient_id": conv.igsid, "message_id": msg.mid}


def upload_attachment(ctx: Ctx, node: str) -> dict[str, Any]:
    sb = ctx.sb
    account = graph.business_account(ctx, node, edge="message_attachments")
    graph.count_call(ctx)
    graph.require_scope(ctx, "messages")
    message = ctx.params.get("message")
    if not isinstance(message, dict) or not isinstance(message.get("attachment"), dict):
        raise missing_param("message[attachment]")
    attachment = message["attachment"]
    kind = str(attachment.get("type") or "")
    if kind not in MEDIA_TYPES:
        raise GraphError(100, "(#100) Invalid attachment type", subcode=2018047)
    payload = attachment.get("payload") or {}
    upload = ctx.req.files.get("filedata")
    size = 0
    url: str | None = None
    if upload is not None:
        size = len(upload.data)
        major = upload.content_type.split("/", 1)[0]
        expected = {"image": "image", "video": "video", "audio": "audio", "file": "application"}
        if major != expected[kind]:
            raise GraphError(
                100,
                "(#100) Upload attachment failure: the file type does not match the attachment "
                "type.",
                subcode=2018047,
            )
    else:
        url = _check_url(kind, payload.get("url") if isinstance(payload, dict) else None)
    if size > SIZE_LIMITS.get(kind, 25 * 1024 * 1024):
        raise GraphError(100, "(#100) Attachment size exceeds allowable limit", subcode=2018109)
    attachment_id = str(1_857_777_774_821_000 + sb.seq("attachment"))
    sb.world.attachments[attachment_id] = Attachment(
        id=attachment_id,
        ig_id=account.id,
        type=kind,
        url=url or f"https://lookaside.fbsbx.com/sandbox/attachment/{attachment_id}",
        size=size,
        created_ms=sb.now_ms(),
    )
    sb.mark_dirty()
    return {"attachment_id": attachment_id}


def validate_ice_breakers(value: Any) -> Any:
    if not isinstance(value, list):
        raise invalid_param("Param ice_breakers must be an array")
    for locale in value:
        actions = locale.get("call_to_actions") if isinstance(locale, dict) else None
        if not isinstance(actions, list) or not actions:
            raise invalid_param("Each ice_breakers item needs call_to_actions")
        if len(actions) > MAX_ICE_BREAKERS:
            raise invalid_param(f"At most {MAX_ICE_BREAKERS} ice breakers per locale")
        for action in actions:
            if (
                not isinstance(action, dict)
                or not action.get("question")
                or not action.get("payload")
            ):
                raise invalid_param("Each ice breaker needs a question and a payload")
        locale.setdefault("locale", "default")
    return value


def validate_persistent_menu(value: Any) -> Any:
    if not isinstance(value, list):
        raise invalid_param("Param persistent_menu must be an array")
    for locale in value:
        actions = locale.get("call_to_actions") if isinstance(locale, dict) else None
        if not isinstance(actions, list) or not actions:
            raise invalid_param("Each persistent_menu item needs call_to_actions")
        for action in actions:
            if not isinstance(action, dict) or action.get("type") not in ("postback", "web_url"):
                raise invalid_param("Instagram menu items must be postback or web_url")
    return value


def make_attachment(sb: Sandbox, account: IgAccount, kind: str, url: str) -> Attachment:
    attachment_id = str(1_857_777_774_821_000 + sb.seq("attachment"))
    att = Attachment(id=attachment_id, ig_id=account.id, type=kind, url=url, created_ms=sb.now_ms())
    sb.world.attachments[attachment_id] = att
    return att
