"""Small helpers for the inbox templates."""

from __future__ import annotations

from datetime import datetime

from django import template
from django.utils import timezone

register = template.Library()


@register.filter
def hue(value: object) -> int:
    """A stable colour slot (0-5) for an avatar without a picture."""
    try:
        return int(str(value)) % 6
    except ValueError:
        return sum(map(ord, str(value))) % 6


@register.filter
def initial(value: object) -> str:
    text = str(value or "").lstrip("@").strip()
    return text[:1].upper() or "?"


@register.filter
def short_time(moment: datetime | None) -> str:
    """ "14:05" today, "Mon" this week, "Mar 3" this year, "3/3/24" before."""
    if moment is None:
        return ""
    now = timezone.localtime()
    local = timezone.localtime(moment)
    days = (now.date() - local.date()).days
    if days <= 0:
        return local.strftime("%H:%M")
    if days == 1:
        return "Yesterday"
    if days < 7:
        return local.strftime("%a")
    if local.year == now.year:
        return local.strftime("%b %-d")
    return local.strftime("%-d/%-m/%y")


@register.filter
def compact_number(value: int | None) -> str:
    if value is None:
        return ""
    if value >= 1_000_000:
        return f"{value / 1_000_000:.1f}M".replace(".0M", "M")
    if value >= 10_000:
        return f"{value // 1000}K"
    if value >= 1000:
        return f"{value / 1000:.1f}K".replace(".0K", "K")
    return str(value)


EMOJI = [
    "😀",
    "😂",
    "😊",
    "😍",
    "🥰",
    "😘",
    "😉",
    "😎",
    "🤔",
    "😅",
    "😢",
    "😭",
    "😮",
    "🙏",
    "👍",
    "👎",
    "👌",
    "👏",
    "🙌",
    "💪",
    "🔥",
    "✨",
    "🎉",
    "💯",
    "❤️",
    "🧡",
    "💛",
    "💚",
    "💙",
    "💜",
    "🖤",
    "✅",
    "❌",
    "⭐",
    "📦",
    "🚚",
    "💳",
    "🛍️",
    "🎁",
    "📷",
    "👀",
    "👋",
    "🤝",
    "⏰",
    "📍",
    "🙂",
]


@register.simple_tag
def emoji_set() -> list[str]:
    """The composer's emoji picker: the ones agents use most with customers."""
    return EMOJI


@register.filter
def who(contact: object) -> str:
    """A contact's name as agents read it: the name, the @username, or, before the profile is
    known, "Instagram user ···1234"."""
    name = getattr(contact, "name", "") or ""
    if name:
        return name
    username = getattr(contact, "username", "") or ""
    if username:
        return f"@{username}"
    igsid = str(getattr(contact, "igsid", "") or "")
    return f"Instagram user ···{igsid[-4:]}" if igsid else "Instagram user"
