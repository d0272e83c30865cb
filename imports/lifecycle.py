"""State changes of an Import: create, upload, finish, fail, resume, cancel, roll back, delete,
purge.

The database settles every race: the open-import lock is a unique constraint, and each
transition is a conditional UPDATE (or DELETE) from the state it expects, so two callers cannot
both win. Work that follows a change is announced once it is committed (imports.signals).
"""

import hashlib
import logging
import secrets
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import timedelta
from typing import BinaryIO

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import Case, F, Q, TextField, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from .copies import attempt_folders_uncommitted, attempts_sweep, folder_delete
from .errors import (
    AnotherImportOpen,
    ImportAlreadyEnded,
    ImportAlreadyRolledBack,
    ImportNotPending,
    ImportNotResumable,
    ImportStillOpen,
    ManifestDigestMismatch,
    RollbackNotCancellable,
)
from .heartbeats import Heartbeat
from .logs import event, event_on_commit
from .manifest import detect_format
from .models import (
    ENDED_STATUSES,
    OPEN_STATUSES,
    Document,
    Import,
    ImportPhase,
    ImportStatus,
    OnConflict,
)
from .reports import report_delete, report_write, reports_delete
from .selectors import batches_uncommitted, imports_expire_pending
from .signals import ended_on_commit, work_ready_on_commit
from .sources import source_from_settings
from .webhooks import callback_url_check

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Upload:
    manifest: BinaryIO
    sha256: str = ""  # the manifest's SHA-256 its sender expects (hex), or "" when it gave none


def import_create(
    *,
    user=None,
    dry_run: bool = False,
    on_conflict: str = OnConflict.FAIL,
    batch_size: int | None = None,
    callback_url: str = "",
) -> Import:
    """Open a new import, or raise AnotherImportOpen while one is pending or active.

    A callback_url is checked first (webhooks.callback_url_check), and refused unless allowed.
    """
    if callback_url:
        callback_url_check(callback_url)
    imports_expire_pending()
    try:
        with transaction.atomic():
            job = Import.objects.create(
                created_by=user,
                dry_run=dry_run,
                on_conflict=on_conflict,
                batch_size=batch_size or settings.IMPORT_BATCH_SIZE,
                callback_url=callback_url,
            )
            # Whether it has a callback, never its URL: the query may carry a token.
            event_on_commit(
                logger,
                "import created",
                job.pk,
                dry_run=job.dry_run,
                on_conflict=job.on_conflict,
                batch_size=job.batch_size,
                callback=bool(callback_url),
            )
            return job
    except IntegrityError:
        # The one_open_import constraint: the database, not a prior check, decides.
        raise AnotherImportOpen() from None


def import_start(receive: Callable[[], Upload], **options) -> Import:
    """Open an import with `options` (import_create's) and upload its manifest at once, as the
    admin's start page and the import_manifest command do. An upload that does not go through,
    refused or interrupted, cancels the import it opened: it must not hold the one-open-import
    lock until it expires (nor run, once started)."""
    job = import_create(**options)
    try:
        return import_upload(job, receive)
    except BaseException:
        with suppress(ImportAlreadyEnded):  # it ended meanwhile (expired)
            import_cancel(job)
        raise


def import_upload(job: Import, receive: Callable[[], Upload]) -> Import:
    """Check the import can take a manifest, receive it, store it, and start the import.

    `receive` is called only once the import is known to be pending and its source readable,
    so a body that would be refused anyway is not read. A manifest whose SHA-256 differs from
    the one its sender gave is refused; the digest is recorded either way, to prove later
    which manifest ran. The pending timeout is applied when the import is looked up, not again
    here, so an upload that began in time is not refused for the time its body took to arrive.
    """
    job.refresh_from_db()
    if job.status != ImportStatus.PENDING:
        raise ImportNotPending()
    source_from_settings().check()
    upload = receive()
    with upload.manifest as manifest:
        digest = manifest_sha256(manifest)
        if upload.sha256 and upload.sha256 != digest:
            raise ManifestDigestMismatch(
                f"The manifest's SHA-256 is {digest}, not the {upload.sha256} given: it is not "
                "the file you meant, or it changed in transit. Nothing was stored."
            )
        manifest_format = detect_format(manifest)
        stored = File(manifest, name="manifest.csv")
        size = stored.size
        name = default_storage.save(f"manifests/{job.uuid}-{secrets.token_hex(4)}.csv", stored)
    if not _started(job, name, manifest_format.to_json(), digest, size):
        default_storage.delete(name)
        raise ImportNotPending()
    job.refresh_from_db()
    return job


def _started(job: Import, manifest: str, manifest_format: dict, digest: str, size: int) -> bool:
    """Make a pending import active with its manifest, and announce its counting."""
    now = timezone.now()
    with transaction.atomic():
        started = Import.objects.filter(pk=job.pk, status=ImportStatus.PENDING).update(
            status=ImportStatus.ACTIVE,
            phase=ImportPhase.COUNTING,
            manifest=manifest,
            manifest_format=manifest_format,
            manifest_sha256=digest,
            started_at=now,
            heartbeat_at=now,
        )
        if started:
            work_ready_on_commit(job.pk, ImportPhase.COUNTING)
            event_on_commit(
                logger,
                "manifest accepted",
                job.pk,
                bytes=size,
                sha256=digest,
                encoding=manifest_format["encoding"],
                delimiter=manifest_format["delimiter"],
                columns=manifest_format["columns"],
            )
    return bool(started)


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
    with Heartbeat(import_id):  # a million-row report takes a while; it is not lost
        name = report_write(Import.objects.get(pk=import_id))
    reporting = Q(status=ImportStatus.ACTIVE, phase=ImportPhase.REPORTING)
    if not _end(import_id, reporting, ImportStatus.FINISHED, report=name):
        report_delete(name)  # cancelled or failed meanwhile: that end queued a report of its own


def import_fail(import_id: str, reason: str) -> None:
    """End an active import in `error`, with why; its report is written in the background
    (reports.ended_import_report).

    Its uncommitted copies stay: a batch still copying may commit them after a `resume`. They
    are swept when the import finishes, or when it is deleted.
    """
    rolling_back = Q(status=ImportStatus.ACTIVE, phase=ImportPhase.ROLLING_BACK)
    rollback_said = (
        f"the rollback stopped: {reason} Rolled back again, it goes on where it stopped."
    )
    error = Case(
        When(rolling_back, then=Value(rollback_said)),
        default=Value(reason),
        output_field=TextField(),
    )
    _end(import_id, Q(status=ImportStatus.ACTIVE), ImportStatus.ERROR, error=error)


def _end(import_id, expected: Q, status: str, **fields) -> bool:
    """End the import in `status` if it is still as `expected`; announce it once committed."""
    with transaction.atomic():
        ended = Import.objects.filter(expected, pk=import_id).update(
            status=status, phase=ImportPhase.NONE, finished_at=timezone.now(), **fields
        )
        if ended:
            ended_on_commit(import_id, status)
    return bool(ended)


def import_ended_log(import_id, status: str) -> None:
    """Log the end of an import with its figures, read once it is committed (imports.tasks
    connects it to signals.import_ended). A rollback's duration is the rollback's own.

    Sent once the end is committed, where an exception would fail the call that ended it (a
    request's answer): a database gone meanwhile costs the line alone."""
    try:
        job = Import.objects.filter(pk=import_id).first()
    except DatabaseError:
        logger.warning("import %s ended %s; its figures could not be read", import_id, status)
        return
    if job is None:
        return
    if status == ImportStatus.ROLLED_BACK:
        began, ended = job.rollback_started_at, job.rollback_finished_at
        rollback = {
            "documents_deleted": job.documents_deleted,
            "documents_kept": job.documents_kept,
        }
    else:
        began, ended, rollback = job.started_at, job.finished_at, {}
    event(
        logger,
        "import ended",
        import_id,
        status=status,
        dry_run=job.dry_run,
        total_rows=job.total_rows,
        processed_rows=job.processed_rows,
        imported_rows=job.imported_rows,
        skipped_rows=job.skipped_rows,
        failed_rows=job.failed_rows,
        **rollback,
        duration_seconds=(ended - began).total_seconds() if began and ended else None,
        # The operator's words (imports.tasks.failure_reason): never an exception's text.
        **({"error": job.error} if job.error else {}),
    )


def import_resume(job: Import) -> Import:
    """Continue an import that ended in error, or a stale active one, from what is not committed.

    Committed batches stay as they are; the others run again (their earlier copies are swept
    once the import ends), so every row ends exactly once. The report of the end it resumes from
    is removed: the import will have another.
    """
    job.refresh_from_db()
    report_before = job.report.name
    # A split that never finished starts over; otherwise the uncommitted batches are queued.
    phase = ImportPhase.COUNTING if job.total_rows is None else ImportPhase.IMPORTING
    try:
        with transaction.atomic():
            resumed = _resumable(job).update(
                status=ImportStatus.ACTIVE,
                phase=phase,
                error="",
                report="",
                report_error="",
                finished_at=None,
                heartbeat_at=timezone.now(),
                stalls=0,
            )
            if resumed:
                # A batch lost too often gets as many tries again as a new one.
                batches_uncommitted(job.pk).update(requeues=0, heartbeat_at=None)
                work_ready_on_commit(job.pk, phase)
                event_on_commit(logger, "import resumed", job.pk, phase=phase)
    except IntegrityError:
        raise AnotherImportOpen() from None
    if not resumed:
        raise ImportNotResumable()
    if report_before:
        report_delete(report_before)
    job.refresh_from_db()
    return job


def _resumable(job: Import):
    """The import, if it ended in error or is active but stale, and has a manifest; never one
    whose rollback started (its documents are going or gone: it is rolled back again)."""
    stale_before = timezone.now() - timedelta(seconds=settings.IMPORT_STALE_AFTER)
    resumable = Q(status=ImportStatus.ERROR) | Q(
        status=ImportStatus.ACTIVE, heartbeat_at__lt=stale_before
    )
    return Import.objects.filter(resumable, pk=job.pk, rollback_started_at__isnull=True).exclude(
        manifest=""
    )


def import_cancel(job: Import) -> Import:
    """Stop a pending or active import; batches not yet committed will not commit.

    It answers at once: the report, and the sweep of uncommitted copies, are queued. A rollback
    is not cancelled: stopped halfway, it would leave the import neither imported nor undone.
    """
    cancellable = Q(status__in=OPEN_STATUSES) & ~Q(phase=ImportPhase.ROLLING_BACK)
    if not _end(job.pk, cancellable, ImportStatus.CANCELLED):
        job.refresh_from_db()
        if job.phase == ImportPhase.ROLLING_BACK:
            raise RollbackNotCancellable()
        raise ImportAlreadyEnded()
    job.refresh_from_db()
    return job


def import_delete(job: Import) -> None:
    """Remove an ended import with its manifest and report files; its documents stay.

    The DELETE itself is conditional on the import having ended: one resumed meanwhile is not
    deleted, and nothing of it is removed from storage.
    """
    import_id = job.pk  # a deleted instance forgets it
    folders = attempt_folders_uncommitted(import_id)
    with transaction.atomic():
        # One UPDATE, not one per document as the cascade would do it; undone with the rest
        # when the DELETE finds the import open.
        Document.objects.filter(import_job_id=import_id).update(import_job=None)
        Document.objects.filter(created_by_import_id=import_id).update(created_by_import=None)
        ended = Import.objects.select_for_update().filter(pk=import_id, status__in=ENDED_STATUSES)
        deleted, _ = ended.delete()
        if not deleted:
            raise ImportStillOpen()
    for folder in folders:  # what an import that ended in error left uncommitted
        folder_delete(folder)
    for stored in (job.manifest, job.report):
        if stored:
            stored.delete(save=False)
    # Once the import is gone, a report write in flight can no longer be recorded, so it removes
    # its own file; any a failed write left are in the folder too. (`job.report` above is also
    # there, unless it was written under the flat reports/<uuid>.csv of earlier versions.)
    reports_delete(import_id)


def imports_purge(days: int) -> int:
    """Delete ended imports that ended more than `days` ago (retention); documents stay."""
    cutoff = timezone.now() - timedelta(days=days)
    ended = Import.objects.filter(status__in=ENDED_STATUSES).filter(
        Q(finished_at__lt=cutoff) | Q(finished_at__isnull=True, created_at__lt=cutoff)
    )
    purged = 0
    for job in ended.iterator():
        try:
            import_delete(job)
        except ImportStillOpen:  # resumed, or purged by another machine's upkeep meanwhile
            continue
        purged += 1
    return purged


def import_rollback(job: Import) -> Import:
    """Start undoing an ended import: the documents it created are deleted in background batches
    (imports.rollbacks), under the one-open-import lock.

    An import that ended in error while rolling back is rolled back again, going on where it
    stopped. One with nothing imported (a dry run, or no row imported) is rolled back at once.
    Raises AnotherImportOpen while another import holds the lock, ImportAlreadyRolledBack, or
    ImportStillOpen for a pending or active import.
    """
    now = timezone.now()
    ended = Q(status__in=(ImportStatus.FINISHED, ImportStatus.ERROR, ImportStatus.CANCELLED))
    going_on = Q(status=ImportStatus.ERROR, rollback_started_at__isnull=False)
    try:
        with transaction.atomic():
            started = Import.objects.filter(
                ended & (Q(rollback_started_at__isnull=True) | going_on), pk=job.pk
            ).update(
                status=ImportStatus.ACTIVE,
                phase=ImportPhase.ROLLING_BACK,
                rollback_started_at=Coalesce(F("rollback_started_at"), Value(now)),
                heartbeat_at=now,
                stalls=0,
                recovered_at=None,
                # A failed rollback's own error goes; the import's, if it ended in one, stays.
                error=Case(
                    When(going_on, then=Value("")), default=F("error"), output_field=TextField()
                ),
            )
            if started:
                _rollback_announce(job.pk, now)
    except IntegrityError:
        raise AnotherImportOpen() from None
    job.refresh_from_db()
    if not started:
        if job.status == ImportStatus.ROLLED_BACK:
            raise ImportAlreadyRolledBack()
        raise ImportStillOpen(
            "This import is still pending or active: only an ended import can be rolled back."
        )
    return job


def _rollback_announce(import_id, now) -> None:
    """End at once the rollback of an import that imported nothing; otherwise announce its
    batches (in the transaction that started it)."""
    nothing = Import.objects.filter(pk=import_id).filter(Q(dry_run=True) | Q(imported_rows=0))
    if nothing.update(
        status=ImportStatus.ROLLED_BACK, phase=ImportPhase.NONE, rollback_finished_at=now
    ):
        ended_on_commit(import_id, ImportStatus.ROLLED_BACK)
    else:
        work_ready_on_commit(import_id, ImportPhase.ROLLING_BACK)
        event_on_commit(logger, "rollback started", import_id)
