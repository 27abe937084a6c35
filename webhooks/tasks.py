from typing import Any

from celery import shared_task
from django.conf import settings

from webhooks import relay


@shared_task(name="webhooks.drain", ignore_result=True)
def drain() -> int:
    """Process pending webhook events; wake another worker if some are left."""
    handled = relay.drain(time_budget=10.0)
    if handled and relay.pending_exists():
        wake_drainers()
    return handled


DRAIN_QUEUE = "webhooks"


def wake_drainers() -> bool:
    """Publish a ``webhooks.drain`` unless enough already wait in the broker.

    One waiting wake-up per worker that could take it is enough: each drains every pending
    event it can claim. Publishing one per notification instead grows the queue without bound
    under steady traffic (most of them would find nothing left to do). True when one was
    published. Raises when the broker is down (the events wait in the table meanwhile).
    """
    limit = max(1, int(settings.WEBHOOK_DRAIN_WAKEUPS))
    with drain.app.connection_for_write() as conn:
        channel: Any = conn.default_channel
        try:
            _, waiting, _ = channel.queue_declare(queue=DRAIN_QUEUE)
        except Exception:
            # A broker that cannot count its queue: publish, as before there was a bound.
            waiting = 0
    if waiting >= limit:
        return False
    drain.apply_async(retry=False)
    return True


@shared_task(name="callbacks.relay", ignore_result=True)
def callbacks_relay() -> int:
    """Deliver due partner events; wake another worker if some are still due."""
    from webhooks import partner_delivery

    tried = partner_delivery.relay(time_budget=20.0)
    if tried and partner_delivery.due_exists():
        callbacks_relay.delay()
    return tried
