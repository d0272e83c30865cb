"""Upkeep, on Celery beat's schedule every IMPORT_UPKEEP_EVERY seconds (imports.tasks).

Pending imports nobody uploaded to expire, ended imports past IMPORT_RETENTION_DAYS go with
their files and staged rows, copies that no attempt will commit are removed, and the staged
cells of ended imports are dropped. Each step is idempotent and safe on two machines at once:
each write is conditional on the state it changes, and a file removed twice is removed once.
"""

from django.conf import settings
from django.db import transaction

from .copies import attempts_stray_sweep
from .lifecycle import imports_purge
from .models import Import, ImportStatus, Row
from .selectors import imports_expire_pending


def upkeep() -> None:
    imports_expire_pending()
    imports_purge(settings.IMPORT_RETENTION_DAYS)
    for import_id in Import.objects.filter(status=ImportStatus.ACTIVE).values_list("pk", flat=True):
        attempts_stray_sweep(import_id)
    staged_cells_drop()


def staged_cells_drop() -> int:
    """Drop the staged cells of finished, cancelled and rolled back imports: none runs a batch
    again (an import in error keeps them, to be resumed). The imports whose cells were dropped."""
    dropped = 0
    done = (ImportStatus.FINISHED, ImportStatus.CANCELLED, ImportStatus.ROLLED_BACK)
    ended = Import.objects.filter(status__in=done, staged_cells_dropped=False)
    for import_id in ended.values_list("pk", flat=True):
        with transaction.atomic():
            claimed = Import.objects.filter(pk=import_id, staged_cells_dropped=False).update(
                staged_cells_dropped=True
            )
            if claimed:
                Row.objects.filter(import_job_id=import_id).exclude(cells=[]).update(cells=[])
                dropped += 1
    return dropped
