"""Insert a manifest's rows as Documents with bulk_create, in chunks; print the seconds as JSON.

Run by floor.py in a subprocess, with the service's environment (DATA_DIR, DATABASE_URL), on a
freshly migrated database: the database half of the floor an import is compared with.
"""

import csv
import json
import sys
import time
from pathlib import Path

import django

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
django.setup()

from django.db import transaction  # noqa: E402

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


def insert(manifest: Path, size_bytes: int, chunk_rows: int) -> int:
    inserted, chunk = 0, []
    for document in documents(manifest, size_bytes):
        chunk.append(document)
        if len(chunk) == chunk_rows:
            inserted += _write(chunk)
            chunk = []
    return inserted + _write(chunk)


def _write(chunk: list) -> int:
    with transaction.atomic():
        Document.objects.bulk_create(chunk)
    return len(chunk)


if __name__ == "__main__":
    manifest, size_bytes, chunk_rows = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    started = time.perf_counter()
    rows = insert(manifest, size_bytes, chunk_rows)
    print(json.dumps({"rows": rows, "seconds": time.perf_counter() - started}))
