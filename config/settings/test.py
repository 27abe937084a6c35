"""Test settings: real PostgreSQL and Redis, as in production."""

import os

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/igdm")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-secret-key-not-for-production-use-0123456789")
os.environ.setdefault("FIELD_ENCRYPTION_KEYS", "ZmRlYnVnLWtleS1mb3ItdGVzdHMtb25seS0xMjM0NTY=")
os.environ.setdefault("CACHE_KEY_PREFIX", "igdm-test")
os.environ.setdefault("ACCOUNT_EMAIL_VERIFICATION", "mandatory")

from config.settings.base import *  # noqa: F403
from config.settings.base import REST_FRAMEWORK

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.locmem.EmailBackend")
EMAIL_FILE_PATH = os.environ.get("EMAIL_FILE_PATH", "")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
REST_FRAMEWORK = {
    **REST_FRAMEWORK,
    "DEFAULT_THROTTLE_RATES": {"api_key": os.environ.get("API_KEY_RATE", "1000/min")},
}
# Tasks run on the live worker in integration tests; elsewhere they are published for real.
CELERY_TASK_ALWAYS_EAGER = False
