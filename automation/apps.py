from django.apps import AppConfig


class AutomationConfig(AppConfig):
    name = "automation"
    default_auto_field = "django.db.models.BigAutoField"
    verbose_name = "Automation"

    def ready(self) -> None:
        # Celery finds ``tasks``; the profile sync tasks live beside it.
        from automation import tasks, tasks_profile  # noqa: F401
