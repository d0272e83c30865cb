"""Detecting a manifest's format: the delimiter from a sample and the header read whole.

detect_format puts encoding, delimiter, header check and rows check together into a ManifestFormat.
"""

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, TextIO

from ..errors import ManifestEmpty, ManifestHeaderTooLong, ManifestInvalid, ManifestMalformed
from .columns import header_check, missing_columns
from .encoding import detect_encoding, open_text
from .format import ManifestFormat
from .reading import csv_reader, is_blank, rows_check

DELIMITERS = (",", ";", "\t", "|")
SAMPLE_BYTES = 64 * 1024
SAMPLE_LINES = 2000
# What the header may take of the file, blank lines before it included: 4 Mi characters, about
# 200 a column at MAX_COLUMNS. A file without line breaks, or with a quote left open in the
# header, is refused once it is read this far, instead of being read whole into memory.
MAX_HEADER_CHARACTERS = 4 * 1024 * 1024


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
    reader = csv_reader(lines, delimiter)
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
        header_lines = _kept(_bounded_lines(text, MAX_HEADER_CHARACTERS), lines)
        for cells in csv_reader(header_lines, delimiter):
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


def _detected_delimiter(lines: list[str]) -> str:
    """clevercsv's pick of a delimiter on the sample, or "" when it finds none."""
    import clevercsv  # here: a tie is rare, and the module takes 4 MiB in every process

    detected = clevercsv.Detector().detect("".join(lines), delimiters=DELIMITERS)
    return detected.delimiter if detected and detected.delimiter else ""


def _delimiter_and_header(
    raw: BinaryIO, encoding: str, bom: bool, lines: list[str]
) -> tuple[str, _Header]:
    """The delimiter under which the header finds the most required columns; clevercsv's pick
    among those that tie.

    The header is what a valid manifest always has, so it has the first word: a sample of few
    rows, or of rows that hold other delimiters in their values, can mislead the detector. It
    is read whole under each delimiter, since where a quoted field, and so the header, ends
    depends on the delimiter. A header that cannot be read whole under a delimiter (a quote left
    open, no line breaks) ranks by what the sample holds of it, after a readable one that finds
    as many, and is refused if it ranks first: the delimiter that finds the required columns
    names the problem, not another one. The detector runs only on a tie: it takes about 90 ms
    on a full sample, where the rest of the detection takes about 50.
    """
    ranked = []
    for delimiter in DELIMITERS:
        try:
            header: _Header | ManifestInvalid = _header(raw, encoding, bom, delimiter)
            cells = header.cells
        except ManifestInvalid as exc:
            header, cells = exc, _sample_header(lines, delimiter)
        unreadable = isinstance(header, ManifestInvalid)
        ranked.append(((len(missing_columns(cells)), unreadable), delimiter, header))
    best = min(rank for rank, _, _ in ranked)
    tied = [(delimiter, header) for rank, delimiter, header in ranked if rank == best]
    if len(tied) > 1:
        picked = _detected_delimiter(lines)
        tied.sort(key=lambda candidate: candidate[0] != picked)  # stable: DELIMITERS' order next
    delimiter, header = tied[0]
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
