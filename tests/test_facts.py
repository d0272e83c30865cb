"""A file's facts: its type sniffed from its first bytes, its digest and size hashed while read."""

import hashlib
import io

import pytest

from imports.facts import HashingReader, sniff_content_type


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
