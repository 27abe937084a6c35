"""What every operation of the partner API shares, written into the OpenAPI schema once.

A drf-spectacular postprocessing hook adds: the error shape and its stable codes, the error
responses each operation can give, the rate-limit headers, the ``Idempotency-Key`` header of
every POST, and the component schemas of every callback event.
"""

from __future__ import annotations

from typing import Any

ERROR_CODES: dict[str, str] = {
    "not_authenticated": "401: no `Authorization: Bearer <key>` header.",
    "authentication_failed": "401: the key is unknown or revoked.",
    "permission_denied": "403: the call is not allowed.",
    "missing_scope": "403: the key lacks a scope; the message names it.",
    "not_found": "404: no such object in this workspace (another workspace's ids answer the same).",
    "method_not_allowed": "405",
    "not_acceptable": "406",
    "unsupported_media_type": "415: send `Content-Type: application/json`.",
    "malformed_request": "400: the body is not valid JSON.",
    "invalid": "400: a field is not valid; `detail` maps each field to its problems.",
    "rate_limited": "429: over the key's budget; wait `Retry-After` seconds.",
    "idempotency_key_invalid": "400: an Idempotency-Key is 1 to 255 printable characters.",
    "idempotency_key_reused": "422: the Idempotency-Key was used for a different request.",
    "idempotency_request_in_progress": "409: the first request with this key is still running.",
    "url_not_allowed": "400: callbacks go to public http(s) URLs only.",
    "unknown_event_type": "400",
    "no_event_types": "400",
    "too_many_endpoints": "400: at most 20 callback endpoints per workspace.",
    "overlap_out_of_range": "400",
}


def _refusal_codes() -> dict[str, str]:
    """The messaging policy's refusals of a send (422), and team-work refusals."""
    from messaging.policy import Refusal

    codes = {str(r.value): "422: the messaging policy refused the send." for r in Refusal}
    codes.update(
        {
            "assignee_not_allowed": "400: that member can't answer this conversation.",
            "label_exists": "400",
            "label_empty": "400",
            "label_too_long": "400",
            "note_empty": "400",
            "note_too_long": "400",
            "shortcut_invalid": "400",
            "shortcut_taken": "400",
            "canned_empty": "400",
            "canned_too_long": "400",
            "unknown_agent": "400: no member of the workspace has that email (or user id).",
            "no_conversation": "400: the contact has no conversation to label yet.",
        }
    )
    return codes


def all_error_codes() -> dict[str, str]:
    from automation.services import ERROR_CODES as AUTOMATION_CODES

    return {**ERROR_CODES, **_refusal_codes(), **AUTOMATION_CODES}


def _error_schema() -> dict[str, Any]:
    listing = "\n".join(f"- `{code}`: {text}" for code, text in all_error_codes().items())
    return {
        "type": "object",
        "description": "Every error answers in this shape.",
        "properties": {
            "error": {
                "type": "object",
                "properties": {
                    "code": {
                        "type": "string",
                        "description": f"A stable, machine-readable code:\n\n{listing}",
                    },
                    "message": {"type": "string", "description": "For people; may change."},
                    "detail": {
                        "nullable": True,
                        "description": "More about the error: per-field problems for `invalid`.",
                    },
                },
                "required": ["code", "message", "detail"],
            }
        },
        "required": ["error"],
        "example": {
            "error": {
                "code": "missing_scope",
                "message": "The API key lacks the scope this call needs: webhooks:manage.",
                "detail": None,
            }
        },
    }


_ERROR_RESPONSES = {
    "400": "The request is not valid.",
    "401": "No key, or a key that is not valid.",
    "403": "The key lacks a scope this call needs (`missing_scope`).",
    "404": "Not found in this workspace.",
    "409": "A request with the same Idempotency-Key is still running.",
    "422": "Refused: an Idempotency-Key reused for another request, or a policy refusal.",
    "429": "Over the key's request budget.",
}

_RATE_HEADERS = {
    "RateLimit-Limit": "Requests the key may make per window.",
    "RateLimit-Remaining": "Requests left in the current window.",
    "RateLimit-Reset": "Seconds until the window's budget is whole again.",
}


# Fields that are a short form or, with ``?expand=``, the full object: the full object holds
# every field of the short one, so a value matches both and ``oneOf`` would reject it.
_SHORT_OR_FULL = ("ConversationContact", "ConversationLastMessage")


def _header(description: str) -> dict[str, Any]:
    return {"schema": {"type": "integer"}, "description": description}


def document_conventions(
    result: dict[str, Any], generator: Any, request: Any, public: bool
) -> dict[str, Any]:
    from webhooks.api import events

    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas["Error"] = _error_schema()
    schemas.update(events.components())
    for name in _SHORT_OR_FULL:
        if name in schemas and "oneOf" in schemas[name]:
            schemas[name]["anyOf"] = schemas[name].pop("oneOf")
    error_content = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path, operations in result.get("paths", {}).items():
        if not path.startswith("/api/v1/") or path.startswith(("/api/v1/schema", "/api/v1/docs")):
            continue
        for method, operation in operations.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            responses = operation.setdefault("responses", {})
            for code, response in responses.items():
                if code.startswith("2"):
                    response.setdefault("headers", {}).update(
                        {name: _header(text) for name, text in _RATE_HEADERS.items()}
                    )
            wanted = ["400", "401", "403", "429"]
            if "{" in path:
                wanted.append("404")
            if method == "post":
                wanted += ["409", "422"]
                parameters = operation.setdefault("parameters", [])
                named = {(p.get("in"), str(p.get("name", "")).lower()) for p in parameters}
                if ("header", "idempotency-key") not in named:
                    parameters.append(
                        {
                            "in": "header",
                            "name": "Idempotency-Key",
                            "required": False,
                            "schema": {"type": "string", "maxLength": 255},
                            "description": (
                                "Any unique string (a UUID) per request: repeating the request "
                                "with the same key answers with the first result instead of doing "
                                "it twice. Remembered for 24 hours."
                            ),
                        }
                    )
            for code in wanted:
                entry = responses.setdefault(
                    code, {"description": _ERROR_RESPONSES[code], "content": error_content}
                )
                if code == "429":
                    entry.setdefault("headers", {})["Retry-After"] = _header(
                        "Seconds to wait before the next request."
                    )
    return result
