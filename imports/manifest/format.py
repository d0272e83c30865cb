"""ManifestFormat: how a manifest is written (encoding, byte-order mark, dialect, columns).

Stored with an import, it reads the manifest again and writes the report alike; QUOTECHAR is the
one quoting every manifest is read and written with.
"""

from collections.abc import Iterable
from dataclasses import dataclass

from .columns import column_key
from .encoding import CHARSETS, byte_order_mark

# Spreadsheets and legacy systems quote RFC 4180 style: `"` around a field, doubled inside it.
# A quote or escape character guessed from a sample is more often an apostrophe in a name or a
# backslash in a Windows path than a dialect, and would corrupt those values, so neither is guessed.
QUOTECHAR = '"'


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
