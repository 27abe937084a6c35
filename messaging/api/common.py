"""What the conversations API views share: finding a conversation or a member for a partner,
and turning a team-work refusal into the API's error shape."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.http import Http404

from accounts.models import Membership
from config.api import ApiError
from messaging import selectors
from messaging.models import Conversation
from messaging.services.teamwork import TeamworkError


def conversation_or_404(conversation_id: int | str) -> Conversation:
    """The workspace's conversation (with its list prefetches); another workspace's is a 404."""
    try:
        return selectors.conversation_get(conversation_id=int(conversation_id))
    except Conversation.DoesNotExist as exc:
        raise Http404 from exc


def member_by_email(email: str) -> Membership:
    """The workspace's member with this email; 400 ``unknown_agent`` when there is none."""
    member = Membership.objects.filter(user__email__iexact=email).select_related("user").first()
    if member is None:
        raise ApiError("unknown_agent", "No member of this workspace has that email.")
    return member


@contextmanager
def teamwork_refusals() -> Iterator[None]:
    """A refusal of the team-work rules answers 400 with its stable code."""
    try:
        yield
    except TeamworkError as exc:
        raise ApiError(exc.code, exc.message) from exc
