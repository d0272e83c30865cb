"""Reading manifests: encoding and dialect detection, header checks, row streaming.

The dialect is detected with clevercsv on a sample of whole lines (detecting on a whole file of
millions of rows takes minutes); the rows are then streamed, so no manifest sits in memory.
"""

import codecs
import csv
import io
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import BinaryIO, TextIO

import clevercsv
from clevercsv.dialect import SimpleDialect

from .errors import ManifestEmpty, ManifestHeaderInvalid, ManifestUndecodable

REQUIRED_COLUMNS = ("identifier", "file_path", "title")
DELIMITERS = (",", ";", "\t", "|")
SAMPLE_BYTES = 64 * 1024
SAMPLE_LINES = 2000
CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class ManifestFormat:
    """How a manifest is written: enough to read it again and to write its report alike."""

    encoding: str
    delimiter: str
    quotechar: str
    escapechar: str
    lineterminator: str
    columns: tuple[str, ...]

    @classmethod
    def from_json(cls, data: dict) -> "ManifestFormat":
        return cls(**{**data, "columns": tuple(data["columns"])})

    def to_json(self) -> dict:
        return {**asdict(self), "columns": list(self.columns)}

    @property
    def keys(self) -> tuple[str, ...]:
        """The columns as matched: trimmed and case-folded."""
        return tuple(column_key(name) for name in self.columns)

    def dialect(self) -> SimpleDialect:
        return SimpleDialect(self.delimiter, self.quotechar, self.escapechar)

    def writer(self, text: TextIO):
        """A csv writer in the manifest's own dialect."""
        return csv.writer(
            text,
            delimiter=self.delimiter,
            quotechar=self.quotechar,
            escapechar=self.escapechar or None,
            lineterminator=self.lineterminator,
            quoting=csv.QUOTE_MINIMAL,
        )


def column_key(name: str) -> str:
    return name.strip().casefold()


def is_blank(cells: Sequence[str]) -> bool:
    return not any(cell.strip() for cell in cells)


def without_padding(cells: Sequence[str], width: int) -> Sequence[str]:
    """A row's cells without the empty ones past the header, which spreadsheets pad rows with."""
    if len(cells) > width and not any(cell.strip() for cell in cells[width:]):
        return cells[:width]
    return cells


def detect_encoding(raw: BinaryIO) -> str:
    """Decode the whole file strictly, once, and name its encoding; refuse what is not text."""
    head = raw.read(len(codecs.BOM_UTF8))
    if not head:
        raise ManifestEmpty()
    bom = codecs.BOM_UTF8 if head == codecs.BOM_UTF8 else b""
    raw.seek(len(bom))
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = len(bom)  # where the next chunk starts in the file
    try:
        while True:
            chunk = raw.read(CHUNK_BYTES)
            # A decoding error counts from the bytes the decoder still holds from before.
            held = len(decoder.getstate()[0])
            if "\x00" in decoder.decode(chunk, final=not chunk):
                raise ManifestUndecodable("The manifest holds NUL bytes: it is not a CSV file.")
            if not chunk:
                break
            offset += len(chunk)
    except UnicodeDecodeError as exc:
        raise ManifestUndecodable(
            f"The manifest is not valid UTF-8 text (first bad byte at offset "
            f"{offset - held + exc.start})."
        ) from None
    finally:
        raw.seek(0)
    return "utf-8-sig" if bom else "utf-8"


def open_text(raw: BinaryIO, encoding: str) -> TextIO:
    # newline="" keeps line breaks inside quoted fields for the csv reader to handle.
    return io.TextIOWrapper(raw, encoding=encoding, newline="")


def _sample(text: TextIO) -> str:
    lines = []
    size = 0
    for line in text:
        lines.append(line)
        size += len(line)
        if size >= SAMPLE_BYTES or len(lines) >= SAMPLE_LINES:
            break
    return "".join(lines)


def _line_terminator(sample: str) -> str:
    if "\r\n" in sample:
        return "\r\n"
    return "\r" if "\r" in sample and "\n" not in sample else "\n"


def detect_format(raw: BinaryIO) -> ManifestFormat:
    """Detect encoding, dialect and header of a manifest, and check the header.

    Raises a ManifestInvalid subclass with a plain-words detail; leaves `raw` at its start.
    """
    encoding = detect_encoding(raw)
    text = open_text(raw, encoding)
    try:
        sample = _sample(text)
    finally:
        text.detach()
        raw.seek(0)
    if not sample.strip():
        raise ManifestEmpty()
    detected = clevercsv.Detector().detect(sample, delimiters=DELIMITERS)
    if detected is None or not detected.delimiter:
        # One column, or no recognisable delimiter: read it as one column, so that the header
        # check below names the missing columns.
        detected = SimpleDialect(",", '"', "")
    # A sample without quotes yields no quote character; a later quoted field must still parse.
    dialect = SimpleDialect(detected.delimiter, detected.quotechar or '"', detected.escapechar)
    header = next(
        (cells for cells in clevercsv.reader(io.StringIO(sample), dialect) if not is_blank(cells)),
        [],
    )
    header_check(header)
    return ManifestFormat(
        encoding=encoding,
        delimiter=dialect.delimiter,
        quotechar=dialect.quotechar,
        escapechar=dialect.escapechar,
        lineterminator=_line_terminator(sample),
        columns=tuple(header),
    )


def header_check(columns: Sequence[str]) -> None:
    """Refuse a header that lacks a required column or names a column twice."""
    keys = [column_key(name) for name in columns]
    missing = [name for name in REQUIRED_COLUMNS if name not in keys]
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
    """Yield (row number, cells) for every data row; blank lines are not rows.

    Rows are numbered from 1 after the header. The reader's own line count counts records,
    not physical lines, so it is not used.
    """
    text = open_text(raw, manifest_format.encoding)
    records = (
        cells for cells in clevercsv.reader(text, manifest_format.dialect()) if not is_blank(cells)
    )
    next(records, None)  # the header, checked at upload
    yield from enumerate(records, start=1)
