from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "messaging"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Celery's autodiscovery loads only ``tasks.py``; the history import lives apart.
        from messaging import tasks_backfill, tasks_outbound  # noqa: F401
