"""Settings of the test project: one app (shop), SQLite in $FAKTORY_TEST_DJANGO_DB, the
Faktory tasks backend on $FAKTORY_URL with two priority queues."""
import os

SECRET_KEY = "test-only"
DEBUG = False
USE_TZ = True
INSTALLED_APPS = ["django_project.shop", "faktory.contrib.django_app"]
try:  # the backport wants its app installed; Django 6 has the framework built in
    import django.tasks.base  # noqa: F401
except ImportError:
    INSTALLED_APPS.insert(0, "django_tasks")
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("FAKTORY_TEST_DJANGO_DB", ":memory:"),
        "CONN_MAX_AGE": 0,
    }
}
TASKS = {
    "default": {
        "BACKEND": "faktory.contrib.django.FaktoryBackend",
        "QUEUES": ["default", "emails"],
        "OPTIONS": {
            "URL": os.environ.get("FAKTORY_URL", "tcp://127.0.0.1:7419"),
            "RETRY": 2,
            "PRIORITY_QUEUES": {"critical": 50, "{queue}.high": 10},
        },
    }
}
