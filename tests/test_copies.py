"""A file's type against what is allowed and what its row declares; hashing while copying.

The S3 paths (server-side copy, S3 storage) are in test_sources_s3.py.
"""

import hashlib
import io
from pathlib import Path

import pytest
from django.core.files.storage import default_storage
from hypothesis import given
from hypothesis import strategies as st

from imports.copies import file_copy, file_read
from imports.facts import HashingReader, sniff_content_type
from imports.rows import content_type_problems
from imports.sources.filesystem import FilesystemSource

from .conftest import stored_files

DEFAULT_ALLOWED = ("image/*", "application/pdf")


@pytest.mark.parametrize(
    "sniffed", ["image/png", "image/jpeg", "image/tiff", "image/webp", "application/pdf"]
)
def test_images_and_pdf_are_allowed_by_the_default(sniffed):
    assert content_type_problems(sniffed, "", DEFAULT_ALLOWED) == []


@pytest.mark.parametrize(
    "sniffed", ["text/plain", "application/zip", "application/octet-stream", "video/mp4"]
)
def test_a_type_outside_the_allowed_ones_is_a_problem(sniffed):
    problems = content_type_problems(sniffed, "", DEFAULT_ALLOWED)

    assert problems == [f"the file's type is {sniffed}, which is not allowed here"]


@pytest.mark.parametrize(
    ("sniffed", "allowed", "problem_count"),
    [
        ("image/png", ["image/png"], 0),
        ("image/png", ["IMAGE/PNG"], 0),
        ("IMAGE/PNG", ["image/*"], 0),
        ("image/png", [" image/* "], 0),
        ("image/png", ["*/*"], 0),
        ("image/png", ["image/jpeg", "application/pdf"], 1),
        ("image/png", ["imag/*"], 1),
        ("application/pdf", ["image/*"], 1),
        ("image/png", ["image"], 1),
        ("image/png", [""], 1),
        ("image/png", [], 1),
    ],
)
def test_allowed_entries_are_exact_types_or_wildcards_in_any_case(sniffed, allowed, problem_count):
    assert len(content_type_problems(sniffed, "", allowed)) == problem_count


def test_a_declared_type_that_differs_from_the_sniffed_one_is_a_problem():
    problems = content_type_problems("image/png", "application/pdf", DEFAULT_ALLOWED)

    assert problems == ["content_type says application/pdf but the file is image/png"]


def test_the_declared_type_is_quoted_trimmed_as_the_row_wrote_it():
    problems = content_type_problems("image/png", "  Image/JPEG; q=1 ", DEFAULT_ALLOWED)

    assert problems == ["content_type says Image/JPEG; q=1 but the file is image/png"]


@pytest.mark.parametrize(
    "declared", ["image/png", "IMAGE/PNG", " image/png ", "image/png; charset=binary", "", "  "]
)
def test_a_declared_type_matching_after_case_space_and_parameters_is_no_problem(declared):
    assert content_type_problems("image/png", declared, DEFAULT_ALLOWED) == []


def test_a_file_neither_allowed_nor_as_declared_has_both_problems():
    problems = content_type_problems("text/plain", "application/pdf", DEFAULT_ALLOWED)

    assert problems == [
        "the file's type is text/plain, which is not allowed here",
        "content_type says application/pdf but the file is text/plain",
    ]


def test_a_wildcard_does_not_excuse_a_declared_type_that_differs():
    problems = content_type_problems("image/png", "image/*", DEFAULT_ALLOWED)

    assert problems == ["content_type says image/* but the file is image/png"]


token = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789.+-", min_size=1, max_size=12)


@given(kind=token, subtype=token, parameters=st.sampled_from(["", "; charset=utf-8", ";a=b"]))
def test_a_type_declared_in_any_case_with_parameters_matches_itself(kind, subtype, parameters):
    sniffed = f"{kind}/{subtype}"
    declared = f" {kind.upper()}/{subtype.title()}{parameters} "

    assert content_type_problems(sniffed, declared, [f"{kind}/*"]) == []


@given(kind=token, subtype=token, other=token)
def test_a_wildcard_allows_its_own_kind_only(kind, subtype, other):
    problems = content_type_problems(f"{kind}/{subtype}", "", [f"{other}/*"])

    assert len(problems) == (0 if kind == other else 1)


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "image/png"),
        (b"%PDF-1.4\n%%EOF\n", "application/pdf"),
        (b"II*\x00\x08\x00\x00\x00" + bytes(8), "image/tiff"),
        (b"MM\x00*\x00\x00\x00\x08" + bytes(8), "image/tiff"),
        (b"plain text, not a scan\n", "application/octet-stream"),
        (b"", "application/octet-stream"),
    ],
)
def test_the_type_is_sniffed_from_the_first_bytes(head, expected):
    assert sniff_content_type(head) == expected


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


def test_a_hashing_reader_starts_over_when_rewound_to_the_start():
    reader = HashingReader(io.BytesIO(b"abcdef"))
    reader.read(3)

    reader.seek(0)

    assert reader.read() == b"abcdef"
    assert reader.facts().sha256 == hashlib.sha256(b"abcdef").hexdigest()


def test_a_hashing_reader_refuses_to_skip_bytes_and_says_it_cannot_seek():
    # An uploader that believed it could seek would jump to the end for a size, unhashed.
    reader = HashingReader(io.BytesIO(b"abcdef"))

    assert not reader.seekable()
    with pytest.raises(OSError):
        reader.seek(0, io.SEEK_END)
    assert reader.read() == b"abcdef"


def test_a_hashing_reader_is_closed_when_its_file_is():
    raw = io.BytesIO(b"abc")
    reader = HashingReader(raw)
    assert not reader.closed

    raw.close()

    assert reader.closed
