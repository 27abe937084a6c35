"""Test settings: real PostgreSQL and Redis, as in production."""

import os

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/igdm")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-secret-key-not-for-production-use-0123456789")
os.environ.setdefault("FIELD_ENCRYPTION_KEYS", "ZmRlYnVnLWtleS1mb3ItdGVzdHMtb25seS0xMjM0NTY=")
os.environ.setdefault("CACHE_KEY_PREFIX", "igdm-test")
os.environ.setdefault("ACCOUNT_EMAIL_VERIFICATION", "mandatory")
os.environ.setdefault("META_APP_ID", "100000000000001")
os.environ.setdefault("META_APP_SECRET", "test-meta-app-secret")
os.environ.setdefault("META_INSTAGRAM_APP_ID", "200000000000002")
os.environ.setdefault("META_INSTAGRAM_APP_SECRET", "test-instagram-app-secret")
os.environ.setdefault("META_WEBHOOK_VERIFY_TOKEN", "test-verify-token")

from config.settings.base import *  # noqa: F403
from config.settings.base import DATABASES, REST_FRAMEWORK

DEBUG = False
# One test database per test process, so parallel runs on one machine never share one.
DATABASES["default"]["TEST"] = {
    "NAME": os.environ.get("TEST_DATABASE_NAME", f"test_igdm_{os.getpid()}")
}
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
