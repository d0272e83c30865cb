"""Self-healing: work that stopped saying it is alive is found and queued again.

Run by Celery beat every IMPORT_RECOVER_EVERY seconds (imports.tasks), on whichever worker
takes it; two at once are safe, since each lost piece of work is claimed by one conditional
write. Two kinds of silence, each IMPORT_BATCH_LOST_AFTER seconds long:

- a batch that was started and stopped beating (its worker killed, its machine lost): it is
  queued again. The commit's checks keep it exactly once even when the silent worker was only
  slow and commits after all (imports.batches);
- a whole import with nothing beating (its count or report was lost, or the messages of its
  batches were): its step is queued again, as a resume would.

Either, repeated more than IMPORT_BATCH_MAX_REQUEUES times, ends the import in error: a row
that kills its worker every time must not loop for ever.
"""

import logging
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone

from .batches import attempt_lost, batch_lost_log, lost_too_often, silent_since
from .lifecycle import import_fail
from .logs import event_on_commit
from .models import Batch, EventKind, Import, ImportEvent, ImportPhase, ImportStatus
from .selectors import batches_lost, imports_stalled
from .signals import batch_ready_on_commit, work_ready_on_commit

logger = logging.getLogger(__name__)


def imports_recover(now: datetime | None = None) -> None:
    """Queue again what stopped beating for IMPORT_BATCH_LOST_AFTER seconds before `now`."""
    now = now or timezone.now()
    since = silent_since(now)
    for batch_id in batches_lost(since):
        batch_recover(batch_id, since, now)
    for import_id in imports_stalled(since):
        import_recover(import_id, since, now)


def batch_recover(batch_id: int, since: datetime, now: datetime) -> None:
    """Queue a batch silent since `since` again, or end its import in error once it was lost
    too often."""
    _batch_requeue(batch_id, now, "queued again", silent_since=since)


def batch_process_lost(batch_id: int, now: datetime | None = None) -> None:
    """Queue again at once a batch whose pool process died: the worker's main process saw it
    (Celery's WorkerLostError), so there is no silence to wait for. Counted as the recovery
    task counts a lost batch, if it had started; a batch whose message died with the process
    before it started is only queued again."""
    _batch_requeue(batch_id, now or timezone.now(), "queued again at once", how="lost its process")


def _batch_requeue(
    batch_id: int,
    now: datetime,
    again_how: str,
    *,
    silent_since: datetime | None = None,
    how: str = "",
) -> None:
    """Count the batch's last attempt as lost (if it started) and queue the batch again, under
    its row lock; past the limit, end its import in error instead.

    With `silent_since`, the loss is its silence: the batch must still be silent since then
    (a second sweep finds nothing to take), and it stands for the import's own silence.
    """
    still_lost = Q(heartbeat_at__lt=silent_since) if silent_since else Q()
    with transaction.atomic():
        batch = (
            Batch.objects.select_for_update(of=("self",))
            .filter(
                still_lost,
                pk=batch_id,
                committed_at__isnull=True,
                import_job__status=ImportStatus.ACTIVE,
                import_job__phase=ImportPhase.IMPORTING,
            )
            .first()
        )
        if batch is None:
            return  # another sweep took it, or it beat, committed or ended meanwhile
        started = batch.heartbeat_at is not None
        again = not started or attempt_lost(batch, now, again_how, how=how)
        if not started:  # its message died before it started: queued again, not counted
            batch_lost_log(batch, f"{how} before it started", requeued=True)
        if silent_since:
            # The import's own silence is this batch's: not a stall to recover a second time.
            Import.objects.filter(pk=batch.import_job_id).update(recovered_at=now)
        if again:
            batch_ready_on_commit(batch.import_job_id, batch.pk)
    if not again:
        import_fail(batch.import_job_id, str(lost_too_often(batch)))


def import_recover(import_id, since: datetime, now: datetime) -> None:
    """Queue again the step of an import that stopped beating as a whole, as a resume would:
    its count, its uncommitted batches, or its report."""
    not_recovered_since = Q(recovered_at__isnull=True) | Q(recovered_at__lt=since)
    with transaction.atomic():
        claimed = Import.objects.filter(
            not_recovered_since,
            pk=import_id,
            status=ImportStatus.ACTIVE,
            heartbeat_at__lt=since,
        ).update(
            recovered_at=now,
            stalls=F("stalls") + 1,
            # A report cut short is written again from the start, by the finish step.
            phase=Case(
                When(phase=ImportPhase.REPORTING, then=Value(ImportPhase.IMPORTING)),
                default=F("phase"),
            ),
        )
        if not claimed:
            return
        job = Import.objects.get(pk=import_id)
        again = job.stalls <= settings.IMPORT_BATCH_MAX_REQUEUES
        ImportEvent.objects.create(
            import_job=job, at=now, kind=EventKind.IMPORT_STALLED, detail=_stall_said(job, again)
        )
        event_on_commit(
            logger,
            "import stalled",
            job.pk,
            phase=job.phase,
            stalls=job.stalls,
            max_stalls=settings.IMPORT_BATCH_MAX_REQUEUES,
            requeued=again,
        )
        if again:
            work_ready_on_commit(job.pk, job.phase)
    if not again:
        import_fail(
            import_id,
            f"the import stopped reporting {job.stalls} times while {job.phase}, with nothing "
            "left running: its worker may be stopping on it (out of memory, a crash, a kill).",
        )


def _stall_said(job: Import, again: bool) -> str:
    silent = int(settings.IMPORT_BATCH_LOST_AFTER)
    if not again:
        return (
            f"nothing reported for {silent} s while {job.phase}, {job.stalls} times; "
            "the import ends in error"
        )
    if job.phase == ImportPhase.COUNTING:
        return f"nothing reported for {silent} s while counting; its rows are counted again"
    if job.phase == ImportPhase.ROLLING_BACK:
        return (
            f"nothing reported for {silent} s while rolling back; the batches not yet rolled "
            "back are queued again"
        )
    return f"nothing reported for {silent} s while {job.phase}; its remaining work is queued again"
