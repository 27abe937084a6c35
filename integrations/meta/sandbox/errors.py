"""Graph API errors with Meta's envelope."""

from __future__ import annotations

import secrets
import string
from typing import Any

from .models import Host

_TRACE_ALPHABET = string.ascii_letters + string.digits
TRANSIENT_CODES = {1, 2, 4, 17, 32, 341, 613, 80001, 80002, 80006}


def fbtrace_id() -> str:
    return "A" + "".join(secrets.choice(_TRACE_ALPHABET) for _ in range(22))


class GraphError(Exception):
    """An error answered in Meta's `{"error": {...}}` envelope."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        subcode: int | None = None,
        type_: str | None = None,
        status: int | None = None,
        user_title: str | None = None,
        user_msg: str | None = None,
        is_transient: bool | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.subcode = subcode
        self.type = type_
        self.status = status
        self.user_title = user_title
        self.user_msg = user_msg
        self.is_transient = is_transient
        self.headers = headers or {}

    def envelope(self, host: Host) -> dict[str, Any]:
        if self.type:
            type_ = self.type
        elif self.code == 190 or host == "facebook":
            type_ = "OAuthException"
        else:
            type_ = "IGApiException"
        body: dict[str, Any] = {"message": self.message, "type": type_, "code": self.code}
        if self.subcode is not None:
            body["error_subcode"] = self.subcode
        transient = (
            self.is_transient if self.is_transient is not None else self.code in TRANSIENT_CODES
        )
        body["is_transient"] = transient
        if self.user_title:
            body["error_user_title"] = self.user_title
        if self.user_msg:
            body["error_user_msg"] = self.user_msg
        body["fbtrace_id"] = fbtrace_id()
        return {"error": body}

    def http_status(self, host: Host) -> int:
        if self.status is not None:
            return self.status
        if self.code in (1, 2):
            return 500
        if host == "instagram" and self.code == 10:
            return 403
        return 400


class FlatOAuthError(Exception):
    """The flat error shape of api.instagram.com/oauth/access_token."""

    def __init__(self, message: str, code: int = 400, error_type: str = "OAuthException") -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.error_type = error_type

    def body(self) -> dict[str, Any]:
        return {"error_type": self.error_type, "code": self.code, "error_message": self.message}


def no_object(node_id: str, method: str = "get") -> GraphError:
    return GraphError(
        100,
        f"Unsupported {method} request. Object with ID '{node_id}' does not exist, cannot be "
        "loaded due to missing permissions, or does not support this operation. Please read "
        "the Graph API documentation at https://developers.facebook.com/docs/graph-api",
        subcode=33,
        type_="GraphMethodException",
    )


def missing_param(name: str) -> GraphError:
    return GraphError(100, f"(#100) The parameter {name} is required")


def invalid_param(message: str, subcode: int | None = None) -> GraphError:
    return GraphError(100, f"(#100) {message}", subcode=subcode)


def missing_permission(scope: str) -> GraphError:
    return GraphError(200, f"(#200) Requires {scope} permission to manage the object")


def nonexisting_field(field: str, node_type: str) -> GraphError:
    return GraphError(
        100, f"(#100) Tried accessing nonexisting field ({field}) on node type ({node_type})"
    )
