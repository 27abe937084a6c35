"""``Idempotency-Key`` on every partner POST: a repeat answers with the first result.

A key belongs to the workspace and names one request (method, path and JSON body). The first
request's work and the record of its answer commit in one transaction, so a repeat (even one
racing the first) either waits for it and gets its answer, or runs if the first rolled back.
The same key with another request answers 422 ``idempotency_key_reused``. A request that
failed (an error was raised) leaves no record and may be retried with the same key. Keys are
remembered for ``IDEMPOTENCY_KEY_TTL_SECONDS``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from config.api import error_body

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
REPLAYED_HEADER = "Idempotent-Replayed"


def _fingerprint(request: Request) -> str:
    try:
        body = json.dumps(request.data, sort_keys=True, cls=DjangoJSONEncoder)
    except (TypeError, ValueError):
        body = request.body.decode("utf-8", "replace")
    text = f"{request.method} {request.path}\n{body}"
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()


def _refusal(code: str, message: str, http_status: int) -> Response:
    return Response(error_body(code, message), status=http_status)


def idempotent(view: Any, handler: Callable[..., Response]) -> Callable[..., Response]:
    """Wrap a view's POST handler (called inside the key's tenant scope)."""
    from webhooks.models import IdempotencyRecord

    def run(request: Request, *args: Any, **kwargs: Any) -> Response:
        key = request.headers.get(HEADER, "").strip()
        if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
            return _refusal(
                "idempotency_key_invalid",
                f"An Idempotency-Key is 1 to {MAX_KEY_LENGTH} printable characters.",
                status.HTTP_400_BAD_REQUEST,
            )
        fingerprint = _fingerprint(request)
        expired = timezone.now() - timedelta(seconds=settings.IDEMPOTENCY_KEY_TTL_SECONDS)
        with transaction.atomic():
            IdempotencyRecord.objects.filter(key=key, created_at__lt=expired).delete()
            try:
                with transaction.atomic():
                    record = IdempotencyRecord.objects.create(
                        tenant_id=view.tenant.pk,
                        key=key,
                        method=request.method or "POST",
                        path=request.path[:2000],
                        request_hash=fingerprint,
                    )
            except IntegrityError:
                first = IdempotencyRecord.objects.filter(key=key).first()
                if first is None or first.response_status is None:
                    return _refusal(
                        "idempotency_request_in_progress",
                        "A request with this Idempotency-Key is still running; try again.",
                        status.HTTP_409_CONFLICT,
                    )
                if first.request_hash != fingerprint:
                    return _refusal(
                        "idempotency_key_reused",
                        "This Idempotency-Key was used for a different request. Use a new key "
                        "for each new request.",
                        status.HTTP_422_UNPROCESSABLE_ENTITY,
                    )
                replay = Response(first.response_body, status=first.response_status)
                replay[REPLAYED_HEADER] = "true"
                return replay
            response = handler(request, *args, **kwargs)
            if response.status_code >= 500:
                transaction.set_rollback(True)
                return response
            record.response_status = response.status_code
            record.response_body = json.loads(json.dumps(response.data, cls=DjangoJSONEncoder))
            record.save(update_fields=["response_status", "response_body"])
        return response

    return run


class IdempotentPostMixin:
    """Gives a partner API view's POST the ``Idempotency-Key`` behaviour.

    A view that keeps its own idempotency for a POST sets ``idempotent_posts = False``.
    """

    idempotent_posts = True

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        if self.idempotent_posts and request.method == "POST" and request.headers.get(HEADER):
            handler = getattr(self, "post", None)
            if handler is not None:
                self.post = idempotent(self, handler)
        return super().dispatch(request, *args, **kwargs)  # type: ignore[misc]
