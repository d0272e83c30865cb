"""Manifest reading: encoding and dialect detection, header checks, row streaming. Pure."""

import codecs
import io
import json
from pathlib import Path

import clevercsv
import pytest
from clevercsv.dialect import SimpleDialect

from imports.errors import (
    ManifestEmpty,
    ManifestHeaderInvalid,
    ManifestHeaderTooLong,
    ManifestInvalid,
    ManifestMalformed,
    ManifestUndecodable,
)
from imports.manifest import (
    CHUNK_BYTES,
    DELIMITERS,
    MAX_COLUMNS,
    MAX_HEADER_CHARACTERS,
    SAMPLE_BYTES,
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


def bom_codec(bom: bytes) -> str:
    return {codecs.BOM_UTF16_LE: "utf-16-le", codecs.BOM_UTF16_BE: "utf-16-be"}[bom]


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

    assert (found.encoding, found.bom) == ("utf-8", True)
    assert found.columns[0] == "identifier"


def test_detect_format_without_bom_reads_plain_utf8():
    found = detect(HEADER + "A1,café.pdf,Über\n".encode())

    assert (found.encoding, found.bom) == ("utf-8", False)


def test_a_quoted_field_after_an_unquoted_sample_is_one_cell():
    # given: a sample (first SAMPLE_LINES lines) without any quote, then a quoted delimiter
    body = "".join(f"A{i},f{i}.pdf,Title {i}\n" for i in range(SAMPLE_LINES + 100))
    data = HEADER + body.encode() + b'LAST,last.pdf,"a, b"\n'

    # when
    found = detect(data)
    last = rows_of(data)[-1]

    # then
    assert found.delimiter == ","
    assert last == (SAMPLE_LINES + 101, ["LAST", "last.pdf", "a, b"])


@pytest.mark.parametrize("newline", ["\r\n", "\n"])
def test_detect_format_finds_and_keeps_the_line_terminator(newline):
    data = f"identifier,file_path,title{newline}A1,a.pdf,First{newline}".encode()

    found = detect(data)

    assert found.lineterminator == newline
    assert rows_of(data) == [(1, ["A1", "a.pdf", "First"])]


def test_the_line_terminator_is_the_header_s_not_one_inside_a_quoted_field():
    data = b'identifier,file_path,title\nA1,a.pdf,"one\r\ntwo"\n'

    assert detect(data).lineterminator == "\n"


@pytest.mark.parametrize("delimiter", [";", "\t", "|"])
def test_a_header_only_manifest_finds_its_delimiter(delimiter):
    assert detect(delimiter.join(["identifier", "file_path", "title"]).encode()).delimiter == (
        delimiter
    )


def test_the_header_overrules_a_detector_misled_by_the_rows(monkeypatch):
    # given: a detector that picks the commas inside the titles
    data = b"identifier;file_path;title\nA1;a.pdf;x, y, z\n"
    monkeypatch.setattr(
        "clevercsv.Detector.detect", lambda *args, **kwargs: SimpleDialect(",", '"', "")
    )

    # when
    found = detect(data)

    # then
    assert found.delimiter == ";"
    assert rows_of(data) == [(1, ["A1", "a.pdf", "x, y, z"])]


def test_the_detector_is_not_run_when_the_header_alone_decides(monkeypatch):
    # given: a detector that must not be needed, and a header only commas make whole
    def detector_run(*args, **kwargs):
        raise AssertionError("the header alone decides here")

    monkeypatch.setattr("clevercsv.Detector.detect", detector_run)

    # when / then
    assert detect(b"identifier,file_path,title\nA1,a.pdf,T\n").delimiter == ","


@pytest.mark.parametrize("picked", [",", ";"])
def test_a_header_whole_under_two_delimiters_takes_the_detectors_pick(monkeypatch, picked):
    # given: a header with the required columns under both commas and semicolons
    data = b"identifier,file_path,title,notes;identifier;file_path;title\nA1,a.pdf,T,n;B;b;U\n"
    monkeypatch.setattr(
        "clevercsv.Detector.detect", lambda *args, **kwargs: SimpleDialect(picked, '"', "")
    )

    # when / then
    assert detect(data).delimiter == picked


def test_backslashes_are_text_even_when_the_sample_suggests_an_escape_character():
    # given: values with a backslash before a quote, written as a spreadsheet writes them;
    # clevercsv takes the backslash for an escape character
    data = b'identifier,file_path,title\nA1,a\\b.pdf,"say \\""hi\\"""\nA2,b.pdf,"\\""q\\"""\n'
    assert clevercsv.Detector().detect(data.decode(), delimiters=DELIMITERS).escapechar == "\\"

    # when
    rows = rows_of(data)

    # then
    assert rows == [(1, ["A1", "a\\b.pdf", 'say \\"hi\\"']), (2, ["A2", "b.pdf", '\\"q\\"'])]


def test_apostrophes_are_text_even_when_the_sample_suggests_them_as_quotes():
    # given: titles in apostrophes; clevercsv takes the apostrophe for a quote character
    data = b"identifier,file_path,title\nA1,a.pdf,'Hof'\nA2,b.pdf,'Dam'\n"
    assert clevercsv.Detector().detect(data.decode(), delimiters=DELIMITERS).quotechar == "'"

    # when
    rows = rows_of(data)

    # then
    assert rows == [(1, ["A1", "a.pdf", "'Hof'"]), (2, ["A2", "b.pdf", "'Dam'"])]


def test_a_quote_inside_an_unquoted_field_is_text_and_the_next_rows_stay_rows():
    data = HEADER + b'A1,a.pdf,12" vinyl\nA2,b.pdf,3.5" floppy\n'

    assert rows_of(data) == [
        (1, ["A1", "a.pdf", '12" vinyl']),
        (2, ["A2", "b.pdf", '3.5" floppy']),
    ]


# detect_format: a header longer than the sample


def wide_header(columns: int, *, before: tuple[str, ...] = ()) -> list[str]:
    """The required columns, then `before`, then extra ones up to `columns` in all."""
    extras = [f"extra_column_{i}" for i in range(columns - 3 - len(before))]
    return ["identifier", "file_path", "title", *before, *extras]


def wide_manifest(header: list[str], rows: int = 2, newline: str = "\n") -> str:
    """The header, then rows as wide as it whose every cell names its row and column."""
    lines = [",".join(header)]
    for row in range(1, rows + 1):
        extras = [f"r{row}c{column}" for column in range(3, len(header))]
        lines.append(",".join([f"A{row}", f"f{row}.pdf", f"Title {row}", *extras]))
    return newline.join(lines) + newline


def test_a_header_of_8000_columns_is_read_whole_and_so_are_its_rows():
    # given: a header longer than the sample (it once kept the 3,705 columns the sample held)
    header = wide_header(8000)
    text = wide_manifest(header)
    assert len(text.splitlines()[0]) > SAMPLE_BYTES

    # when
    found = detect(text.encode())
    rows = rows_of(text.encode())

    # then
    assert found.columns == tuple(header)
    assert found.lineterminator == "\n"
    assert [number for number, _ in rows] == [1, 2]
    assert rows[1][1][:3] == ["A2", "f2.pdf", "Title 2"]
    assert rows[1][1][3:] == [f"r2c{column}" for column in range(3, 8000)]


def test_a_header_without_line_breaks_longer_than_the_sample_is_read_whole():
    # once cut at SAMPLE_BYTES characters: what remained of it lacked `title`
    data = b"identifier,file_path," + b"x" * SAMPLE_BYTES + b",title"

    assert detect(data).columns == ("identifier", "file_path", "x" * SAMPLE_BYTES, "title")


@pytest.mark.parametrize(
    ("encoding", "bom", "newline"),
    [
        ("utf-8", b"", "\r\n"),
        ("utf-16-le", codecs.BOM_UTF16_LE, "\r\n"),
        ("utf-16-be", codecs.BOM_UTF16_BE, "\n"),
    ],
    ids=["utf-8-crlf", "utf-16-le-crlf", "utf-16-be-lf"],
)
def test_a_long_header_with_a_quoted_line_break_past_the_sample_is_one_record(
    encoding, bom, newline
):
    # given: the header's first line is longer than the sample; a quoted column name after it
    # holds a line break other than the file's, and a row's cell holds one as well
    header = wide_header(8000, before=("note",))
    header[5000] = "first line\nsecond line"
    quoted = [f'"{name}"' if "\n" in name else name for name in header]
    text = wide_manifest(quoted, rows=1, newline=newline).replace("r1c4", '"r1\nc4"')
    assert len(text.split("\n")[0]) > SAMPLE_BYTES
    data = bom + text.encode(encoding)

    # when
    found = detect(data)
    rows = rows_of(data)

    # then
    assert (found.encoding, found.bom, found.lineterminator) == (encoding, bool(bom), newline)
    assert found.columns == tuple(header)
    assert len(rows) == 1
    assert rows[0][1][:5] == ["A1", "f1.pdf", "Title 1", "r1c3", "r1\nc4"]
    assert len(rows[0][1]) == 8000


def test_a_header_of_max_columns_is_accepted():
    found = detect(wide_manifest(wide_header(MAX_COLUMNS), rows=1).encode())

    assert len(found.columns) == MAX_COLUMNS


@pytest.mark.parametrize("columns", [MAX_COLUMNS + 1, 100_000])
def test_a_header_of_more_than_max_columns_is_refused_with_the_limit(columns):
    # given: 100,000 columns once read as a cut header and a column "named more than once"
    data = wide_manifest(wide_header(columns), rows=1).encode()

    # when
    with pytest.raises(ManifestHeaderTooLong) as caught:
        detect(data)

    # then: a 400 (ManifestInvalid) whose detail says how many and the limit
    assert isinstance(caught.value, ManifestInvalid)
    assert caught.value.code == "manifest_header_too_long"
    assert caught.value.detail == (
        f"The manifest header has {columns:,} columns; at most {MAX_COLUMNS:,} are allowed."
    )


def test_a_manifest_without_line_breaks_is_refused_at_the_limit_not_read_whole():
    data = b"identifier,file_path,title," + b"x" * MAX_HEADER_CHARACTERS

    with pytest.raises(ManifestHeaderTooLong) as caught:
        detect(data)

    assert f"within the first {MAX_HEADER_CHARACTERS:,} characters" in caught.value.detail


def header_line_of(length: int) -> tuple[list[str], str]:
    """A header's columns, and its line of `length` characters (line break included), in names
    of about 255 characters, the last one padded to the length."""
    filler = "x" * 250
    count = (length - len("identifier,file_path,title\n")) // len(f",{filler}00000")
    columns = ["identifier", "file_path", "title", *(f"{filler}{i:05d}" for i in range(count))]
    columns[-1] += "y" * (length - len(",".join(columns)) - 1)
    line = ",".join(columns) + "\n"
    assert len(line) == length
    assert len(columns) <= MAX_COLUMNS
    return columns, line


def test_a_header_that_fills_the_limit_exactly_is_read():
    columns, line = header_line_of(MAX_HEADER_CHARACTERS)

    found = detect(line.encode() + b"A1,a.pdf,T\n")

    assert found.columns == tuple(columns)
    assert found.lineterminator == "\n"


def test_a_header_one_character_over_the_limit_is_refused():
    _, line = header_line_of(MAX_HEADER_CHARACTERS + 1)

    with pytest.raises(ManifestHeaderTooLong):
        detect(line.encode() + b"A1,a.pdf,T\n")


def test_a_quote_left_open_in_a_long_manifest_s_header_is_malformed_under_its_delimiter():
    # given: under `;` the header reads whole and finds `title`; under `,` it holds every
    # required column, but its quote swallows the rows. The header is refused for the quote,
    # not for the columns `;` does not find.
    data = b'identifier,file_path,title,"note;title\n' + b"A1,a.pdf,T,v\n" * 20_000

    with pytest.raises(ManifestMalformed) as caught:
        detect(data)

    assert "quote left open" in caught.value.detail


# detect_format: encodings

TITLE = "Café Überweg – ½"
EXCEL_UNICODE_TEXT = f"identifier\tfile_path\ttitle\r\nA1\ta.pdf\t{TITLE}\r\n"


@pytest.mark.parametrize(
    ("data", "encoding", "bom"),
    [
        (EXCEL_UNICODE_TEXT.encode(), "utf-8", False),
        (codecs.BOM_UTF8 + EXCEL_UNICODE_TEXT.encode(), "utf-8", True),
        (codecs.BOM_UTF16_LE + EXCEL_UNICODE_TEXT.encode("utf-16-le"), "utf-16-le", True),
        (codecs.BOM_UTF16_BE + EXCEL_UNICODE_TEXT.encode("utf-16-be"), "utf-16-be", True),
        (EXCEL_UNICODE_TEXT.encode("cp1252"), "cp1252", False),
    ],
    ids=["utf-8", "utf-8-bom", "utf-16-le-excel-unicode-text", "utf-16-be", "windows-1252"],
)
def test_each_encoding_is_detected_and_its_text_arrives_unchanged(data, encoding, bom):
    found = detect(data)

    assert (found.encoding, found.bom) == (encoding, bom)
    assert (found.delimiter, found.lineterminator) == ("\t", "\r\n")
    assert found.columns == ("identifier", "file_path", "title")
    assert rows_of(data) == [(1, ["A1", "a.pdf", TITLE])]


def test_latin1_text_reads_as_windows_1252():
    data = HEADER + "A1,a.pdf,Ça coûte 5 £ ± ¼ «non» ÿ\n".encode("latin-1")

    assert rows_of(data) == [(1, ["A1", "a.pdf", "Ça coûte 5 £ ± ¼ «non» ÿ"])]


def test_windows_1252_after_a_megabyte_of_ascii_is_found():
    body = b"".join(b"A%d,f.pdf,Title\n" % i for i in range(CHUNK_BYTES // 12))
    data = HEADER + body + "Z,z.pdf,Überweg\n".encode("cp1252")

    assert detect(data).encoding == "cp1252"
    assert rows_of(data)[-1][1] == ["Z", "z.pdf", "Überweg"]


def test_text_that_would_be_windows_1252_c1_controls_in_utf8_is_windows_1252():
    # "Â€" in Windows-1252 is C2 80: valid UTF-8, but for U+0080, a control character.
    data = HEADER + "A1,a.pdf,Â€ 5\n".encode("cp1252")

    assert rows_of(data) == [(1, ["A1", "a.pdf", "Â€ 5"])]


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


def test_bytes_neither_utf8_nor_windows_1252_name_the_first_bad_byte_of_each():
    # given: "Á" in UTF-8 holds 0x81, which Windows-1252 leaves undefined; 0xff is never UTF-8
    before_a = HEADER + b"A1,"
    before_ff = before_a + "Á.pdf,x".encode()

    # when
    detail = undecodable_detail(before_ff + b"\xff\n")

    # then
    assert f"UTF-8 text (first bad byte at offset {len(before_ff)})" in detail
    assert f"Windows-1252 text (first bad byte at offset {len(before_a) + 1})" in detail


@pytest.mark.parametrize(
    ("data", "control"),
    [
        (HEADER + b"A1,a\x00.pdf,First\n", "0x00"),
        (HEADER + b"A1,a.pdf,First\x0c\n", "0x0c"),
        (HEADER + "A1,Ä.pdf,\x7f\n".encode("cp1252"), "0x7f"),
    ],
    ids=["nul", "form-feed", "delete-after-windows-1252"],
)
def test_control_characters_are_undecodable_at_their_offset(data, control):
    offset = data.index(bytes([int(control, 16)]))

    detail = undecodable_detail(data)

    assert f"control character {control} at byte offset {offset}" in detail


def test_a_control_character_before_a_bad_byte_in_the_same_chunk_comes_first():
    # UTF-16 without its byte-order mark: a NUL at offset 1, a byte no UTF-8 allows further on.
    data = "identifier,file_path,title\nA1,é,T\n".encode("utf-16-le")

    detail = undecodable_detail(data)

    assert "UTF-8 text (control character 0x00 at byte offset 1)" in detail


@pytest.mark.parametrize(
    "data",
    [
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)),
        b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Length 3 >>\nstream\n\x00\x01\x02",
        b"PK\x03\x04\x14\x00\x06\x00",
    ],
    ids=["png", "pdf", "xlsx"],
)
def test_binary_files_are_undecodable(data):
    assert "control character" in undecodable_detail(data)


def test_undecodable_offset_counts_the_bom():
    prefix = codecs.BOM_UTF8 + HEADER + b"A1"

    detail = undecodable_detail(prefix + b"\xff\n")

    assert "UTF-8 byte-order mark" in detail
    assert f"offset {len(prefix)}" in detail


def test_undecodable_offset_of_a_truncated_final_character():
    prefix = codecs.BOM_UTF8 + HEADER + b"A1,a.pdf,Caf"

    detail = undecodable_detail(prefix + "é".encode()[:1])

    assert f"offset {len(prefix)}" in detail


def test_undecodable_offset_after_a_character_split_across_chunks():
    # given: "é" straddles the first chunk's end; the BOM rules out the Windows-1252 fallback
    filler = b"a" * (CHUNK_BYTES - 1 - len(codecs.BOM_UTF8) - len(HEADER))
    prefix = codecs.BOM_UTF8 + HEADER + filler + "é".encode()

    # when
    detail = undecodable_detail(prefix + b"\xff\n")

    # then
    assert f"offset {len(prefix)}" in detail


@pytest.mark.parametrize("bom", [codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE])
def test_utf16_of_an_odd_number_of_bytes_is_undecodable_at_the_last_byte(bom):
    data = bom + "identifier,file_path,title\n".encode(bom_codec(bom)) + b"x"

    detail = undecodable_detail(data)

    assert "UTF-16 byte-order mark" in detail
    assert f"offset {len(data) - 1}" in detail


def test_utf16_with_a_lone_surrogate_is_undecodable_at_it():
    prefix = codecs.BOM_UTF16_LE + "identifier,file_path,title\nA".encode("utf-16-le")

    detail = undecodable_detail(prefix + b"\x00\xd8,\x00")

    assert f"offset {len(prefix)}" in detail


@pytest.mark.parametrize(
    "data",
    [b"", b" \n", HEADER + b"A1,\x81\n", HEADER + b"\x00\n", b"identifier,identifier\n"],
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


def test_manifest_format_of_an_earlier_shape_still_loads():
    stored = {
        "encoding": "utf-8-sig",
        "delimiter": ";",
        "quotechar": '"',
        "escapechar": "",
        "lineterminator": "\r\n",
        "columns": ["identifier", "file_path", "title"],
    }

    restored = ManifestFormat.from_json(stored)

    assert (restored.encoding, restored.bom, restored.delimiter) == ("utf-8", True, ";")


@pytest.mark.parametrize(
    ("encoding", "bom", "charset", "mark"),
    [
        ("utf-8", False, "utf-8", b""),
        ("utf-8", True, "utf-8", codecs.BOM_UTF8),
        ("utf-16-le", True, "utf-16", codecs.BOM_UTF16_LE),
        ("utf-16-be", True, "utf-16", codecs.BOM_UTF16_BE),
        ("cp1252", False, "windows-1252", b""),
    ],
)
def test_charset_and_byte_order_mark_of_each_encoding(encoding, bom, charset, mark):
    found = ManifestFormat(encoding, bom, ",", "\n", ("identifier", "file_path", "title"))

    assert (found.charset, found.byte_order_mark) == (charset, mark)


@pytest.mark.parametrize(("delimiter", "newline"), [(";", "\r\n"), ("\t", "\n"), ("|", "\r\n")])
def test_line_writes_in_the_manifest_dialect(delimiter, newline):
    found = ManifestFormat("utf-8", False, delimiter, newline, ("identifier", "file_path", "title"))

    line = found.line(["A1", f"x{delimiter}y", 'say "hi"', ""])

    assert line == f'A1{delimiter}"x{delimiter}y"{delimiter}"say ""hi"""{delimiter}{newline}'


@pytest.mark.parametrize(("newline", "other"), [("\n", "\r"), ("\r", "\n"), ("\r\n", "\r")])
def test_line_quotes_a_line_break_the_file_does_not_end_lines_with(newline, other):
    found = ManifestFormat("utf-8", False, ",", newline, ("identifier", "file_path", "title"))
    data = (
        HEADER.replace(b"\n", newline.encode()) + found.line(["A1", "a.pdf", f"a{other}b"]).encode()
    )

    assert rows_of(data) == [(1, ["A1", "a.pdf", f"a{other}b"])]


@pytest.mark.parametrize(
    "data",
    [
        HEADER + b'A1,a.pdf,"x, y"\nA2,"b\nc.pdf",T\n',
        codecs.BOM_UTF8 + b'identifier;file_path;title\r\nA1;a.pdf;"""x"""\r\n',
        codecs.BOM_UTF16_LE + EXCEL_UNICODE_TEXT.encode("utf-16-le"),
        codecs.BOM_UTF16_BE + "identifier|file_path|title\nA1|a|½\n".encode("utf-16-be"),
        "identifier,file_path,title\r\nA1,a.pdf,Café\r\n".encode("cp1252"),
    ],
    ids=["comma", "semicolon-utf-8-bom", "excel-unicode-text", "pipe-utf-16-be", "windows-1252"],
)
def test_rows_written_back_in_the_manifest_format_give_the_same_bytes(data):
    # given
    found = detect(data)

    # when
    lines = [found.line(found.columns)] + [found.line(cells) for _, cells in rows_of(data)]

    # then
    assert found.byte_order_mark + found.encode("".join(lines)) == data


def test_encode_replaces_what_a_legacy_code_page_lacks():
    found = ManifestFormat("cp1252", False, ",", "\n", ("identifier", "file_path", "title"))

    assert found.encode("Café → ok") == "Café ? ok".encode("cp1252")
