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
