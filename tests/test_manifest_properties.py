"""Properties: manifests in any dialect and encoding legacy systems write are read, and reported,
with every row once, in order, and every value as written.

Manifests are generated here and written by `Manifest.data`, not by the code under test.
"""

import codecs
import io
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from imports.manifest import DELIMITERS, column_key, detect_format, read_rows
from imports.models import Document, Import, RowStatus

from .factories import import_run, png_bytes

REQUIRED = ("identifier", "file_path", "title")
# Python codec, byte-order mark
ENCODINGS = [
    ("utf-8", b""),
    ("utf-8", codecs.BOM_UTF8),
    ("utf-16-le", codecs.BOM_UTF16_LE),
    ("utf-16-be", codecs.BOM_UTF16_BE),
    ("cp1252", b""),
]
# Pieces a legacy value holds: delimiters, quotes, line breaks, spaces, formulas, backslashes.
PIECES = [*DELIMITERS, '"', "'", "\n", "\r\n", "\r", " ", "\\", "=SUM(A1)", "C:\\scans\\", "½"]
# Any character but a control one (tab, CR and LF come in PIECES) or half a surrogate pair.
CHARACTERS = st.characters(blacklist_categories=("Cc", "Cs"))
# Paths of files the pipeline test puts in the source; `\\` separates folders as well as `/`.
FILES = ("scans/a.png", "scans/b.png", "scans\\a.png")
VALUES = st.lists(st.one_of(CHARACTERS, st.sampled_from(PIECES)), max_size=8).map("".join)


@dataclass(frozen=True)
class Manifest:
    encoding: str
    bom: bytes
    delimiter: str
    newline: str
    quote_all: bool
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    blank_line_after: frozenset[int] = frozenset()  # row indexes followed by a blank line

    @property
    def data(self) -> bytes:
        lines = [self._line(self.header)]
        for index, cells in enumerate(self.rows):
            lines.append(self._line(cells))
            if index in self.blank_line_after:
                lines.append(self.newline)
        return self.bom + "".join(lines).encode(self.encoding)

    def _line(self, cells: tuple[str, ...]) -> str:
        return self.delimiter.join(self._field(cell) for cell in cells) + self.newline

    def _field(self, cell: str) -> str:
        special = any(char in cell for char in (self.delimiter, '"', "\r", "\n"))
        return '"' + cell.replace('"', '""') + '"' if self.quote_all or special else cell

    @property
    def read_as(self) -> str:
        """The encoding a reader can tell: ASCII is UTF-8 as much as it is Windows-1252."""
        return "utf-8" if self.encoding == "cp1252" and self.data.isascii() else self.encoding


def spelled(name: str) -> st.SearchStrategy[str]:
    """A required column as a spreadsheet user may spell it: any case, spaces around."""
    spaces = st.sampled_from(["", " ", "  "])
    case = st.sampled_from([str.lower, str.upper, str.title])
    return st.tuples(spaces, case, spaces).map(lambda t: t[0] + t[1](name) + t[2])


def is_extra_column(name: str) -> bool:
    # No required name inside: a header that holds them under two delimiters is ambiguous.
    key = column_key(name)
    return bool(key) and not any(name in key for name in REQUIRED)


@st.composite
def manifests(draw, files: tuple[str, ...] = ()) -> Manifest:
    encoding, bom = draw(st.sampled_from(ENCODINGS))
    required = draw(st.permutations(REQUIRED))
    extras = draw(st.lists(VALUES.filter(is_extra_column), max_size=3, unique_by=column_key))
    header = tuple([draw(spelled(name)) for name in required] + extras)

    def row(cells: list[str]) -> tuple[str, ...]:
        # A row needs a visible identifier, or it would be blank and rightly skipped.
        cells[required.index("identifier")] = draw(VALUES.filter(str.strip))
        if files:
            cells[required.index("file_path")] = draw(st.one_of(st.sampled_from(files), VALUES))
        padding = draw(st.sampled_from([0, 0, 0, 1, 2]))  # empty trailing cells, as Excel pads
        return tuple(cells + [""] * padding)

    rows = draw(st.lists(st.lists(VALUES, min_size=len(header), max_size=len(header)), max_size=6))
    rows = tuple(row(cells) for cells in rows)
    manifest = Manifest(
        encoding=encoding,
        bom=bom,
        delimiter=draw(st.sampled_from(DELIMITERS)),
        newline=draw(st.sampled_from(["\n", "\r\n"])),
        quote_all=draw(st.booleans()),
        header=header,
        rows=rows,
        blank_line_after=frozenset(draw(st.sets(st.integers(0, max(len(rows) - 1, 0))))),
    )
    if encoding == "cp1252":
        assume(is_windows_1252_and_only_that(manifest))
    return manifest


def is_windows_1252_and_only_that(manifest: Manifest) -> bool:
    """Text Windows-1252 can hold, not also UTF-8 (as `Ã©` is): that would be read as UTF-8."""
    try:
        data = manifest.data
    except UnicodeEncodeError:
        return False
    try:
        return data.isascii() or not data.decode("utf-8")
    except UnicodeDecodeError:
        return True


def plain(*, header: tuple[str, ...] = REQUIRED, rows: tuple[tuple[str, ...], ...] = ()):
    """A UTF-8, comma-separated, LF manifest, minimally quoted: for regression examples."""
    return Manifest("utf-8", b"", ",", "\n", False, header, rows)


# The parser


@given(manifests())
@settings(max_examples=100, deadline=None)
# A line break inside a quoted value once set the line terminator of the report.
@example(plain(header=(*REQUIRED, "0\r\n")))
# clevercsv once chose the quote and escape characters: `'`, and `\\` or `§` (any punctuation).
@example(plain(header=(*REQUIRED, "'")))
@example(plain(header=(*REQUIRED, "\\", "0")))
@example(plain(header=(*REQUIRED, "§", "0")))
def test_every_row_is_read_once_in_order_with_its_values_intact(manifest):
    # given
    raw = io.BytesIO(manifest.data)

    # when
    found = detect_format(raw)
    rows = list(read_rows(raw, found))

    # then
    assert (found.encoding, found.bom, found.delimiter, found.lineterminator) == (
        manifest.read_as,
        bool(manifest.bom),
        manifest.delimiter,
        manifest.newline,
    )
    assert found.columns == manifest.header
    assert rows == [(number, list(cells)) for number, cells in enumerate(manifest.rows, start=1)]


@given(manifests())
@settings(max_examples=100, deadline=None)
# csv.writer once left a CR unquoted in a file of LF lines, splitting the row there.
@example(plain(rows=(("0\r", "a.png", ""),)))
def test_rows_written_in_the_detected_format_read_back_the_same(manifest):
    # given
    raw = io.BytesIO(manifest.data)
    found = detect_format(raw)
    rows = [cells for _, cells in read_rows(raw, found)]

    # when
    lines = [found.line(found.columns), *(found.line(cells) for cells in rows)]
    written = io.BytesIO(found.byte_order_mark + found.encode("".join(lines)))

    # then
    assert detect_format(written) == found
    assert [cells for _, cells in read_rows(written, found)] == rows


# The whole pipeline: upload, batches, report


@pytest.fixture
def scans(source) -> None:
    (source / "scans").mkdir()
    for name in ("a.png", "b.png"):
        (source / "scans" / name).write_bytes(png_bytes(name))


@pytest.mark.django_db
@given(manifests(files=FILES))
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@example(plain(rows=(("0\r", FILES[0], ""),)))
def test_the_report_holds_every_row_once_in_order_with_its_values_intact(scans, manifest):
    # given: no import or document left by an earlier example
    Document.objects.all().delete()
    Import.objects.all().delete()
    width = len(manifest.header)

    # when
    job = import_run(manifest.data)

    # then
    with job.report.open("rb") as stored:
        report = io.BytesIO(stored.read())
    found = detect_format(report)
    assert report.getvalue().startswith(manifest.bom)
    assert (found.encoding, found.delimiter, found.lineterminator) == (
        manifest.read_as,
        manifest.delimiter,
        manifest.newline,
    )
    assert found.columns == (*manifest.header, "import_status", "import_comment")
    reported = [cells for _, cells in read_rows(report, found)]
    assert [cells[:width] for cells in reported] == [list(cells[:width]) for cells in manifest.rows]
    assert all(cells[width] in (RowStatus.IMPORTED, RowStatus.FAILED) for cells in reported)
    assert job.total_rows == job.processed_rows == len(manifest.rows)
