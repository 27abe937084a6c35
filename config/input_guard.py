"""Input PostgreSQL cannot store is refused at the door, never turned into a 500.

PostgreSQL text and jsonb refuse NUL characters and lone surrogates. A query string, form field
or JSON string carrying one is answered 400 before any view runs or any row is written.

Ids, counts and lengths read from text go through ``parse_digits``: ``str.isdigit()`` is also
true for superscripts and circled digits ("²", "①"), which ``int()`` refuses with a ValueError.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeGuard

from django.http import HttpRequest, HttpResponse, JsonResponse
from rest_framework import parsers
from rest_framework.exceptions import ParseError

# Enough for any bigint id, count or length; int() would refuse 4,301 digits and more.
MAX_DIGITS = 18


def is_digits(value: object) -> TypeGuard[str]:
    """True for a non-empty string of the ASCII digits 0 to 9 and nothing else."""
    return isinstance(value, str) and value.isascii() and value.isdigit()


def parse_digits(value: object) -> int | None:
    """The number a string of at most 18 ASCII digits spells; ``None`` for anything else."""
    if not is_digits(value) or len(value) > MAX_DIGITS:
        return None
    return int(value)


def _unstorable(text: str) -> bool:
    if "\x00" in text:
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return True
    return False


def contains_unstorable(value: Any) -> bool:
    """True if any string in a decoded JSON value could not be stored by PostgreSQL."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _unstorable(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


class StorableJSONParser(parsers.JSONParser):
    """DRF's JSON parser, refusing strings PostgreSQL cannot store."""

    def parse(self, stream: Any, media_type: Any = None, parser_context: Any = None) -> Any:
        data = super().parse(stream, media_type, parser_context)
        if contains_unstorable(data):
            raise ParseError("The request holds a NUL character or an unpaired surrogate.")
        return data


class UnstorableInputMiddleware:
    """Answers 400 to query strings and form fields PostgreSQL could not store."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        values = [v for values in request.GET.lists() for v in [values[0], *values[1]]]
        if request.method == "POST" and request.content_type in (
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        ):
            values += [v for values in request.POST.lists() for v in [values[0], *values[1]]]
        if any(_unstorable(value) for value in values):
            return JsonResponse(
                {
                    "error": {
                        "code": "malformed_request",
                        "message": "The request holds a NUL character or an unpaired surrogate.",
                        "detail": None,
                    }
                },
                status=400,
                json_dumps_params={"ensure_ascii": True},
                encoder=json.JSONEncoder,  # type: ignore[arg-type]
            )
        return self.get_response(request)
