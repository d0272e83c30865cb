"""Manifest reading: encoding and dialect detection, header checks, row streaming. Pure."""

import codecs
import io
import json
from pathlib import Path

import pytest

from imports.errors import (
    ManifestEmpty,
    ManifestHeaderInvalid,
    ManifestInvalid,
    ManifestUndecodable,
)
from imports.manifest import (
    CHUNK_BYTES,
    SAMPLE_LINES,
    ManifestFormat,
    detect_format,
    header_check,
    read_rows,
)

HEADER = b"identifier,file_path,title\n"


def detect(data: bytes) -> ManifestFormat:
    return detect_format(io.BytesIO(data))


def rows_of(data: bytes) -> list[tuple[int, list[str]]]:
    raw = io.BytesIO(data)
    return list(read_rows(raw, detect_format(raw)))


def undecodable_detail(data: bytes) -> str:
    with pytest.raises(ManifestUndecodable) as caught:
        detect(data)
    return caught.value.detail


# detect_format: dialect, header and encoding


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_detect_format_finds_the_delimiter(delimiter):
    # given
    lines = ["identifier", "file_path", "title"], ["A1", "a.pdf", "First"], ["A2", "b.pdf", "Two"]
    data = "".join(delimiter.join(cells) + "\n" for cells in lines).encode()

    # when
    found = detect(data)

    # then
    assert found.delimiter == delimiter
    assert found.columns == ("identifier", "file_path", "title")


def test_detect_format_keeps_columns_as_written_and_matches_them_loosely():
    found = detect(b" Identifier ,FILE_PATH,Title,Shelf Mark\nA1,a.pdf,First,S-1\n")

    assert found.columns == (" Identifier ", "FILE_PATH", "Title", "Shelf Mark")
    assert found.keys == ("identifier", "file_path", "title", "shelf mark")


def test_detect_format_strips_a_utf8_bom_from_the_first_header():
    found = detect(codecs.BOM_UTF8 + HEADER + b"A1,a.pdf,First\n")

    assert found.encoding == "utf-8-sig"
    assert found.columns[0] == "identifier"


def test_detect_format_without_bom_reads_plain_utf8():
    assert detect(HEADER + "A1,café.pdf,Über\n".encode()).encoding == "utf-8"


def test_a_quoted_field_after_an_unquoted_sample_is_one_cell():
    # given: a sample (first SAMPLE_LINES lines) without any quote, then a quoted delimiter
    body = "".join(f"A{i},f{i}.pdf,Title {i}\n" for i in range(SAMPLE_LINES + 100))
    data = HEADER + body.encode() + b'LAST,last.pdf,"a, b"\n'

    # when
    found = detect(data)
    last = rows_of(data)[-1]

    # then
    assert found.quotechar == '"'
    assert last == (SAMPLE_LINES + 101, ["LAST", "last.pdf", "a, b"])


@pytest.mark.parametrize("newline", ["\r\n", "\n"])
def test_detect_format_finds_and_keeps_the_line_terminator(newline):
    data = f"identifier,file_path,title{newline}A1,a.pdf,First{newline}".encode()

    found = detect(data)

    assert found.lineterminator == newline
    assert rows_of(data) == [(1, ["A1", "a.pdf", "First"])]


# header_check and detect_format errors


@pytest.mark.parametrize(
    ("columns", "missing"),
    [
        (["identifier", "title"], ["file_path"]),
        (["description"], ["identifier", "file_path", "title"]),
        (["Identifier", "FILE_PATH"], ["title"]),
    ],
)
def test_header_check_lists_every_missing_column(columns, missing):
    with pytest.raises(ManifestHeaderInvalid) as caught:
        header_check(columns)

    assert caught.value.extra["missing"] == missing
    assert all(name in caught.value.detail for name in missing)


def test_header_check_names_a_column_given_twice_whatever_its_case():
    with pytest.raises(ManifestHeaderInvalid) as caught:
        header_check(["identifier", "file_path", "Title", " title ", "author", "AUTHOR"])

    assert caught.value.extra["duplicated"] == ["author", "title"]
    assert caught.value.extra["missing"] == []


def test_header_check_accepts_required_columns_in_any_case_and_order():
    header_check(["TITLE", " file_path", "Identifier ", "extra"])


def test_detect_format_refuses_a_header_without_required_columns():
    with pytest.raises(ManifestHeaderInvalid) as caught:
        detect(b"identifier;author\nA1;Ann\n")

    assert caught.value.extra["missing"] == ["file_path", "title"]


@pytest.mark.parametrize("data", [b"", b"   \n\n \t \r\n"], ids=["empty", "whitespace"])
def test_detect_format_refuses_an_empty_manifest(data):
    with pytest.raises(ManifestEmpty):
        detect(data)


def test_non_utf8_bytes_are_undecodable_and_the_detail_names_the_offset():
    prefix = HEADER + b"A1,a.pdf,Fir"

    detail = undecodable_detail(prefix + b"\xff\xfe\xfa" + b"st\n")

    assert f"offset {len(prefix)}" in detail


def test_nul_bytes_are_undecodable():
    detail = undecodable_detail(HEADER + b"A1,a\x00.pdf,First\n")

    assert "NUL" in detail


def test_undecodable_offset_counts_the_bom():
    prefix = codecs.BOM_UTF8 + HEADER + b"A1"

    detail = undecodable_detail(prefix + b"\xff\n")

    assert f"offset {len(prefix)}" in detail


def test_undecodable_offset_of_a_truncated_final_character():
    prefix = HEADER + b"A1,a.pdf,Caf"

    detail = undecodable_detail(prefix + "é".encode()[:1])

    assert f"offset {len(prefix)}" in detail


def test_undecodable_offset_after_a_character_split_across_chunks():
    prefix = HEADER + b"a" * (CHUNK_BYTES - 1 - len(HEADER)) + "é".encode()

    detail = undecodable_detail(prefix + b"\xff\n")

    assert f"offset {len(prefix)}" in detail


@pytest.mark.parametrize(
    "data",
    [b"", b" \n", HEADER + b"A1,\xff\n", HEADER + b"\x00\n", b"identifier,identifier\n"],
    ids=["empty", "blank", "undecodable", "nul", "header"],
)
def test_a_detail_never_names_the_file_on_disk(tmp_path: Path, data):
    # given
    path = tmp_path / "secret-folder" / "manifest.csv"
    path.parent.mkdir()
    path.write_bytes(data)

    # when
    with path.open("rb") as raw, pytest.raises(ManifestInvalid) as caught:
        detect_format(raw)

    # then
    assert "secret-folder" not in caught.value.detail
    assert str(tmp_path) not in caught.value.detail


# read_rows


def test_blank_lines_are_skipped_and_not_numbered():
    data = HEADER + b"\nA1,a.pdf,First\n,,,\n   \n , ,\nA2,b.pdf,Two\n\n"

    assert rows_of(data) == [(1, ["A1", "a.pdf", "First"]), (2, ["A2", "b.pdf", "Two"])]


def test_blank_lines_before_the_header_are_not_rows():
    assert rows_of(b"\n,,\n" + HEADER + b"A1,a.pdf,First\n") == [(1, ["A1", "a.pdf", "First"])]


def test_quoted_newlines_and_doubled_quotes_come_back_intact():
    data = HEADER + b'A1,a.pdf,"line one\nline two"\nA2,b.pdf,"say ""hi"", then go"\n'

    assert rows_of(data) == [
        (1, ["A1", "a.pdf", "line one\nline two"]),
        (2, ["A2", "b.pdf", 'say "hi", then go']),
    ]


def test_ragged_rows_keep_their_own_number_of_cells():
    data = HEADER + b"A1,a.pdf,First\nA2,b.pdf\nA3,c.pdf,Three,x,y\n"

    assert [len(cells) for _, cells in rows_of(data)] == [3, 2, 5]


# ManifestFormat


def test_manifest_format_round_trips_through_json():
    found = detect(codecs.BOM_UTF8 + b"identifier;file_path;title;Shelf\r\nA1;a.pdf;T;S\r\n")

    restored = ManifestFormat.from_json(json.loads(json.dumps(found.to_json())))

    assert restored == found
    assert restored.columns == ("identifier", "file_path", "title", "Shelf")


@pytest.mark.parametrize(("delimiter", "newline"), [(";", "\r\n"), ("\t", "\n"), ("|", "\r\n")])
def test_writer_writes_in_the_manifest_dialect(delimiter, newline):
    # given
    data = f"identifier{delimiter}file_path{delimiter}title{newline}A1{delimiter}a{delimiter}T"
    found = detect((data + newline).encode())
    out = io.StringIO()

    # when
    found.writer(out).writerow(["A1", f"x{delimiter}y", "plain"])

    # then
    assert out.getvalue() == f'A1{delimiter}"x{delimiter}y"{delimiter}plain{newline}'
