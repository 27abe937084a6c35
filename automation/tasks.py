"""Celery tasks of automation: partner bot calls and the sweep of waiting runs."""
