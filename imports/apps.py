from django.apps import AppConfig
from django.conf import settings


class ImportsConfig(AppConfig):
    name = "imports"
    verbose_name = "Bulk import"

    def ready(self) -> None:
        # The receivers that queue the work the services announce (imports.signals), in every
        # process: web, worker and commands. Imported here, as Django connects signals: the
        # models must be ready first.
        from . import tasks  # noqa: F401

        for folder in settings.DATA_FOLDERS:
            folder.mkdir(parents=True, exist_ok=True)
