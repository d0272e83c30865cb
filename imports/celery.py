"""The Celery app: `celery -A imports worker` starts one more worker."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imports.settings")

app = Celery("imports")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
