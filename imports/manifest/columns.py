"""The header's columns: the required ones, how a column name is matched, and the header check.

Pure: a header is refused here for its width, a missing required column or a name given twice.
"""

from collections import Counter
from collections.abc import Sequence

from ..errors import ManifestHeaderInvalid, ManifestHeaderTooLong

REQUIRED_COLUMNS = ("identifier", "file_path", "title")
# The header is read whole, not from the sample, but not without bound: it sits in memory, once
# per candidate delimiter, and every document's `extra` holds a key per column past the known
# ones. Excel and LibreOffice Calc hold at most 16,384 columns; the limit leaves room above that
# for the two columns a report adds, so that a report can be uploaded again.
MAX_COLUMNS = 20_000


def column_key(name: str) -> str:
    return name.strip().casefold()


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
