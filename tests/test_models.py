"""The invariants the database itself guards."""

import threading
from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from imports.errors import AnotherImportOpen
from imports.lifecycle import import_create
from imports.models import (
    Confidentiality,
    Document,
    Import,
    ImportPhase,
    ImportStatus,
    OnConflict,
    Row,
    RowStatus,
)

from .waiting import on_threads


@pytest.mark.django_db
def test_a_second_open_import_is_refused_by_the_database():
    Import.objects.create(batch_size=10, status=ImportStatus.ACTIVE, phase=ImportPhase.COUNTING)
    with pytest.raises(IntegrityError), transaction.atomic():
        Import.objects.create(batch_size=10, status=ImportStatus.PENDING)


@pytest.mark.django_db
def test_ended_imports_do_not_hold_the_lock():
    for status in (ImportStatus.FINISHED, ImportStatus.ERROR, ImportStatus.CANCELLED):
        Import.objects.create(batch_size=10, status=status)
    Import.objects.create(batch_size=10)
    assert Import.objects.count() == 4


@pytest.mark.django_db
def test_counters_must_add_up():
    job = Import.objects.create(batch_size=10)
    with pytest.raises(IntegrityError), transaction.atomic():
        Import.objects.filter(pk=job.pk).update(processed_rows=2, imported_rows=1)


@pytest.mark.django_db(transaction=True)
def test_sixteen_concurrent_creates_open_exactly_one_import():
    # given sixteen threads released at the same instant
    barrier = threading.Barrier(16)
    outcomes: list[str] = []

    def create() -> None:
        barrier.wait()
        try:
            import_create()
            outcomes.append("created")
        except AnotherImportOpen:
            outcomes.append("refused")

    # when
    assert on_threads(create, 16) == []
    # then
    assert sorted(outcomes) == ["created"] + ["refused"] * 15
    assert Import.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("digest", ["abc", "A" * 64, "g" * 64])
def test_a_manifest_sha256_is_hex_or_nothing(digest):
    job = Import.objects.create(batch_size=10, manifest_sha256="0" * 64)
    with pytest.raises(IntegrityError), transaction.atomic():
        Import.objects.filter(pk=job.pk).update(manifest_sha256=digest)


@pytest.mark.django_db
def test_a_report_error_is_only_for_an_import_without_report():
    job = Import.objects.create(batch_size=10, report_error="the storage is full")
    with pytest.raises(IntegrityError), transaction.atomic():
        Import.objects.filter(pk=job.pk).update(report="reports/x.csv")


def refused(job: Import, **values) -> bool:
    """Whether the database refuses to set `values` on `job` (the UPDATE skips model checks)."""
    try:
        with transaction.atomic():
            Import.objects.filter(pk=job.pk).update(**values)
    except IntegrityError:
        return True
    return False


@pytest.mark.django_db
@pytest.mark.parametrize(
    "values",
    [
        {"status": "paused"},
        {"status": "Pending"},
        {"status": ImportStatus.ACTIVE, "phase": "sleeping"},
        {"on_conflict": "merge"},
        {"batch_size": 0},
    ],
)
def test_an_import_takes_only_the_values_its_choices_name(values):
    job = Import.objects.create(batch_size=10)
    assert refused(job, **values)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "status, phase",
    [
        (ImportStatus.ACTIVE, ImportPhase.NONE),
        (ImportStatus.PENDING, ImportPhase.COUNTING),
        (ImportStatus.FINISHED, ImportPhase.REPORTING),
        (ImportStatus.ERROR, ImportPhase.IMPORTING),
        (ImportStatus.CANCELLED, ImportPhase.COUNTING),
    ],
)
def test_an_import_is_at_a_phase_exactly_while_it_is_active(status, phase):
    job = Import.objects.create(batch_size=10)
    assert refused(job, status=status, phase=phase)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "status, phase",
    [(ImportStatus.ACTIVE, phase) for phase in ImportPhase.values if phase]
    + [(status, ImportPhase.NONE) for status in ImportStatus.values if status != "active"],
)
def test_every_valid_status_and_phase_is_taken(status, phase):
    job = Import.objects.create(batch_size=10)
    rollback = {}
    if status == ImportStatus.ROLLED_BACK:
        now = timezone.now()
        rollback = {"rollback_started_at": now, "rollback_finished_at": now}
    assert not refused(job, status=status, phase=phase, **rollback)


@pytest.mark.django_db
@pytest.mark.parametrize("on_conflict", OnConflict.values)
def test_every_conflict_policy_and_a_batch_of_one_are_taken(on_conflict):
    job = Import.objects.create(batch_size=10)
    assert not refused(job, on_conflict=on_conflict, batch_size=1)


@pytest.mark.django_db
def test_a_row_is_unjudged_or_has_an_outcome_its_choices_name():
    job = Import.objects.create(batch_size=10)
    row = Row.objects.create(import_job=job, number=1, cells=["a"])
    for status in ["", *RowStatus.values]:
        Row.objects.filter(pk=row.pk).update(status=status)
    with pytest.raises(IntegrityError), transaction.atomic():
        Row.objects.filter(pk=row.pk).update(status="lost")


@pytest.mark.django_db
def test_a_document_has_no_confidentiality_or_one_its_choices_name():
    document = Document.objects.create(
        identifier="doc-1",
        title="A document",
        content_type="text/plain",
        size=1,
        sha256="0" * 64,
        file="documents/doc-1.txt",
        file_name="doc-1.txt",
    )
    for confidentiality in ["", *Confidentiality.values]:
        Document.objects.filter(pk=document.pk).update(confidentiality=confidentiality)
    with pytest.raises(IntegrityError), transaction.atomic():
        Document.objects.filter(pk=document.pk).update(confidentiality="top secret")


def test_a_rollbacks_figures_are_its_own_and_it_has_no_eta_once_ended():
    now = timezone.now()
    job = Import(
        status=ImportStatus.ACTIVE,
        phase=ImportPhase.ROLLING_BACK,
        imported_rows=1000,
        rollback_rows=250,
        rollback_started_at=now - timedelta(seconds=10),
    )
    # while it rolls back: its share, rate and time left, from its own rows and start
    assert job.rollback_progress_percent() == 25.0
    assert job.rollback_rows_per_second(now) == 25.0
    assert job.rollback_eta_seconds(now) == 30.0
    # once rolled back: all gone through, the rate over its whole run, nothing left to wait for
    job.status, job.phase = ImportStatus.ROLLED_BACK, ImportPhase.NONE
    job.rollback_rows, job.rollback_finished_at = 1000, now - timedelta(seconds=5)
    assert job.rollback_progress_percent() == 100.0
    assert job.rollback_rows_per_second(now) == 200.0
    assert job.rollback_eta_seconds(now) is None
