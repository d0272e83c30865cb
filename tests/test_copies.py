"""Copies of rows' files in storage, hashed on the way; reading a file without storing it.

The S3 paths (server-side copy, S3 storage) are in sources/test_s3.py.
"""

import hashlib
from pathlib import Path

import pytest
from django.core.files.storage import default_storage

from imports.copies import file_copy, file_read
from imports.sources.filesystem import FilesystemSource

from .conftest import stored_files

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(3 * 1024 * 1024)


@pytest.fixture
def scan(tmp_path: Path) -> tuple[FilesystemSource, Path]:
    (tmp_path / "source").mkdir()
    (tmp_path / "source" / "scan.png").write_bytes(PNG)
    source = FilesystemSource(tmp_path / "source")
    return source, source.resolve("scan.png")


# On whichever storage this run is configured with: local files, or S3 on the production stack.


def test_a_copy_is_stored_under_its_name_and_hashed_on_the_way(scan):
    stored, facts = file_copy(*scan, "documents/7/00000001-scan.png")

    assert stored == "documents/7/00000001-scan.png"
    with default_storage.open(stored) as copy:
        assert copy.read() == PNG
    assert (facts.sha256, facts.size) == (hashlib.sha256(PNG).hexdigest(), len(PNG))
    assert facts.content_type == "image/png"


def test_a_copy_made_again_overwrites_its_own_earlier_copy(scan):
    file_copy(*scan, "documents/7/00000001-scan.png")

    stored, _ = file_copy(*scan, "documents/7/00000001-scan.png")

    assert stored == "documents/7/00000001-scan.png"
    assert stored_files() == {stored}


def test_reading_hashes_without_storing(scan):
    facts = file_read(*scan)

    assert facts.sha256 == hashlib.sha256(PNG).hexdigest()
    assert stored_files() == set()
