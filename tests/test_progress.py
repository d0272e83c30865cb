"""What the commands show of an import: the plain line, the bar's parts, the exit codes."""

from datetime import UTC, datetime, timedelta

import pytest
from tqdm import tqdm

from imports.management import progress
from imports.models import Import, ImportPhase, ImportStatus

NOW = datetime(2026, 12, 2, 13, 5, 2, tzinfo=UTC)


def an_import(**fields) -> Import:
    """An import as read from the database, never saved: the functions are pure."""
    values = {
        "status": ImportStatus.ACTIVE,
        "phase": ImportPhase.IMPORTING,
        "batch_size": 500,
        "started_at": NOW - timedelta(seconds=2),
        "heartbeat_at": NOW,
    }
    return Import(**{**values, **fields})


def importing(**fields) -> Import:
    figures = {"total_rows": 10_000, "processed_rows": 5000, "imported_rows": 4990}
    return an_import(**{**figures, "skipped_rows": 0, "failed_rows": 10, **fields})


def test_the_line_says_the_phase_rows_counts_rate_and_eta():
    line = progress.progress_line(importing(), NOW)

    assert line == (
        "13:05:02 importing 5000/10000 rows (50.0%): 4990 imported, 0 skipped, 10 failed; "
        "2500 rows/s, ETA 2 s"
    )


def test_while_counting_the_total_is_not_known_and_nothing_is_estimated():
    job = an_import(phase=ImportPhase.COUNTING, total_rows=None)

    line = progress.progress_line(job, NOW)

    assert line == "13:05:02 counting 0/? rows: 0 imported, 0 skipped, 0 failed"


def test_an_ended_import_has_its_rate_but_no_eta():
    job = importing(
        status=ImportStatus.FINISHED,
        phase=ImportPhase.NONE,
        processed_rows=10_000,
        imported_rows=9990,
        finished_at=NOW - timedelta(seconds=1),
        started_at=NOW - timedelta(seconds=5),
    )

    line = progress.progress_line(job, NOW)

    assert line == (
        "13:05:02 finished 10000/10000 rows (100.0%): 9990 imported, 0 skipped, 10 failed; "
        "2500 rows/s"
    )


def test_a_dry_run_counts_valid_rows():
    assert "4990 valid, 0 skipped" in progress.progress_line(importing(dry_run=True), NOW)


def test_a_stale_import_says_no_worker_reports(settings):
    settings.IMPORT_STALE_AFTER = 60
    job = importing(heartbeat_at=NOW - timedelta(seconds=61))

    assert progress.progress_line(job, NOW).endswith("no worker has reported for a while")


def test_a_rollback_shows_its_own_progress():
    job = importing(
        status=ImportStatus.ACTIVE,
        phase=ImportPhase.ROLLING_BACK,
        imported_rows=1000,
        processed_rows=1000,
        skipped_rows=0,
        failed_rows=0,
        total_rows=1000,
        rollback_started_at=NOW - timedelta(seconds=3),
        rollback_rows=300,
        documents_deleted=290,
        documents_kept=10,
    )

    line = progress.progress_line(job, NOW)

    assert line == (
        "13:05:02 rolling back 300/1000 rows (30.0%): 290 deleted, 10 kept; 100 rows/s, ETA 7 s"
    )


def test_a_rolled_back_dry_run_had_nothing_to_go_through():
    job = importing(
        status=ImportStatus.ROLLED_BACK,
        phase=ImportPhase.NONE,
        dry_run=True,
        rollback_started_at=NOW,
        rollback_finished_at=NOW,
    )

    line = progress.progress_line(job, NOW)

    assert line == "13:05:02 rolled back 0/0 rows (100.0%): 0 deleted, 0 kept"


def test_a_pending_import_waits_for_its_manifest():
    job = an_import(status=ImportStatus.PENDING, phase=ImportPhase.NONE, started_at=None)

    assert progress.progress_line(job, NOW) == "13:05:02 pending: waiting for its manifest"


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0.4, "0 s"), (7, "7 s"), (59.6, "1 min 0 s"), (200, "3 min 20 s"), (7500, "2 h 05 min")],
)
def test_durations_read_as_a_person_says_them(seconds, shown):
    assert progress.duration(seconds) == shown


def test_slow_rates_keep_a_decimal():
    job = importing(processed_rows=3, imported_rows=3, failed_rows=0)

    assert "1.5 rows/s" in progress.progress_line(job, NOW)


def test_the_bar_shows_the_imports_own_figures():
    label, done, total, postfix = progress.bar_parts(importing(), NOW)

    shown = tqdm.format_meter(
        done, total, 0, ncols=120, prefix=label, postfix=postfix, bar_format=progress.BAR_FORMAT
    )

    assert shown.startswith("importing:  50.0%|")
    assert shown.endswith(
        "| 5000/10000 rows, 4990 imported, 0 skipped, 10 failed, 2500 rows/s, ETA 2 s"
    )
    assert len(shown) == 120


def test_the_bar_while_counting_has_no_total():
    job = an_import(phase=ImportPhase.COUNTING, total_rows=None)
    label, done, total, postfix = progress.bar_parts(job, NOW)

    shown = tqdm.format_meter(
        done, total, 0, ncols=80, prefix=label, postfix=postfix, bar_format=progress.BAR_FORMAT
    )

    assert shown.startswith("counting:   0.0%|")
    assert shown.endswith("| 0/? rows, 0 imported, 0 skipped, 0 failed")


def test_the_bar_of_a_dry_run_says_so():
    label, *_ = progress.bar_parts(importing(dry_run=True), NOW)

    assert label == "importing (dry run)"


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"status": ImportStatus.FINISHED, "failed_rows": 0}, 0),
        ({"status": ImportStatus.FINISHED, "failed_rows": 0, "skipped_rows": 5}, 0),
        ({"status": ImportStatus.FINISHED, "failed_rows": 1}, 1),
        ({"status": ImportStatus.ERROR}, 2),
        ({"status": ImportStatus.CANCELLED}, 2),
        ({"status": ImportStatus.ROLLED_BACK}, 2),
    ],
)
def test_exit_codes(fields, code):
    assert progress.exit_code(an_import(phase=ImportPhase.NONE, **fields)) == code


@pytest.mark.parametrize(
    ("status", "code"), [(ImportStatus.ROLLED_BACK, 0), (ImportStatus.ERROR, 2)]
)
def test_rollback_exit_codes(status, code):
    job = an_import(status=status, phase=ImportPhase.NONE, rollback_started_at=NOW)

    assert progress.rollback_exit_code(job) == code


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"status": ImportStatus.FINISHED}, "Finished: every row imported or skipped."),
        ({"status": ImportStatus.FINISHED, "failed_rows": 3}, "Finished: 3 row(s) failed"),
        ({"status": ImportStatus.FINISHED, "dry_run": True}, "Dry run finished: every row"),
        ({"status": ImportStatus.ERROR, "error": "the storage is full."}, "in error: the stor"),
        ({"status": ImportStatus.CANCELLED}, "not_processed"),
        (
            {"status": ImportStatus.ERROR, "rollback_started_at": NOW, "error": "x."},
            "The rollback stopped: x.",
        ),
        (
            {"status": ImportStatus.ROLLED_BACK, "documents_deleted": 9, "documents_kept": 1},
            "Rolled back: 9 document(s) deleted, 1 kept",
        ),
    ],
)
def test_the_ending_says_how_it_ended(fields, words):
    assert words in progress.ending(an_import(phase=ImportPhase.NONE, **fields))
