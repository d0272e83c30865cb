"""Tasks pass ids through; a task that fails ends its import in `error`, with a full report."""

import io

import pytest

from imports import batches, tasks
from imports.batches import import_split
from imports.lifecycle import import_create, import_upload
from imports.models import Batch, Document, ImportStatus

from .conftest import csv_bytes, png_bytes

pytestmark = pytest.mark.django_db


def test_a_failing_batch_ends_the_import_in_error_with_every_row_reported(source, monkeypatch):
    # given an import whose second batch will hit a storage failure
    for name in "ab":
        (source / f"{name}.png").write_bytes(png_bytes(name))
    job = import_create(batch_size=1)
    import_upload(
        job, io.BytesIO(csv_bytes("identifier,file_path,title", "A,a.png,A", "B,b.png,B"))
    )
    import_split(str(job.pk))
    first, second = Batch.objects.filter(import_job=job)
    tasks.batch_run_task.apply(args=(str(job.pk), first.pk))

    def disk_full(source, located, name):
        raise OSError(28, "No space left on device", f"/srv/secret/{name}")

    monkeypatch.setattr(batches, "file_copy", disk_full)
    # when
    result = tasks.batch_run_task.apply(args=(str(job.pk), second.pk))
    # then
    assert result.failed()
    job.refresh_from_db()
    assert job.status == ImportStatus.ERROR
    assert job.error == "a batch of rows failed (OSError)."
    assert "/srv" not in job.error
    assert Document.objects.count() == 1
    with job.report.open("rb") as report:
        lines = report.read().decode().splitlines()
    assert [line.split(",")[3] for line in lines[1:]] == ["imported", "not_processed"]
    assert "ended in error" in lines[2]


def test_a_task_for_an_import_that_is_no_longer_active_does_nothing(source):
    job = import_create()
    import_upload(job, io.BytesIO(csv_bytes("identifier,file_path,title", "A,a.png,A")))
    job.status = ImportStatus.CANCELLED
    job.save(update_fields=["status"])
    tasks.import_split_task.apply(args=(str(job.pk),))
    assert not job.rows.exists()
