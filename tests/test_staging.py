"""The first pass: a manifest staged into rows and batches, a group of rows at a time; a cancel
stops it within a group, and leaves the rest to the background."""

import pytest

from imports import staging
from imports.lifecycle import import_cancel
from imports.models import Import, ImportStatus, Row
from imports.staging import import_split

from .factories import csv_bytes, import_uploaded

pytestmark = pytest.mark.django_db

ROWS = 20
STAGE_ROWS = 4  # per transaction: five groups
HEADER = "identifier,file_path,title,checksum,colour"


@pytest.fixture
def counting(source, monkeypatch) -> Import:
    """An import of ROWS rows, uploaded and counting, staged STAGE_ROWS rows at a time."""
    monkeypatch.setattr(staging, "STAGE_ROWS", STAGE_ROWS)
    lines = [f"D{n},{n}.png,T{n}" for n in range(ROWS)]
    manifest = csv_bytes("identifier,file_path,title", *lines)
    return import_uploaded(manifest, batch_size=2)


def cancel_after_groups(counting: Import, groups: int, monkeypatch) -> list[int]:
    """Cancel the import once `groups` groups are staged; return the rows each group staged."""
    staged = []
    rows_insert = staging.rows_insert

    def stage_then_maybe_cancel(*args, **kwargs):
        inserted = rows_insert(*args, **kwargs)
        staged.append(inserted)
        if len(staged) == groups:
            import_cancel(Import.objects.get(pk=counting.pk))
        return inserted

    monkeypatch.setattr(staging, "rows_insert", stage_then_maybe_cancel)
    return staged


def test_the_first_pass_stops_at_the_next_group_after_a_cancel(counting, monkeypatch):
    # given a cancel that comes once two groups of rows are staged
    staged = cancel_after_groups(counting, 2, monkeypatch)
    # when the first pass runs
    import_split(str(counting.pk))
    # then it staged no group after the cancel, and counted nothing
    assert staged == [STAGE_ROWS, STAGE_ROWS]
    assert Row.objects.filter(import_job=counting).count() == 2 * STAGE_ROWS
    job = Import.objects.get(pk=counting.pk)
    assert (job.status, job.phase, job.total_rows) == (ImportStatus.CANCELLED, "", None)
    assert not job.batches.filter(number__gt=2 * STAGE_ROWS // job.batch_size).exists()


def test_the_first_pass_of_an_import_not_cancelled_stages_every_group(counting, monkeypatch):
    staged = cancel_after_groups(counting, 0, monkeypatch)
    import_split(str(counting.pk))
    assert staged == [STAGE_ROWS] * (ROWS // STAGE_ROWS)
    job = Import.objects.get(pk=counting.pk)
    assert (job.status, job.phase, job.total_rows) == (ImportStatus.ACTIVE, "importing", ROWS)


def test_split_stages_rows_in_batches_and_blank_lines_are_not_rows(source):
    manifest = csv_bytes(HEADER, "A,a,A,,", "", "B,b,B,,", ",,,,", "C,c,C,,", "D,d,D,,", "E,e,E,,")
    job = import_uploaded(manifest, batch_size=2)
    import_split(str(job.pk))
    job.refresh_from_db()
    assert job.total_rows == 5
    assert list(job.batches.values_list("first_row", "last_row")) == [(1, 2), (3, 4), (5, 5)]
    assert list(job.rows.values_list("identifier", flat=True)) == list("ABCDE")


def test_split_run_twice_stages_once(source):
    job = import_uploaded(csv_bytes(HEADER, "A,a,A,,", "B,b,B,,", "C,c,C,,"), batch_size=2)
    import_split(str(job.pk))
    Import.objects.filter(pk=job.pk).update(phase="counting")
    import_split(str(job.pk))
    assert (job.rows.count(), job.batches.count()) == (3, 2)
