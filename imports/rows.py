"""One manifest row to its values and every problem found in it, in plain words.

Pure: no database, no storage, no file system. The batch adds what only a file can tell
(path, size, checksum) and what only the database can tell (conflicts).
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from pathlib import PurePosixPath

import pycountry

from .manifest import REQUIRED_COLUMNS, without_padding
from .models import Confidentiality

OPTIONAL_COLUMNS = (
    "description",
    "author",
    "created_date",
    "language",
    "confidentiality",
    "content_type",
    "checksum",
)
KNOWN_COLUMNS = frozenset(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)
MAX_LENGTHS = {"identifier": 255, "title": 1000, "author": 255, "file_path": 1000}
FILE_NAME_MAX_LENGTH = 500  # Document.file_name; S3 keys may hold longer ones than disks do
SHA256_HEX = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class RowValues:
    """A row's values by column name: known columns as typed fields, the rest in `extra`."""

    identifier: str = ""
    file_path: str = ""
    file_name: str = ""  # the file_path's last part, `/` or `\\` between folders
    title: str = ""
    description: str = ""
    author: str = ""
    created_date: date | None = None
    language: str = ""
    confidentiality: str = ""
    content_type: str = ""
    checksum: str = ""
    extra: dict[str, str] = field(default_factory=dict)


def row_read(columns: Sequence[str], cells: Sequence[str]) -> tuple[RowValues, list[str]]:
    """Map cells to values by header name and return them with every problem found."""
    problems = _shape_problems(len(columns), cells)
    known: dict[str, str] = {}
    extra: dict[str, str] = {}
    for name, cell in zip(columns, cells, strict=False):
        key = name.strip().casefold()
        if key in KNOWN_COLUMNS:
            known[key] = cell.strip()
        elif key:
            extra[name.strip()] = cell
    problems += [f"{name} is empty" for name in REQUIRED_COLUMNS if not known.get(name)]
    problems += [
        f"{name} is longer than {limit} characters"
        for name, limit in MAX_LENGTHS.items()
        if len(known.get(name, "")) > limit
    ]
    file_name = PurePosixPath(known.get("file_path", "").replace("\\", "/")).name
    if len(file_name) > FILE_NAME_MAX_LENGTH:
        problems.append(f"the file name is longer than {FILE_NAME_MAX_LENGTH} characters")
    created_date, date_problems = _created_date(known.get("created_date", ""))
    checksum, checksum_problems = _checksum(known.get("checksum", ""))
    language = known.get("language", "").lower()
    confidentiality = known.get("confidentiality", "").lower()
    problems += date_problems + checksum_problems
    if language and language not in _iso_639_codes():
        problems.append(f"language {language!r} is not an ISO 639 code")
    if confidentiality and confidentiality not in Confidentiality.values:
        problems.append(
            f"confidentiality {confidentiality!r} is not one of "
            + ", ".join(Confidentiality.values)
        )
    values = RowValues(
        identifier=known.get("identifier", ""),
        file_path=known.get("file_path", ""),
        file_name=file_name,
        title=known.get("title", ""),
        description=known.get("description", ""),
        author=known.get("author", ""),
        created_date=created_date,
        language=language,
        confidentiality=confidentiality,
        content_type=known.get("content_type", ""),
        checksum=checksum,
        extra=extra,
    )
    return values, problems


def repeated_identifier_problem(identifier: str, first_row: int) -> str:
    return f"identifier {identifier!r} already appears earlier in the manifest (row {first_row})"


def checksum_problem(expected: str, actual: str) -> str:
    return f"checksum mismatch: the manifest says {expected}, the file's SHA-256 is {actual}"


@cache
def _iso_639_codes() -> frozenset[str]:
    """Every ISO 639-1, ISO 639-3 and ISO 639-2/B code, lowercase.

    Built on first use, not at import: reading pycountry's table of some 8,000 languages
    takes tens of milliseconds that a process which never reads a row should not pay.
    """
    return frozenset(
        code.lower()
        for language in pycountry.languages
        for code in (
            getattr(language, "alpha_2", ""),
            language.alpha_3,
            getattr(language, "bibliographic", ""),
        )
        if code
    )


def _shape_problems(width: int, cells: Sequence[str]) -> list[str]:
    if len(without_padding(cells, width)) != width:
        return [f"the row has {len(cells)} fields where the header has {width}"]
    return []


def _created_date(text: str) -> tuple[date | None, list[str]]:
    if not text:
        return None, []
    try:
        return date.fromisoformat(text), []
    except ValueError:
        return None, [f"created_date {text!r} is not a date (YYYY-MM-DD)"]


def _checksum(text: str) -> tuple[str, list[str]]:
    digest = text.lower().removeprefix("sha256:")
    if not text or SHA256_HEX.fullmatch(digest):
        return digest, []
    return "", [f"checksum {text!r} is not a SHA-256 hex digest (64 hex digits)"]
