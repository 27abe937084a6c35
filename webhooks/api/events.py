"""The documented shape of every partner event, for the OpenAPI schema (with examples).

``webhooks.partner_events`` builds the payloads; a test checks each built payload against
these schemas, so the documentation cannot drift from what endpoints receive.
"""

from __future__ import annotations

from typing import Any

from webhooks.models import CallbackEventType

_DT = {"type": "string", "format": "date-time"}
_DT_NULL = {"type": "string", "format": "date-time", "nullable": True}
_STR_NULL = {"type": "string", "nullable": True}


def _obj(properties: dict[str, Any], description: str = "") -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "required": sorted(properties),
    }
    if description:
        schema["description"] = description
    return schema


CONTACT = _obj(
    {
        "id": {"type": "integer"},
        "igsid": {
            **_STR_NULL,
            "description": "The customer's Instagram-scoped id; null once they were erased.",
        },
        "username": _STR_NULL,
        "name": _STR_NULL,
    }
)
CONVERSATION = _obj(
    {
        "id": {"type": "integer"},
        "account_id": {"type": "integer"},
        "contact": {"$ref": "#/components/schemas/EventContact"},
        "status": {"type": "string", "enum": ["open", "resolved"]},
        "assignee_id": {"type": "integer", "nullable": True},
        "unread_count": {"type": "integer"},
        "last_message_at": _DT_NULL,
        "owned_by_other_app": {"type": "boolean"},
        "mode": {
            "type": "string",
            "enum": ["automation", "human"],
            "description": "Who answers: the account's automation, or a person (handover).",
        },
    }
)
MESSAGE = _obj(
    {
        "id": {"type": "integer"},
        "mid": {**_STR_NULL, "description": "Meta's message id; null until Meta accepts a send."},
        "conversation_id": {"type": "integer"},
        "account_id": {"type": "integer"},
        "direction": {"type": "string", "enum": ["in", "out"]},
        "sender_kind": {"type": "string"},
        "kind": {"type": "string"},
        "text": {**_STR_NULL, "description": "Null once the message was unsent."},
        "attachments": {
            "type": "array",
            "nullable": True,
            "items": _obj({"type": {"type": "string"}, "url": _STR_NULL, "title": _STR_NULL}),
        },
        "reply_to_mid": _STR_NULL,
        "status": {"type": "string", "enum": ["received", "queued", "sending", "sent", "failed"]},
        "error": {
            **_obj({"code": {"type": "string"}, "message": {"type": "string"}}),
            "nullable": True,
        },
        "sent_at": _DT,
        "edited_at": _DT_NULL,
        "unsent": {"type": "boolean"},
    }
)
COMMENT = _obj(
    {
        "id": {"type": "integer"},
        "comment_id": {"type": "string"},
        "account_id": {"type": "integer"},
        "media_id": _STR_NULL,
        "media_product_type": _STR_NULL,
        "parent_id": _STR_NULL,
        "from_id": _STR_NULL,
        "from_username": _STR_NULL,
        "text": {**_STR_NULL, "description": "Null once the comment was erased."},
        "is_live": {"type": "boolean"},
        "commented_at": _DT,
    }
)
ACCOUNT = _obj(
    {
        "id": {"type": "integer"},
        "ig_user_id": {"type": "string"},
        "username": _STR_NULL,
        "health": {
            "type": "string",
            "enum": [
                "active",
                "needs_reauth",
                "not_eligible",
                "message_access_off",
                "disconnected",
            ],
        },
        "previous_health": {**_STR_NULL, "description": "Null for a newly connected account."},
        "last_error": _STR_NULL,
    }
)

_MESSAGE_DATA = _obj(
    {
        "message": {"$ref": "#/components/schemas/EventMessage"},
        "conversation": {"$ref": "#/components/schemas/EventConversation"},
    }
)

DATA: dict[str, dict[str, Any]] = {
    CallbackEventType.MESSAGE_RECEIVED: _MESSAGE_DATA,
    CallbackEventType.MESSAGE_SENT: _MESSAGE_DATA,
    CallbackEventType.MESSAGE_FAILED: _MESSAGE_DATA,
    CallbackEventType.MESSAGE_EDITED: _MESSAGE_DATA,
    CallbackEventType.MESSAGE_DELETED: _MESSAGE_DATA,
    CallbackEventType.MESSAGE_READ: _obj(
        {
            "conversation": {"$ref": "#/components/schemas/EventConversation"},
            "mid": {**_STR_NULL, "description": "The message the customer read up to."},
            "read_at": _DT,
            "read_up_to": _DT_NULL,
        }
    ),
    CallbackEventType.CONVERSATION_CREATED: _obj(
        {"conversation": {"$ref": "#/components/schemas/EventConversation"}}
    ),
    CallbackEventType.CONVERSATION_UPDATED: _obj(
        {
            "conversation": {"$ref": "#/components/schemas/EventConversation"},
            "changes": {
                "type": "array",
                "items": {
                    "type": "string",
                    "enum": ["status", "assignee", "labels", "owner", "mode"],
                },
            },
        }
    ),
    CallbackEventType.COMMENT_RECEIVED: _obj(
        {"comment": {"$ref": "#/components/schemas/EventComment"}}
    ),
    CallbackEventType.ACCOUNT_HEALTH_CHANGED: _obj(
        {"account": {"$ref": "#/components/schemas/EventAccount"}}
    ),
}

_CONTACT_EXAMPLE = {"id": 12, "igsid": "1789000000000001", "username": "jane.doe", "name": "Jane"}
_CONVERSATION_EXAMPLE = {
    "id": 345,
    "account_id": 3,
    "contact": _CONTACT_EXAMPLE,
    "status": "open",
    "assignee_id": None,
    "unread_count": 1,
    "last_message_at": "2026-11-25T12:00:00Z",
    "owned_by_other_app": False,
    "mode": "automation",
}
_MESSAGE_EXAMPLE = {
    "id": 9876,
    "mid": "aWdfZAG1faXRlbToxOklH",
    "conversation_id": 345,
    "account_id": 3,
    "direction": "in",
    "sender_kind": "customer",
    "kind": "text",
    "text": "Hi! Is the blue one still available?",
    "attachments": [],
    "reply_to_mid": None,
    "status": "received",
    "error": None,
    "sent_at": "2026-11-25T12:00:00Z",
    "edited_at": None,
    "unsent": False,
}
EXAMPLES: dict[str, dict[str, Any]] = {
    CallbackEventType.MESSAGE_RECEIVED: {
        "message": _MESSAGE_EXAMPLE,
        "conversation": _CONVERSATION_EXAMPLE,
    },
    CallbackEventType.MESSAGE_SENT: {
        "message": {
            **_MESSAGE_EXAMPLE,
            "direction": "out",
            "sender_kind": "partner",
            "text": "Yes, it is!",
            "status": "sent",
        },
        "conversation": _CONVERSATION_EXAMPLE,
    },
    CallbackEventType.MESSAGE_FAILED: {
        "message": {
            **_MESSAGE_EXAMPLE,
            "mid": None,
            "direction": "out",
            "sender_kind": "partner",
            "text": "Yes, it is!",
            "status": "failed",
            "error": {"code": "window_closed", "message": "The 24-hour window has closed."},
        },
        "conversation": _CONVERSATION_EXAMPLE,
    },
    CallbackEventType.MESSAGE_EDITED: {
        "message": {
            **_MESSAGE_EXAMPLE,
            "text": "Is the red one available?",
            "edited_at": "2026-11-25T12:01:00Z",
        },
        "conversation": _CONVERSATION_EXAMPLE,
    },
    CallbackEventType.MESSAGE_DELETED: {
        "message": {**_MESSAGE_EXAMPLE, "text": None, "attachments": None, "unsent": True},
        "conversation": _CONVERSATION_EXAMPLE,
    },
    CallbackEventType.MESSAGE_READ: {
        "conversation": _CONVERSATION_EXAMPLE,
        "mid": "aWdfZAG1faXRlbToxOklH",
        "read_at": "2026-11-25T12:02:00Z",
        "read_up_to": "2026-11-25T12:00:00Z",
    },
    CallbackEventType.CONVERSATION_CREATED: {"conversation": _CONVERSATION_EXAMPLE},
    CallbackEventType.CONVERSATION_UPDATED: {
        "conversation": {**_CONVERSATION_EXAMPLE, "status": "resolved", "unread_count": 0},
        "changes": ["status"],
    },
    CallbackEventType.COMMENT_RECEIVED: {
        "comment": {
            "id": 77,
            "comment_id": "17900000000000001",
            "account_id": 3,
            "media_id": "17800000000000001",
            "media_product_type": "FEED",
            "parent_id": None,
            "from_id": "1789000000000001",
            "from_username": "jane.doe",
            "text": "How much?",
            "is_live": False,
            "commented_at": "2026-11-25T12:00:00Z",
        }
    },
    CallbackEventType.ACCOUNT_HEALTH_CHANGED: {
        "account": {
            "id": 3,
            "ig_user_id": "17841400000000001",
            "username": "brand",
            "health": "needs_reauth",
            "previous_health": "active",
            "last_error": "The connection to Instagram is no longer valid.",
        }
    },
}


def component_name(event_type: str) -> str:
    """``message.received`` → ``MessageReceivedEvent``."""
    words = event_type.replace(".", "_").split("_")
    return "".join(w.capitalize() for w in words) + "Event"


def components() -> dict[str, dict[str, Any]]:
    """Component schemas: one per event type, their parts, and ``CallbackEvent`` (any of them)."""
    found: dict[str, dict[str, Any]] = {
        "EventContact": CONTACT,
        "EventConversation": CONVERSATION,
        "EventMessage": MESSAGE,
        "EventComment": COMMENT,
        "EventAccount": ACCOUNT,
    }
    mapping = {}
    for event_type, label in CallbackEventType.choices:
        name = component_name(event_type)
        mapping[event_type] = f"#/components/schemas/{name}"
        found[name] = {
            **_obj(
                {
                    "id": {"type": "integer", "description": "The event's id."},
                    "type": {"type": "string", "enum": [event_type]},
                    "created_at": _DT,
                    "conversation_id": {"type": "integer", "nullable": True},
                    "sequence": {
                        "type": "integer",
                        "nullable": True,
                        "description": "1, 2, 3… within a conversation; null without one.",
                    },
                    "data": DATA[event_type],
                },
                description=f"`{event_type}`: {label}.",
            ),
            "example": {
                "id": 1001,
                "type": event_type,
                "created_at": "2026-11-25T12:00:01Z",
                "conversation_id": None if event_type.startswith(("comment", "account")) else 345,
                "sequence": None if event_type.startswith(("comment", "account")) else 2,
                "data": EXAMPLES[event_type],
            },
        }
    found["CallbackEvent"] = {
        "description": (
            "The JSON body of a callback: one of the event types below, told apart by `type`."
        ),
        "oneOf": [{"$ref": ref} for ref in mapping.values()],
        "discriminator": {"propertyName": "type", "mapping": mapping},
    }
    return found
