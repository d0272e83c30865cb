"""Rows written with one prepared statement read back exactly as the ORM would have written them,
on SQLite and on PostgreSQL alike; the database's own constraints still guard them."""

import uuid
from datetime import UTC, date, datetime

import pytest
from django.db import IntegrityError, transaction

from imports.inserts import rows_insert
from imports.lifecycle import import_create
from imports.models import Document, Row, RowStatus

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 2, 22, 0, tzinfo=UTC)
COLUMNS = [field.attname for field in Document._meta.concrete_fields]


def document_values(identifier: str, job, **changed) -> dict:
    return {
        "uuid": uuid.uuid4(),
        "identifier": identifier,
        "title": f"Ti\u0308tle of {identifier}",
        "description": "",
        "author": "",
        "created_date": date(1951, 2, 2),
        "language": "nld",
        "confidentiality": "public",
        "content_type": "image/png",
        "size": 8192,
        "sha256": "a" * 64,
        "file": f"documents/x/{identifier}.png",
        "file_name": f"{identifier}.png",
        "extra": {"box": "1", "note": 'quote " and \u00fc'},
        "import_job_id": job.pk,
        "created_by_import_id": job.pk,
        "created_at": NOW,
        "updated_at": NOW,
        **changed,
    }


def inserted(*documents: dict) -> int:
    return rows_insert(
        Document, COLUMNS, [[values[name] for name in COLUMNS] for values in documents]
    )


def test_inserted_documents_read_back_as_the_orm_writes_them():
    job = import_create()
    a, b = document_values("A", job), document_values("B", job, created_date=None, extra={})

    assert inserted(a, b) == 2

    stored_a, stored_b = Document.objects.order_by("identifier")
    for name in COLUMNS:
        if name != "file":
            assert getattr(stored_a, name) == a[name], name
    assert stored_a.file.name == a["file"]
    assert (stored_b.created_date, stored_b.extra) == (None, {})
    assert Document.objects.filter(extra__box="1").get() == stored_a, "JSON is stored as JSON"


def test_an_insert_of_no_rows_writes_nothing():
    assert rows_insert(Document, COLUMNS, []) == 0
    assert not Document.objects.exists()


def test_the_database_constraints_still_guard_inserted_rows():
    job = import_create()
    with pytest.raises(IntegrityError), transaction.atomic():
        inserted(document_values("A", job, sha256="not hex"))
    with pytest.raises(IntegrityError), transaction.atomic():
        inserted(document_values("A", job), document_values("A", job))
    assert not Document.objects.exists()


def test_rows_beyond_one_statement_are_all_inserted_and_choices_are_stored_as_their_value():
    job = import_create()
    statuses = [RowStatus.IMPORTED, RowStatus.FAILED, RowStatus.SKIPPED]
    staged = [
        (job.pk, number, f"ID{number}", [f"cell {number}"], statuses[number % 3], f"c{number}")
        for number in range(1, 2001)  # more than SQLite takes in one statement
    ]

    inserted_rows = rows_insert(
        Row, ("import_job", "number", "identifier", "cells", "status", "comment"), staged
    )

    assert inserted_rows == 2000
    stored = list(
        Row.objects.order_by("number").values_list(
            "import_job", "number", "identifier", "cells", "status", "comment"
        )
    )
    assert stored == [(pk, n, i, cells, str(status), c) for pk, n, i, cells, status, c in staged]
