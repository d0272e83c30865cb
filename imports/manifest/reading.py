"""Reading a manifest's records: the csv reader every pass uses, the rows check, streamed rows.

Also what a record is to the reader: blank records are skipped, padding past the header dropped.
"""

import csv
from collections.abc import Iterable, Iterator, Sequence
from typing import BinaryIO

from ..errors import ManifestMalformed
from .encoding import open_text
from .format import QUOTECHAR, ManifestFormat


def is_blank(cells: Sequence[str]) -> bool:
    return not any(cell.strip() for cell in cells)


def without_padding(cells: Sequence[str], width: int) -> Sequence[str]:
    """A row's cells without the empty ones past the header, which spreadsheets pad rows with."""
    if len(cells) > width and not any(cell.strip() for cell in cells[width:]):
        return cells[:width]
    return cells


def csv_reader(lines: Iterable[str], delimiter: str):
    """A csv reader with RFC 4180 quoting; blank records are the caller's to skip.

    Not clevercsv's reader: it takes a `"` inside an unquoted field (`12" vinyl`) as the start
    of a quoted one, and swallows the rest of the file into it; the stdlib keeps it as text.
    """
    return csv.reader(lines, delimiter=delimiter, quotechar=QUOTECHAR, doublequote=True)


def rows_check(raw: BinaryIO, manifest_format: ManifestFormat) -> None:
    """Read every row once, so that a quote never closed is refused now, not found mid-import.

    Only a sample was parsed to find the dialect; one pass over the rest is what makes counting,
    batches and the report certain to read the whole file. Leaves `raw` at its start.
    """
    text = open_text(raw, manifest_format.encoding, bom=manifest_format.bom)
    records = 0  # the header is record 1
    try:
        for cells in csv_reader(text, manifest_format.delimiter):
            records += not is_blank(cells)
    except csv.Error as exc:
        raise ManifestMalformed(
            f"The manifest is not well-formed CSV after row {max(records - 1, 0)}: {exc} "
            "(is a quote left open?)."
        ) from None
    finally:
        text.detach()  # the caller still stores `raw`
        raw.seek(0)


def read_rows(raw: BinaryIO, manifest_format: ManifestFormat) -> Iterator[tuple[int, list[str]]]:
    """Yield (row number, cells) for every data row of the manifest; blank lines are not rows.

    Reads from the start of `raw`, whatever its position. Rows are numbered from 1 after the
    header. The reader's own line count counts records, not physical lines, so it is not used.
    """
    text = open_text(raw, manifest_format.encoding, bom=manifest_format.bom)
    rows = (cells for cells in csv_reader(text, manifest_format.delimiter) if not is_blank(cells))
    next(rows, None)  # the header, checked at upload
    yield from enumerate(rows, start=1)
