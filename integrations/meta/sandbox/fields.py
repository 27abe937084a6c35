"""Parser for Graph `fields=` selections, e.g. `id,messages.limit(5){id,from},participants`."""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import invalid_param

MAX_DEPTH = 5


@dataclass
class FieldSel:
    name: str
    sub: dict[str, FieldSel] | None = None
    limit: int | None = None
    extra: dict[str, str] = field(default_factory=dict)


def _split_top(spec: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for char in spec:
        if char in "{(":
            depth += 1
        elif char in "})":
            depth -= 1
            if depth < 0:
                raise invalid_param("Syntax error in fields")
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if depth != 0:
        raise invalid_param("Syntax error in fields")
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def parse_fields(spec: str | None, depth: int = 0) -> dict[str, FieldSel]:
    if not spec:
        return {}
    if depth > MAX_DEPTH:
        raise invalid_param("fields nested too deeply")
    result: dict[str, FieldSel] = {}
    for part in _split_top(spec):
        sub: dict[str, FieldSel] | None = None
        if "{" in part:
            if not part.endswith("}"):
                raise invalid_param(f"Syntax error in field {part!r}")
            head, inner = part.split("{", 1)
            sub = parse_fields(inner[:-1], depth + 1)
        else:
            head = part
        name, *mods = head.split(".")
        sel = FieldSel(name=name.strip(), sub=sub)
        for mod in mods:
            if "(" not in mod or not mod.endswith(")"):
                raise invalid_param(f"Syntax error in field modifier {mod!r}")
            key, value = mod[:-1].split("(", 1)
            if key == "limit":
                try:
                    sel.limit = max(1, min(int(value), 100))
                except ValueError as exc:
                    raise invalid_param("limit must be an integer") from exc
            else:
                sel.extra[key] = value
        result[sel.name] = sel
    return result


def render_fields(sel: dict[str, FieldSel]) -> str:
    """The `fields=` text of a parsed selection (inverse of `parse_fields`)."""
    parts: list[str] = []
    for item in sel.values():
        text = item.name
        if item.limit is not None:
            text += f".limit({item.limit})"
        for key, value in item.extra.items():
            text += f".{key}({value})"
        if item.sub:
            text += "{" + render_fields(item.sub) + "}"
        parts.append(text)
    return ",".join(parts)
