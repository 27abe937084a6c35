"""Celery tasks that sync ice breakers and the persistent menu to Meta."""
