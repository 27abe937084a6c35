from celery import shared_task

from webhooks import relay


@shared_task(name="webhooks.drain", ignore_result=True)
def drain() -> int:
    """Process pending webhook events; wake another worker if some are left."""
    handled = relay.drain(time_budget=10.0)
    if handled and relay.pending_exists():
        drain.delay()
    return handled


@shared_task(name="callbacks.relay", ignore_result=True)
def callbacks_relay() -> int:
    """Deliver due partner events; wake another worker if some are still due."""
    from webhooks import partner_delivery

    tried = partner_delivery.relay(time_budget=20.0)
    if tried and partner_delivery.due_exists():
        callbacks_relay.delay()
    return tried
