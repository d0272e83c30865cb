"""What the commands show of an import: one plain line, or the parts of a live bar (tqdm), and
the exit code its end gives.

Pure functions of the import as read and of the time, so that they are tested without a
terminal or a database; imports.management.following polls the import and prints them.
"""

from datetime import datetime

from django.utils import timezone

from imports.models import Import, ImportPhase, ImportStatus

# The bar's fields, all from the import rather than tqdm's own estimates: tqdm sees only the
# polls, not when the rows were done. `{postfix}` brings its own leading ", ".
BAR_FORMAT = "{desc}: {percentage:5.1f}%|{bar}| {n}/{total_fmt} rows{postfix}"

EXIT_DONE = 0  # finished, every row imported or skipped (a dry run: every row valid)
EXIT_ROWS_FAILED = 1  # finished, some rows failed
EXIT_ENDED_BADLY = 2  # ended in error, cancelled or rolled back
EXIT_REFUSED = 3  # refused before it started
EXIT_INTERRUPTED = 130  # left at the operator's Ctrl-C, the import going on


def in_rollback(job: Import) -> bool:
    """Whether what matters now is the import's rollback rather than its rows."""
    if job.status == ImportStatus.ACTIVE:
        return job.phase == ImportPhase.ROLLING_BACK
    return job.rollback_started_at is not None


def stage(job: Import) -> str:
    """What the import is doing, or how it ended: "counting", "rolling back", "cancelled"."""
    word = job.phase if job.status == ImportStatus.ACTIVE else job.status
    return word.replace("_", " ")


def done_of_total(job: Import) -> tuple[int, int | None]:
    """Rows done and rows to do (None while they are being counted)."""
    if in_rollback(job):
        # A dry run's imported_rows are its valid rows: it has no documents to go through.
        return job.rollback_rows, 0 if job.dry_run else job.imported_rows
    return job.processed_rows, job.total_rows


def percent(job: Import) -> float | None:
    done, total = done_of_total(job)
    if total is None:
        return None
    return job.rollback_progress_percent() if in_rollback(job) else job.progress_percent()


def rate_and_eta(job: Import, now: datetime) -> tuple[float | None, float | None]:
    """Rows per second and the seconds left, as the import's own figures say (None: unknown)."""
    if in_rollback(job):
        return job.rollback_rows_per_second(now), job.rollback_eta_seconds(now)
    return job.rows_per_second(now), job.eta_seconds(now)


def counts(job: Import) -> str:
    """The outcomes so far: "4990 imported, 0 skipped, 10 failed", or a rollback's."""
    if in_rollback(job):
        return f"{job.documents_deleted} deleted, {job.documents_kept} kept"
    imported = "valid" if job.dry_run else "imported"
    return f"{job.imported_rows} {imported}, {job.skipped_rows} skipped, {job.failed_rows} failed"


def speed(job: Import, now: datetime) -> str:
    """ "2800 rows/s, ETA 2 s", as much of it as is known; "" before the first rows are done."""
    rate, eta = rate_and_eta(job, now)
    parts = []
    if rate is not None:
        parts.append(f"{rate:.0f} rows/s" if rate >= 10 else f"{rate:.1f} rows/s")
    if eta is not None:
        parts.append(f"ETA {duration(eta)}")
    if job.is_stale(now):
        parts.append("no worker has reported for a while")
    return ", ".join(parts)


def duration(seconds: float) -> str:
    """ "7 s", "3 min 20 s", "2 h 05 min"."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def progress_line(job: Import, now: datetime) -> str:
    """One plain line, for a terminal that is not a TTY:
    `13:05:02 importing 5000/10000 rows (50.0%): 4990 imported, 0 skipped, 10 failed; 2800
    rows/s, ETA 2 s`."""
    clock = timezone.localtime(now).strftime("%H:%M:%S")
    if job.status == ImportStatus.PENDING:
        return f"{clock} pending: waiting for its manifest"
    done, total = done_of_total(job)
    of = f"{done}/{'?' if total is None else total} rows"
    if (share := percent(job)) is not None:
        of += f" ({share:.1f}%)"
    line = f"{clock} {stage(job)} {of}: {counts(job)}"
    if rest := speed(job, now):
        line += f"; {rest}"
    return line


def bar_parts(job: Import, now: datetime) -> tuple[str, int, int | None, str]:
    """What the live bar shows: its description, rows done, rows to do (None: not yet known)
    and its postfix, for BAR_FORMAT."""
    done, total = done_of_total(job)
    postfix = counts(job)
    if rest := speed(job, now):
        postfix += f", {rest}"
    label = stage(job)
    if job.dry_run and not in_rollback(job):
        label += " (dry run)"
    return label, done, total, postfix


def ending(job: Import) -> str:
    """How the import ended, in a sentence for the operator."""
    if job.status == ImportStatus.ROLLED_BACK:
        return (
            f"Rolled back: {job.documents_deleted} document(s) deleted, {job.documents_kept} "
            "kept (changed since by a later import, or only updated by this one)."
        )
    if job.status == ImportStatus.ERROR:
        what = "The rollback stopped" if in_rollback(job) else "The import ended in error"
        return f"{what}: {job.error}" if job.error else f"{what}."
    if job.status == ImportStatus.CANCELLED:
        return "Cancelled: the rows not yet processed are reported as not_processed."
    if job.status != ImportStatus.FINISHED:
        return f"The import is {stage(job)}."
    if job.failed_rows:
        return f"Finished: {job.failed_rows} row(s) failed; the report says why."
    if job.dry_run:
        return "Dry run finished: every row is valid. Nothing was stored."
    return "Finished: every row imported or skipped."


def exit_code(job: Import) -> int:
    """The exit code of a command that followed the import to its end."""
    if job.status == ImportStatus.FINISHED:
        return EXIT_ROWS_FAILED if job.failed_rows else EXIT_DONE
    return EXIT_ENDED_BADLY


def rollback_exit_code(job: Import) -> int:
    """The exit code of import_rollback once the rollback it followed has ended."""
    return EXIT_DONE if job.status == ImportStatus.ROLLED_BACK else EXIT_ENDED_BADLY
