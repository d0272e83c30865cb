"""Celery beat's own app: `celery -A imports.beat beat` sends the recovery and upkeep tasks.

Beat only sends tasks, by name, at their times: the schedule, the queues and the broker come
from the settings, read here without setting Django up. The full app (imports.celery) sets
Django up before it takes a task, loading the admin, DRF and the models: about 50 MiB that beat
would hold for nothing (docs/performance.md). Its logs go through the settings' LOGGING, as every
other process's.
"""

import logging.config
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imports.settings")

from django.conf import settings  # noqa: E402  (after the settings module is named)

logging.config.dictConfig(settings.LOGGING)
# As apps.ready() does in the other processes: the broker's folders, should beat start first.
for folder in settings.DATA_FOLDERS:
    folder.mkdir(parents=True, exist_ok=True)

# No fixups: Celery's Django fixup is what sets Django up.
app = Celery("imports", fixups=[])
app.config_from_object("django.conf:settings", namespace="CELERY")
