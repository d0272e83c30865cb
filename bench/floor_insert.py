"""Insert a manifest's rows as documents through the database driver; print the seconds as JSON.

Run by floor.py in a subprocess, with the service's environment (DATA_DIR, DATABASE_URL), on a
freshly migrated database: the database half of the floor an import is compared with.

The rows are read and every column's value prepared for the database (as Django's own insert
does: the same columns, the same conversions) before the clock starts. Timed: one `executemany`
of a prepared INSERT per chunk of `chunk_rows` rows, each chunk in a transaction of its own, on
Django's connection, so the same code runs on SQLite and PostgreSQL (see driver_cursor).

With --orm, the table is then emptied (not timed) and the same manifest inserted again as the
floor did before, Document.objects.bulk_create in the same chunks, reading the manifest and
building the models included: what the ORM costs over the driver, for reference.
"""

import csv
import json
import sys
import time
from pathlib import Path

import django

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
django.setup()

from django.db import connection, transaction  # noqa: E402

from imports.models import Document  # noqa: E402


def documents(manifest: Path, size_bytes: int):
    with manifest.open(newline="", encoding="utf-8") as rows:
        for row in csv.DictReader(rows):
            yield Document(
                identifier=row["identifier"],
                title=row["title"],
                created_date=row["created_date"],
                content_type="image/png",
                size=size_bytes,
                sha256=row["checksum"].removeprefix("sha256:"),
                file=f"documents/floor/{row['identifier']}.png",
                file_name=Path(row["file_path"]).name,
                extra={"box": row["box"]},
            )


def chunks(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def prepared(manifest: Path, size_bytes: int) -> tuple[str, list[tuple]]:
    """The INSERT of every concrete column of Document, and each row's values for the driver."""
    fields = Document._meta.concrete_fields
    quote = connection.ops.quote_name
    sql = "INSERT INTO {} ({}) VALUES ({})".format(
        quote(Document._meta.db_table),
        ", ".join(quote(field.column) for field in fields),
        ", ".join(["%s"] * len(fields)),
    )
    rows = [
        tuple(
            field.get_db_prep_save(field.pre_save(document, True), connection) for field in fields
        )
        for document in documents(manifest, size_bytes)
    ]
    return sql, rows


def driver_cursor():
    """A cursor on Django's connection that sends the INSERT once and the values apart.

    SQLite's cursor does (Django's wrapper only turns %s into ?). On PostgreSQL, Django's
    cursors bind on the client (psycopg's ClientCursor: every row becomes a statement with its
    values in it), which took a third longer here (1.5 to 2.2 s for 10,000 rows against 1.2 to
    1.6); psycopg's own Cursor binds on the server and prepares the statement, on the same
    connection, in the same transaction.
    """
    if connection.vendor == "postgresql":
        import psycopg

        return psycopg.Cursor(connection.connection)
    return connection.cursor()


def insert(sql: str, rows: list[tuple], chunk_rows: int) -> int:
    inserted = 0
    for chunk in chunks(rows, chunk_rows):
        with transaction.atomic(), driver_cursor() as cursor:
            cursor.executemany(sql, chunk)
        inserted += len(chunk)
    return inserted


def orm_insert(manifest: Path, size_bytes: int, chunk_rows: int) -> int:
    inserted, chunk = 0, []
    for document in documents(manifest, size_bytes):
        chunk.append(document)
        if len(chunk) == chunk_rows:
            inserted += _orm_write(chunk)
            chunk = []
    return inserted + _orm_write(chunk)


def _orm_write(chunk: list) -> int:
    with transaction.atomic():
        Document.objects.bulk_create(chunk)
    return len(chunk)


def main() -> None:
    manifest, size_bytes, chunk_rows = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    sql, rows = prepared(manifest, size_bytes)
    connection.ensure_connection()
    started = time.perf_counter()
    inserted = insert(sql, rows, chunk_rows)
    figures = {"rows": inserted, "seconds": time.perf_counter() - started}
    if "--orm" in sys.argv[4:]:
        if Document.objects.count() != len(rows):
            sys.exit("floor_insert: the driver's insert did not store every row")
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {connection.ops.quote_name(Document._meta.db_table)}")
        started = time.perf_counter()
        orm_insert(manifest, size_bytes, chunk_rows)
        figures["orm_seconds"] = time.perf_counter() - started
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
