"""The invariants the database itself guards."""

import threading

import pytest
from django.db import IntegrityError, connection, transaction

from imports.errors import AnotherImportOpen
from imports.lifecycle import import_create
from imports.models import Import, ImportStatus


@pytest.mark.django_db
def test_a_second_open_import_is_refused_by_the_database():
    Import.objects.create(batch_size=10, status=ImportStatus.ACTIVE)
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
        finally:
            connection.close()

    threads = [threading.Thread(target=create) for _ in range(16)]
    # when
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
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
