"""S8 and F2: the partner API schema is valid OpenAPI 3, exposes no secret-looking property,
and its documentation page works offline (every asset served by us)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from io import StringIO
from typing import Any
from urllib.parse import urlparse

import pytest
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.test import Client
from openapi_spec_validator import validate

pytestmark = pytest.mark.django_db

SECRET_NAME = re.compile(r"token|secret|password|passwd|hash", re.IGNORECASE)


@pytest.fixture
def schema(client: Client) -> dict[str, Any]:
    response = client.get("/api/v1/schema/?format=json")
    assert response.status_code == 200
    return response.json()


def test_schema_is_valid_openapi_3(schema: dict[str, Any]) -> None:
    assert schema["openapi"].startswith("3.")
    validate(schema)


def test_spectacular_validates_without_warnings() -> None:
    out = StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", stdout=out)
    assert "openapi:" in out.getvalue()


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        name = node["$ref"].removeprefix("#/components/schemas/")
        node = schema["components"]["schemas"][name]
    return node


def _property_names(
    schema: dict[str, Any], node: dict[str, Any], path: str, seen: set[str]
) -> Iterator[tuple[str, str]]:
    """Every property name reachable from a response schema, with where it was found."""
    ref = node.get("$ref")
    if ref is not None:
        if ref in seen:
            return
        seen = seen | {ref}
    node = _resolve(schema, node)
    for name, child in node.get("properties", {}).items():
        yield name, f"{path}.{name}"
        yield from _property_names(schema, child, f"{path}.{name}", seen)
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            yield from _property_names(schema, node[key], f"{path}[]", seen)
    for key in ("allOf", "oneOf", "anyOf"):
        for child in node.get(key, []):
            yield from _property_names(schema, child, path, seen)


def _response_properties(schema: dict[str, Any]) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for route, operations in schema["paths"].items():
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            for status, response in operation["responses"].items():
                for media, content in response.get("content", {}).items():
                    where = f"{method.upper()} {route} {status} {media}"
                    found += _property_names(schema, content["schema"], where, set())
    return found


def test_no_response_exposes_a_secret_looking_property(schema: dict[str, Any]) -> None:
    properties = _response_properties(schema)
    assert properties, "the walk found no response property at all"
    assert [where for name, where in properties if SECRET_NAME.search(name)] == []


def test_the_walk_would_catch_a_secret_property() -> None:
    sample = {
        "paths": {
            "/x": {
                "get": {
                    "responses": {
                        "200": {
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Outer"}
                                }
                            }
                        }
                    }
                }
            }
        },
        "components": {
            "schemas": {
                "Outer": {
                    "type": "object",
                    "properties": {
                        "items": {"type": "array", "items": {"$ref": "#/components/schemas/Inner"}}
                    },
                },
                "Inner": {"type": "object", "properties": {"access_token": {"type": "string"}}},
            }
        },
    }
    names = [name for name, _ in _response_properties(sample)]
    assert "access_token" in names


def test_docs_page_loads_every_asset_from_our_own_static_files(client: Client) -> None:
    response = client.get("/api/v1/docs/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()

    assets = re.findall(r"<(?:script|link)\b[^>]*?\b(?:src|href)=[\"']([^\"']+)[\"']", html)
    assert any(a.endswith(".js") for a in assets)
    assert any(a.endswith(".css") for a in assets)
    for asset in assets:
        url = urlparse(asset)
        assert not url.scheme, f"{asset} is loaded from another host"
        assert not url.netloc, f"{asset} is loaded from another host"
        assert url.path.startswith("/static/"), asset
        assert finders.find(url.path.removeprefix("/static/")), f"{asset} is not a static file"
    # No other host appears anywhere in the page (inline scripts included).
    assert re.findall(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", html, re.IGNORECASE) == []
