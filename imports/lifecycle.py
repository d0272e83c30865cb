"""State changes of an Import: create, upload, finish, fail, resume, cancel, delete.

The database settles every race: the open-import lock is a unique constraint, and each
transition is a conditional UPDATE from the state it expects, so two callers cannot both win.
"""

import hashlib
import secrets
from datetime import timedelta
from functools import partial
from typing import BinaryIO

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from . import tasks
from .batches import attempts_sweep, batches_dispatch
from .errors import (
    AnotherImportOpen,
    ImportAlreadyEnded,
    ImportNotPending,
    ImportNotResumable,
    ImportStillOpen,
    ManifestDigestMismatch,
    OptionNotSupported,
)
from .manifest import detect_format
from .models import OPEN_STATUSES, Document, Import, ImportPhase, ImportStatus, OnConflict
from .reports import (
    report_delete,
    report_record,
    report_waits_for_space,
    report_write,
    reports_delete,
)
from .sources import source_from_settings


def import_create(
    *,
    user=None,
    dry_run: bool = False,
    on_conflict: str = OnConflict.FAIL,
    batch_size: int | None = None,
    callback_url: str = "",
) -> Import:
    """Open a new import, or raise AnotherImportOpen while one is pending or active."""
    if callback_url:
        raise OptionNotSupported("callback_url is not supported yet.")
    imports_expire_pending()
    try:
        with transaction.atomic():
            return Import.objects.create(
                created_by=user,
                dry_run=dry_run,
                on_conflict=on_conflict,
                batch_size=batch_size or settings.IMPORT_BATCH_SIZE,
            )
    except IntegrityError:
        # The one_open_import constraint: the database, not a prior check, decides.
        raise AnotherImportOpen() from None


def imports_expire_pending() -> int:
    """Cancel pending imports nobody uploaded to in time, so they stop holding the lock.

    Called before anything reads or changes imports. It writes only when there is something
    to expire, so reads never wait for a writer.
    """
    now = timezone.now()
    cutoff = now - timedelta(seconds=settings.IMPORT_PENDING_TIMEOUT)
    expired = Import.objects.filter(status=ImportStatus.PENDING, created_at__lt=cutoff)
    if not expired.exists():
        return 0
    return expired.update(status=ImportStatus.CANCELLED, finished_at=now)


def import_upload_check(job: Import) -> None:
    """Refuse an upload the import cannot take; the API calls it before reading the body."""
    job.refresh_from_db()
    if job.status != ImportStatus.PENDING:
        raise ImportNotPending()
    source_from_settings().check()


def import_upload(job: Import, manifest: BinaryIO, *, sha256: str = "") -> Import:
    """Check and store the manifest, make the import active and queue its first pass.

    `sha256`, when given, is the manifest's digest as its sender knows it: a manifest that
    differs is refused. The digest is recorded either way, to prove later which manifest ran.
    The pending timeout is applied when the import is looked up, not again here, so an upload
    that began in time is not refused for the time its body took to arrive.
    """
    import_upload_check(job)
    digest = manifest_sha256(manifest)
    if sha256 and sha256 != digest:
        raise ManifestDigestMismatch(
            f"The manifest's SHA-256 is {digest}, not the {sha256} given: it is not the file "
            "you meant, or it changed in transit. Nothing was stored."
        )
    manifest_format = detect_format(manifest)
    name = default_storage.save(
        f"manifests/{job.uuid}-{secrets.token_hex(4)}.csv", File(manifest, name="manifest.csv")
    )
    now = timezone.now()
    with transaction.atomic():
        started = Import.objects.filter(pk=job.pk, status=ImportStatus.PENDING).update(
            status=ImportStatus.ACTIVE,
            phase=ImportPhase.COUNTING,
            manifest=name,
            manifest_format=manifest_format.to_json(),
            manifest_sha256=digest,
            started_at=now,
            heartbeat_at=now,
        )
        if started:
            transaction.on_commit(lambda: tasks.import_split_task.delay(str(job.pk)))
    if not started:
        default_storage.delete(name)
        raise ImportNotPending()
    job.refresh_from_db()
    return job


def manifest_sha256(manifest: BinaryIO) -> str:
    """The manifest's SHA-256 in hex, read from its start; leaves it at its start."""
    manifest.seek(0)
    digest = hashlib.file_digest(manifest, "sha256").hexdigest()
    manifest.seek(0)
    return digest


def import_finish(import_id: str) -> None:
    """Write the report of an import whose batches are all committed, then mark it finished."""
    moved = Import.objects.filter(
        pk=import_id, status=ImportStatus.ACTIVE, phase=ImportPhase.IMPORTING
    ).update(phase=ImportPhase.REPORTING)
    if not moved:
        return  # another worker is finishing it, or it ended otherwise
    attempts_sweep(import_id)
    name = report_write(Import.objects.get(pk=import_id))
    finished = Import.objects.filter(
        pk=import_id, status=ImportStatus.ACTIVE, phase=ImportPhase.REPORTING
    ).update(
        status=ImportStatus.FINISHED,
        phase=ImportPhase.NONE,
        report=name,
        finished_at=timezone.now(),
    )
    if not finished:
        report_delete(name)  # cancelled or failed meanwhile: that end queued a report of its own


def import_fail(import_id: str, reason: str) -> None:
    """End an active import in `error`, with why, and queue its report.

    Its uncommitted copies stay: a batch still copying may commit them after a `resume`. They
    are swept when the import finishes, or when it is deleted.
    """
    with transaction.atomic():
        ended = Import.objects.filter(pk=import_id, status=ImportStatus.ACTIVE).update(
            status=ImportStatus.ERROR,
            phase=ImportPhase.NONE,
            error=reason,
            finished_at=timezone.now(),
        )
        if ended:
            transaction.on_commit(partial(tasks.import_report_task.delay, str(import_id)))


def import_report(import_id: str) -> None:
    """Write the report of an import that ended in error or was cancelled (the report task).

    A cancelled import's uncommitted copies are swept first. Nothing is done for an import
    deleted, resumed or already reported meanwhile. A storage with no space left is said in the
    import's `report_error`, and raised for the task to try again later.
    """
    job = Import.objects.filter(pk=import_id).first()
    if job is None or job.is_open or job.report or not job.manifest:
        return
    if job.status == ImportStatus.FINISHED:
        return  # import_finish writes its own report
    if job.status == ImportStatus.CANCELLED:
        attempts_sweep(job.pk)
    try:
        name = report_write(job)
    except OSError as error:
        if tasks.storage_full(error):
            report_waits_for_space(job)
        raise
    report_record(job, name)


def import_resume(job: Import) -> Import:
    """Continue an import that ended in error, or a stale active one, from what is not committed.

    Committed batches stay as they are; the others run again (their earlier copies are swept),
    so every row ends exactly once. The report of the end it resumes from is removed: the import
    will have another.
    """
    job.refresh_from_db()
    report_before = job.report.name
    now = timezone.now()
    stale_before = now - timedelta(seconds=settings.IMPORT_STALE_AFTER)
    resumable = Q(status=ImportStatus.ERROR) | Q(
        status=ImportStatus.ACTIVE, heartbeat_at__lt=stale_before
    )
    # A split that never finished starts over; otherwise the uncommitted batches are queued.
    phase = ImportPhase.COUNTING if job.total_rows is None else ImportPhase.IMPORTING
    try:
        with transaction.atomic():
            resumed = (
                Import.objects.filter(resumable, pk=job.pk)
                .exclude(manifest="")
                .update(
                    status=ImportStatus.ACTIVE,
                    phase=phase,
                    error="",
                    report="",
                    report_error="",
                    finished_at=None,
                    heartbeat_at=now,
                )
            )
            if resumed:
                transaction.on_commit(partial(_continue, str(job.pk), phase))
    except IntegrityError:
        raise AnotherImportOpen() from None
    if not resumed:
        raise ImportNotResumable()
    if report_before:
        report_delete(report_before)
    job.refresh_from_db()
    return job


def _continue(import_id: str, phase: str) -> None:
    if phase == ImportPhase.COUNTING:
        tasks.import_split_task.delay(import_id)
    else:
        batches_dispatch(import_id)


def import_cancel(job: Import) -> Import:
    """Stop a pending or active import; batches not yet committed will not commit.

    It answers at once: the report, and the sweep of uncommitted copies, are queued.
    """
    with transaction.atomic():
        ended = Import.objects.filter(pk=job.pk, status__in=OPEN_STATUSES).update(
            status=ImportStatus.CANCELLED, phase=ImportPhase.NONE, finished_at=timezone.now()
        )
        if ended:
            transaction.on_commit(partial(tasks.import_report_task.delay, str(job.pk)))
    if not ended:
        raise ImportAlreadyEnded()
    job.refresh_from_db()
    return job


def import_delete(job: Import) -> None:
    """Remove an ended import with its manifest and report files; its documents stay."""
    if job.is_open:
        raise ImportStillOpen()
    attempts_sweep(job.pk)  # what an import that ended in error left uncommitted
    for stored in (job.manifest, job.report):
        if stored:
            stored.delete(save=False)
    import_id = job.pk  # job.delete() forgets it
    with transaction.atomic():
        # One UPDATE, not one per document as the cascade would do it.
        Document.objects.filter(import_job=job).update(import_job=None)
        job.delete()
    # Once the import is gone, a report write in flight can no longer be recorded, so it removes
    # its own file; any a failed write left are in the folder too. (`job.report` above is also
    # there, unless it was written under the flat reports/<uuid>.csv of earlier versions.)
    reports_delete(import_id)


def imports_purge(days: int) -> int:
    """Delete ended imports that ended more than `days` ago (retention); documents stay."""
    cutoff = timezone.now() - timedelta(days=days)
    ended = Import.objects.exclude(status__in=OPEN_STATUSES).filter(
        Q(finished_at__lt=cutoff) | Q(finished_at__isnull=True, created_at__lt=cutoff)
    )
    purged = 0
    for job in ended.iterator():
        import_delete(job)
        purged += 1
    return purged
