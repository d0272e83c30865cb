"""Reading manifests: encoding and dialect detection, header checks, row streaming.

The dialect is detected with clevercsv on a sample of whole lines (detecting on a whole file of
millions of rows takes minutes); the header is read whole, however far past the sample it goes,
up to a bound; the rows are then streamed, so no manifest sits in memory.
"""

import codecs
import csv
import io
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO, TextIO

import clevercsv

from .errors import (
    ManifestEmpty,
    ManifestHeaderInvalid,
    ManifestHeaderTooLong,
    ManifestInvalid,
    ManifestMalformed,
    ManifestUndecodable,
)

REQUIRED_COLUMNS = ("identifier", "file_path", "title")
DELIMITERS = (",", ";", "\t", "|")
# Spreadsheets and legacy systems quote RFC 4180 style: `"` around a field, doubled inside it.
# A quote or escape character guessed from a sample is more often an apostrophe in a name or a
# backslash in a Windows path than a dialect, and would corrupt those values, so neither is guessed.
QUOTECHAR = '"'
# The Python codecs a manifest may be in, with their HTTP charset. A byte-order mark, when a file
# has one, is kept apart from the codec, so that the report can write it back.
CHARSETS = {
    "utf-8": "utf-8",
    "utf-16-le": "utf-16",  # "utf-16" and not "utf-16le": that label says there is no mark
    "utf-16-be": "utf-16",
    "cp1252": "windows-1252",
}
NAMES = {"utf-8": "UTF-8", "utf-16-le": "UTF-16", "utf-16-be": "UTF-16", "cp1252": "Windows-1252"}
BOM_ENCODINGS = ("utf-8", "utf-16-le", "utf-16-be")
# Tried in order on a file without a byte-order mark. Windows-1252 decodes Latin-1 text too, and
# leaves undefined only five bytes that no text uses.
GUESSED_ENCODINGS = ("utf-8", "cp1252")
# Control characters other than tab, CR and LF: no manifest holds them, and they are what gives a
# binary file away once a single-byte code page has decoded its bytes into characters.
CONTROL_CHARACTER = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
SAMPLE_BYTES = 64 * 1024
SAMPLE_LINES = 2000
# The header is read whole, not from the sample, but not without bound: it sits in memory, once
# per candidate delimiter, and every document's `extra` holds a key per column past the known
# ones. Excel and LibreOffice Calc hold at most 16,384 columns; the limit leaves room above that
# for the two columns a report adds, so that a report can be uploaded again.
MAX_COLUMNS = 20_000
# What the header may take of the file, blank lines before it included: 4 Mi characters, about
# 200 a column at MAX_COLUMNS. A file without line breaks, or with a quote left open in the
# header, is refused once it is read this far, instead of being read whole into memory.
MAX_HEADER_CHARACTERS = 4 * 1024 * 1024
CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class ManifestFormat:
    """How a manifest is written: enough to read it again and to write its report alike."""

    encoding: str  # a key of CHARSETS
    bom: bool  # the file starts with a byte-order mark
    delimiter: str
    lineterminator: str
    columns: tuple[str, ...]

    @classmethod
    def from_json(cls, data: dict) -> "ManifestFormat":
        # Imports stored before the byte-order mark had its own field name "utf-8-sig".
        encoding = data["encoding"]
        return cls(
            encoding=encoding.removesuffix("-sig"),
            bom=data.get("bom", encoding.endswith("-sig")),
            delimiter=data["delimiter"],
            lineterminator=data["lineterminator"],
            columns=tuple(data["columns"]),
        )

    def to_json(self) -> dict:
        return {
            "encoding": self.encoding,
            "bom": self.bom,
            "delimiter": self.delimiter,
            "lineterminator": self.lineterminator,
            "columns": list(self.columns),
        }

    @property
    def keys(self) -> tuple[str, ...]:
        """The columns as matched: trimmed and case-folded."""
        return tuple(column_key(name) for name in self.columns)

    @property
    def charset(self) -> str:
        """The HTTP charset of a file in this format; `utf-16` says a byte-order mark leads."""
        return CHARSETS[self.encoding]

    @property
    def byte_order_mark(self) -> bytes:
        return byte_order_mark(self.encoding) if self.bom else b""

    def line(self, cells: Iterable[str]) -> str:
        """One record in the manifest's dialect, quoting only the cells that need it.

        Not csv.writer: before Python 3.13 it leaves a CR unquoted in a file of LF lines (and an
        LF in a file of CR lines), and a reader then splits the record there.
        """
        return self.delimiter.join(self._field(cell) for cell in cells) + self.lineterminator

    def encode(self, text: str) -> bytes:
        """Text in the manifest's encoding, without byte-order mark.

        Values always encode, having been decoded from this encoding; a comment in characters
        a legacy code page lacks gets `?` for them rather than stopping the report.
        """
        return text.encode(self.encoding, errors="replace")

    def _field(self, cell: str) -> str:
        if any(char in cell for char in (self.delimiter, QUOTECHAR, "\r", "\n")):
            return QUOTECHAR + cell.replace(QUOTECHAR, QUOTECHAR * 2) + QUOTECHAR
        return cell


def column_key(name: str) -> str:
    return name.strip().casefold()


def byte_order_mark(encoding: str) -> bytes:
    return "\ufeff".encode(encoding)


def is_blank(cells: Sequence[str]) -> bool:
    return not any(cell.strip() for cell in cells)


def without_padding(cells: Sequence[str], width: int) -> Sequence[str]:
    """A row's cells without the empty ones past the header, which spreadsheets pad rows with."""
    if len(cells) > width and not any(cell.strip() for cell in cells[width:]):
        return cells[:width]
    return cells


@dataclass(frozen=True)
class _BadByte:
    offset: int  # from the start of the file
    control: str = ""  # the control character the bytes decoded to, if they decoded

    def __str__(self) -> str:
        if self.control:
            return f"control character 0x{ord(self.control):02x} at byte offset {self.offset}"
        return f"first bad byte at offset {self.offset}"


def detect_encoding(raw: BinaryIO) -> tuple[str, bool]:
    """Name the manifest's encoding and whether a byte-order mark leads; refuse what is not text.

    A byte-order mark decides (UTF-8, UTF-16 LE or BE); without one, the first of UTF-8 and
    Windows-1252 in which the whole file is text wins. Each try decodes the whole file strictly,
    in chunks.
    """
    head = raw.read(len(codecs.BOM_UTF8))
    raw.seek(0)
    if not head:
        raise ManifestEmpty()
    marked = next((e for e in BOM_ENCODINGS if head.startswith(byte_order_mark(e))), None)
    failures = []
    for encoding in (marked,) if marked else GUESSED_ENCODINGS:
        start = len(byte_order_mark(encoding)) if marked else 0
        bad = _first_bad_byte(raw, encoding, start=start)
        if bad is None:
            return encoding, bool(marked)
        failures.append(f"{NAMES[encoding]} text ({bad})")
    if marked:
        raise ManifestUndecodable(
            f"The manifest starts with a {NAMES[marked]} byte-order mark but is not {failures[0]}."
        )
    raise ManifestUndecodable(f"The manifest is neither {' nor '.join(failures)}.")


def _first_bad_byte(raw: BinaryIO, encoding: str, *, start: int) -> _BadByte | None:
    """Decode the file from `start` strictly, a chunk at a time; where does it stop being text?"""
    decoder = codecs.getincrementaldecoder(encoding)()
    raw.seek(start)
    offset = start  # where the next chunk starts in the file
    try:
        while True:
            chunk = raw.read(CHUNK_BYTES)
            # The text decoded next begins at the bytes the decoder still holds from before.
            text_start = offset - len(decoder.getstate()[0])
            undecodable_at = None
            try:
                text = decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                # The text before the bad byte may hold a control character, which comes first.
                text = exc.object[: exc.start].decode(encoding)
                undecodable_at = text_start + exc.start
            if control := CONTROL_CHARACTER.search(text):
                before = text[: control.start()].encode(encoding)
                return _BadByte(text_start + len(before), control.group())
            if undecodable_at is not None:
                return _BadByte(undecodable_at)
            if not chunk:
                return None
            offset += len(chunk)
    finally:
        raw.seek(0)


def open_text(raw: BinaryIO, encoding: str, *, bom: bool) -> TextIO:
    """The manifest as text from its start, past any byte-order mark."""
    raw.seek(len(byte_order_mark(encoding)) if bom else 0)
    # newline="" keeps line breaks inside quoted fields for the csv reader to handle.
    return io.TextIOWrapper(raw, encoding=encoding, newline="")


def _reader(lines: Iterable[str], delimiter: str):
    """A csv reader with RFC 4180 quoting; blank records are the caller's to skip.

    Not clevercsv's reader: it takes a `"` inside an unquoted field (`12" vinyl`) as the start
    of a quoted one, and swallows the rest of the file into it; the stdlib keeps it as text.
    """
    return csv.reader(lines, delimiter=delimiter, quotechar=QUOTECHAR, doublequote=True)


def _sample(text: TextIO) -> list[str]:
    """The first lines, cut at SAMPLE_BYTES characters even within a line.

    A file without line breaks is one line: read whole, it would sit in memory.
    """
    lines = []
    size = 0
    while (
        size < SAMPLE_BYTES
        and len(lines) < SAMPLE_LINES
        and (line := text.readline(SAMPLE_BYTES - size))
    ):
        lines.append(line)
        size += len(line)
    return lines


def _sample_header(lines: list[str], delimiter: str) -> list[str]:
    """The first non-blank record of the sample: the header, or as much of it as the sample holds.

    Only to rank a delimiter under which the whole header could not be read.
    """
    reader = _reader(lines, delimiter)
    return next((cells for cells in reader if not is_blank(cells)), [])


@dataclass(frozen=True)
class _Header:
    cells: list[str]
    lineterminator: str  # how the line that ends the header ends


def _bounded_lines(text: TextIO, limit: int) -> Iterator[str]:
    """The file's lines from its start, each whole; raise once they add up to over `limit`.

    A line is never handed on cut short: the csv reader would end the record there.
    """
    left = limit
    while line := text.readline(left + 1):
        if len(line) > left:
            raise ManifestHeaderTooLong(
                f"The manifest header does not end within the first {limit:,} characters of the "
                "file, the most a header may take (is a quote left open, or are there no line "
                "breaks?)."
            )
        left -= len(line)
        yield line


def _header(raw: BinaryIO, encoding: str, bom: bool, delimiter: str) -> _Header:
    """The first non-blank record of the file, read whole, up to MAX_HEADER_CHARACTERS.

    The last line of a file may not end at all: it then counts as ending in LF.
    """
    text = open_text(raw, encoding, bom=bom)
    lines: list[str] = []  # the header's, and the blank ones before it
    try:
        for cells in _reader(_kept(_bounded_lines(text, MAX_HEADER_CHARACTERS), lines), delimiter):
            if not is_blank(cells):
                ending = lines[-1][len(lines[-1].rstrip("\r\n")) :] or "\n"
                return _Header(cells, ending)
        return _Header([], "\n")
    except csv.Error:
        # With newline="" and no control characters, only a field over the csv module's limit.
        raise ManifestMalformed(
            f"The manifest header holds a field longer than {csv.field_size_limit():,} "
            "characters (is a quote left open?)."
        ) from None
    finally:
        text.detach()
        raw.seek(0)


def _kept(lines: Iterable[str], into: list[str]) -> Iterator[str]:
    """The lines, each also appended to `into` as it is handed on."""
    for line in lines:
        into.append(line)
        yield line


def _candidates(lines: list[str]) -> tuple[str, ...]:
    """The delimiters to try: clevercsv's pick on the sample first, then the others."""
    detected = clevercsv.Detector().detect("".join(lines), delimiters=DELIMITERS)
    picked = (detected.delimiter,) if detected and detected.delimiter else ()
    return tuple(dict.fromkeys(picked + DELIMITERS))


def _delimiter_and_header(
    raw: BinaryIO, encoding: str, bom: bool, lines: list[str]
) -> tuple[str, _Header]:
    """clevercsv's pick, unless another delimiter finds more required columns in the header.

    A sample of few rows, or of rows that hold other delimiters in their values, can mislead
    the detector; the header is what a valid manifest always has, so it has the last word. It is
    read whole under each delimiter, since where a quoted field, and so the header, ends depends
    on the delimiter. A header that cannot be read whole under a delimiter (a quote left open,
    no line breaks) ranks by what the sample holds of it, after a readable one that finds as
    many, and is refused if it ranks first: the delimiter that finds the required columns names
    the problem, not another one.
    """
    ranked = []
    for delimiter in _candidates(lines):
        try:
            header: _Header | ManifestInvalid = _header(raw, encoding, bom, delimiter)
            cells = header.cells
        except ManifestInvalid as exc:
            header, cells = exc, _sample_header(lines, delimiter)
        unreadable = isinstance(header, ManifestInvalid)
        ranked.append(((len(missing_columns(cells)), unreadable), delimiter, header))
    _, delimiter, header = min(ranked, key=lambda candidate: candidate[0])
    if isinstance(header, ManifestInvalid):
        raise header
    return delimiter, header


def detect_format(raw: BinaryIO) -> ManifestFormat:
    """Detect encoding, dialect and header of a manifest, and check the header.

    Raises a ManifestInvalid subclass with a plain-words detail; leaves `raw` at its start.
    """
    encoding, bom = detect_encoding(raw)
    text = open_text(raw, encoding, bom=bom)
    try:
        lines = _sample(text)
    finally:
        text.detach()
        raw.seek(0)
    if not any(line.strip() for line in lines):
        raise ManifestEmpty()
    delimiter, header = _delimiter_and_header(raw, encoding, bom, lines)
    header_check(header.cells)
    manifest_format = ManifestFormat(
        encoding=encoding,
        bom=bom,
        delimiter=delimiter,
        lineterminator=header.lineterminator,
        columns=tuple(header.cells),
    )
    rows_check(raw, manifest_format)
    return manifest_format


def rows_check(raw: BinaryIO, manifest_format: ManifestFormat) -> None:
    """Read every row once, so that a quote never closed is refused now, not found mid-import.

    Only a sample was parsed to find the dialect; one pass over the rest is what makes counting,
    batches and the report certain to read the whole file. Leaves `raw` at its start.
    """
    text = open_text(raw, manifest_format.encoding, bom=manifest_format.bom)
    records = 0  # the header is record 1
    try:
        for cells in _reader(text, manifest_format.delimiter):
            records += not is_blank(cells)
    except csv.Error as exc:
        raise ManifestMalformed(
            f"The manifest is not well-formed CSV after row {max(records - 1, 0)}: {exc} "
            "(is a quote left open?)."
        ) from None
    finally:
        text.detach()  # the caller still stores `raw`
        raw.seek(0)


def missing_columns(columns: Sequence[str]) -> list[str]:
    keys = {column_key(name) for name in columns}
    return [name for name in REQUIRED_COLUMNS if name not in keys]


def header_check(columns: Sequence[str]) -> None:
    """Refuse a header over MAX_COLUMNS wide, or lacking a required column, or naming one twice."""
    if len(columns) > MAX_COLUMNS:
        raise ManifestHeaderTooLong(
            f"The manifest header has {len(columns):,} columns; at most {MAX_COLUMNS:,} are "
            "allowed."
        )
    missing = missing_columns(columns)
    keys = [column_key(name) for name in columns]
    duplicated = sorted(key for key, count in Counter(k for k in keys if k).items() if count > 1)
    problems = []
    if missing:
        problems.append("missing required column(s): " + ", ".join(missing))
    if duplicated:
        problems.append("column(s) named more than once: " + ", ".join(duplicated))
    if problems:
        raise ManifestHeaderInvalid(
            "The manifest header is not usable: " + "; ".join(problems) + ".",
            missing=missing,
            duplicated=duplicated,
        )


def read_rows(raw: BinaryIO, manifest_format: ManifestFormat) -> Iterator[tuple[int, list[str]]]:
    """Yield (row number, cells) for every data row of the manifest; blank lines are not rows.

    Reads from the start of `raw`, whatever its position. Rows are numbered from 1 after the
    header. The reader's own line count counts records, not physical lines, so it is not used.
    """
    text = open_text(raw, manifest_format.encoding, bom=manifest_format.bom)
    rows = (cells for cells in _reader(text, manifest_format.delimiter) if not is_blank(cells))
    next(rows, None)  # the header, checked at upload
    yield from enumerate(rows, start=1)
