"""A dry run: every check of a real run, the same comments, and nothing written."""

import pytest

from imports.models import Document, Import, ImportStatus

from .conftest import stored_files
from .factories import csv_bytes, import_run, png_bytes, scans_in, sha256

pytestmark = pytest.mark.django_db

HEADER = "identifier,file_path,title,created_date,language,checksum,content_type"


def run(manifest: bytes, *, dry_run: bool, on_conflict: str = "fail") -> Import:
    return import_run(manifest, dry_run=dry_run, on_conflict=on_conflict, batch_size=3)


def results(job: Import) -> list[tuple[int, str, str]]:
    return list(job.rows.order_by("number").values_list("number", "status", "comment"))


@pytest.fixture
def messy(source) -> bytes:
    """A manifest with a problem of every kind beside rows that import, and an existing document."""
    scans_in(source, *(f"scans/{name}.png" for name in ("a", "b", "c", "existing", "changed")))
    (source / "scans" / "notes.txt").write_bytes(b"plain text\n")
    (source / "scans" / "folder").mkdir()
    run(csv_bytes(HEADER, "OLD,scans/existing.png,Old,,,,"), dry_run=False)
    (source / "scans" / "existing.png").write_bytes(png_bytes("changed since"))
    return csv_bytes(
        HEADER,
        f"A,scans/a.png,Fine,2020-01-31,nl,{sha256(png_bytes('a'))},image/png",
        "B,scans/b.png,Fine too,,eng,,",
        f"C,scans/c.png,Bad checksum,,,{'0' * 64},",
        "D,scans/missing.png,Missing,,,,",
        "E,../outside.png,Climbs out,,,,",
        "F,scans/folder,A folder,,,,",
        "G,scans/c.png,Bad date and language,2020-02-30,xx,,",
        "A,scans/c.png,Repeated identifier,,,,",
        "H,scans/notes.txt,Not a scan,,,,",
        "I,scans/c.png,Declared PDF,,,,application/pdf",
        "OLD,scans/existing.png,Changed file,,,,",
        ",scans/c.png,,,,,",
        "J,scans/c.png,Ragged,,,,,,extra",
    )


def test_a_dry_run_reports_valid_and_failed_rows_and_writes_nothing(messy):
    documents_before = list(Document.objects.values_list("uuid", "sha256", "updated_at"))
    files_before = stored_files()
    job = run(messy, dry_run=True)
    statuses = [status for _, status, _ in results(job)]
    assert statuses == ["valid", "valid"] + ["failed"] * 11
    assert (job.status, job.total_rows, job.imported_rows, job.failed_rows) == (
        ImportStatus.FINISHED,
        13,
        2,
        11,
    )
    assert list(Document.objects.values_list("uuid", "sha256", "updated_at")) == documents_before
    assert stored_files() == files_before


def test_a_dry_run_fails_the_same_rows_with_the_same_comments_as_the_real_run(messy):
    dry = run(messy, dry_run=True)
    real = run(messy, dry_run=False)
    assert [r for r in results(dry) if r[1] == "failed"] == [
        r for r in results(real) if r[1] == "failed"
    ]
    assert [r[0] for r in results(dry) if r[1] == "valid"] == [
        r[0] for r in results(real) if r[1] == "imported"
    ]
    assert (dry.failed_rows, dry.imported_rows) == (real.failed_rows, real.imported_rows)


def test_a_dry_run_of_an_update_names_the_document_it_would_update(messy):
    existing = Document.objects.get(identifier="OLD")
    job = run(messy, dry_run=True, on_conflict="update")
    assert results(job)[10] == (
        11,
        "valid",
        f"would update document {existing.uuid} (its file differs)",
    )
    assert Document.objects.get(identifier="OLD").sha256 == existing.sha256


def test_a_dry_run_of_an_unchanged_manifest_reports_it_skipped(source):
    scans_in(source, "a.png")
    manifest = csv_bytes(HEADER, "A,a.png,Title,,,,")
    run(manifest, dry_run=False)
    job = run(manifest, dry_run=True)
    [(_, status, comment)] = results(job)
    assert status == "skipped"
    assert "is already imported" in comment
