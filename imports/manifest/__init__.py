"""Reading manifests: encoding and dialect detection, header checks, row streaming.

The delimiter is the one under which the header finds the required columns; where several
do, clevercsv's pick on a sample of whole lines (detecting on a whole file of millions of rows
takes minutes). The header is read whole, however far past the sample it goes, up to a bound;
the rows are then streamed, so no manifest sits in memory.

Modules, each importing only those listed before it: encoding (encoding detection, byte-order
marks), columns (required columns, header check), format (ManifestFormat), reading (csv reader,
rows check, streamed rows), detection (delimiter and header, detect_format).
"""

from .columns import MAX_COLUMNS, REQUIRED_COLUMNS, column_key, header_check
from .detection import (
    DELIMITERS,
    MAX_HEADER_CHARACTERS,
    SAMPLE_BYTES,
    SAMPLE_LINES,
    detect_format,
)
from .encoding import CHUNK_BYTES
from .format import ManifestFormat
from .reading import read_rows, without_padding

__all__ = [
    "CHUNK_BYTES",
    "DELIMITERS",
    "MAX_COLUMNS",
    "MAX_HEADER_CHARACTERS",
    "REQUIRED_COLUMNS",
    "SAMPLE_BYTES",
    "SAMPLE_LINES",
    "ManifestFormat",
    "column_key",
    "detect_format",
    "header_check",
    "read_rows",
    "without_padding",
]
