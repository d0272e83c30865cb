"""One manifest row to its values and every problem found in it, and what a conflict comes to.

Pure: no database, no storage, no file system. The batch brings what only a file can tell (its
facts) and what only the database can tell (an existing document, an earlier row); the problems'
words are in imports.problems.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import cache, lru_cache

import pycountry

from . import problems
from .facts import FileFacts
from .manifest import REQUIRED_COLUMNS, without_padding
from .models import DOCUMENT_METADATA_FIELDS, Confidentiality, Document, OnConflict, RowStatus

OPTIONAL_COLUMNS = (
    *(name for name in DOCUMENT_METADATA_FIELDS if name not in REQUIRED_COLUMNS),
    "content_type",
    "checksum",
)
KNOWN_COLUMNS = frozenset(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)
# What a row says of its document besides the identifier: an identical row changes nothing.
COMPARED_FIELDS = (*DOCUMENT_METADATA_FIELDS, "extra", "file_name")
FILE_PATH_MAX_LENGTH = 1000
SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def max_length(name: str) -> int:
    return Document._meta.get_field(name).max_length


MAX_LENGTHS = {
    "identifier": max_length("identifier"),
    "title": max_length("title"),
    "author": max_length("author"),
    "file_path": FILE_PATH_MAX_LENGTH,
}


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
    known, extra = _cells_by_column(columns, cells)
    file_name = _last_name(known.get("file_path", "").replace("\\", "/"))
    created_date, date_problems = _created_date(known.get("created_date", ""))
    checksum, checksum_problems = _checksum(known.get("checksum", ""))
    values = RowValues(
        identifier=known.get("identifier", ""),
        file_path=known.get("file_path", ""),
        file_name=file_name,
        title=known.get("title", ""),
        description=known.get("description", ""),
        author=known.get("author", ""),
        created_date=created_date,
        language=known.get("language", "").lower(),
        confidentiality=known.get("confidentiality", "").lower(),
        content_type=known.get("content_type", ""),
        checksum=checksum,
        extra=extra,
    )
    found = _shape_problems(len(columns), cells) + _text_problems(known, file_name)
    return values, found + date_problems + checksum_problems + _code_problems(values)


def _last_name(path: str) -> str:
    """The last part of a `/`-separated path, as PurePosixPath(path).name (without building
    one for every row): empty and `.` parts do not count."""
    return next((part for part in reversed(path.split("/")) if part not in ("", ".")), "")


def _cells_by_column(
    columns: Sequence[str], cells: Sequence[str]
) -> tuple[dict[str, str], dict[str, str]]:
    """The known columns' cells by lowercase name, trimmed; the others' by name, as written."""
    known: dict[str, str] = {}
    extra: dict[str, str] = {}
    for (key, is_known), cell in zip(_column_keys(tuple(columns)), cells, strict=False):
        if is_known:
            known[key] = cell.strip()
        elif key:
            extra[key] = cell
    return known, extra


@lru_cache(maxsize=64)
def _column_keys(columns: tuple[str, ...]) -> list[tuple[str, bool]]:
    """Each column's key and whether it is a known one: its lowercase name, or its name as
    written (trimmed). Once per header, not once per row."""
    keys = []
    for name in columns:
        key = name.strip().casefold()
        keys.append((key, True) if key in KNOWN_COLUMNS else (key and name.strip(), False))
    return keys


def _shape_problems(width: int, cells: Sequence[str]) -> list[str]:
    if len(without_padding(cells, width)) != width:
        return [problems.fields_count(len(cells), width)]
    return []


def _text_problems(known: dict[str, str], file_name: str) -> list[str]:
    found = [problems.empty(name) for name in REQUIRED_COLUMNS if not known.get(name)]
    found += [
        problems.too_long(name, limit)
        for name, limit in MAX_LENGTHS.items()
        if len(known.get(name, "")) > limit
    ]
    if len(file_name) > (limit := max_length("file_name")):
        found.append(problems.file_name_too_long(limit))
    return found


def _code_problems(values: RowValues) -> list[str]:
    found = []
    if values.language and values.language not in _iso_639_codes():
        found.append(problems.not_a_language(values.language))
    if values.confidentiality and values.confidentiality not in Confidentiality.values:
        found.append(
            problems.not_a_confidentiality(values.confidentiality, Confidentiality.values)
        )
    return found


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


def _created_date(text: str) -> tuple[date | None, list[str]]:
    if not text:
        return None, []
    try:
        return date.fromisoformat(text), []
    except ValueError:
        return None, [problems.not_a_date(text)]


def _checksum(text: str) -> tuple[str, list[str]]:
    digest = text.lower().removeprefix("sha256:")
    if not text or SHA256_HEX.fullmatch(digest):
        return digest, []
    return "", [problems.not_a_checksum(text)]


def file_problems(values: RowValues, facts: FileFacts, allowed: Sequence[str]) -> list[str]:
    """What the file's facts say against the row: its checksum, then its type."""
    found = content_type_problems(facts.content_type, values.content_type, allowed)
    if values.checksum and values.checksum != facts.sha256:
        found.insert(0, problems.checksum_mismatch(values.checksum, facts.sha256))
    return found


def content_type_problems(sniffed: str, declared: str, allowed: Sequence[str]) -> list[str]:
    """Every problem with a file's sniffed type: not allowed, or not the one the row declares.

    `allowed` holds exact types (`application/pdf`) or wildcards (`image/*`, `*/*`); an empty
    `declared` means the row declares none. Types compare case-insensitively, parameters apart.
    """
    sniffed = _media_type(sniffed)
    kind = sniffed.partition("/")[0]
    found = []
    if not {sniffed, f"{kind}/*", "*/*"} & {_media_type(pattern) for pattern in allowed}:
        found.append(problems.content_type_not_allowed(sniffed))
    if declared.strip() and _media_type(declared) != sniffed:
        found.append(problems.content_type_differs(declared.strip(), sniffed))
    return found


def _media_type(text: str) -> str:
    """`type/subtype` alone, lowercase: `Text/HTML; charset=UTF-8` is `text/html`."""
    return text.partition(";")[0].strip().lower()


def metadata(of: RowValues | Document) -> dict:
    """What a row, or a document, says besides identifier and file facts (COMPARED_FIELDS)."""
    return {name: getattr(of, name) for name in COMPARED_FIELDS}


@dataclass(frozen=True)
class Verdict:
    """What a row whose identifier is already a document comes to.

    `update` says the document takes the row's values; `copy` that it takes the row's file too.
    """

    status: RowStatus
    comment: str = ""
    update: bool = False
    copy: bool = False


def conflict_verdict(
    values: RowValues, existing: Document, sha256: str, policy: str, dry_run: bool
) -> Verdict:
    """Skipped when identical; else failed, skipped or updated as `on_conflict` says."""
    same_file = existing.sha256 == sha256
    if same_file and metadata(values) == metadata(existing):
        return Verdict(RowStatus.SKIPPED, problems.identical_document(existing.uuid))
    differs = problems.METADATA_DIFFERS if same_file else problems.FILE_DIFFERS
    if policy in (OnConflict.FAIL, OnConflict.SKIP):
        status, outcome = {
            OnConflict.FAIL: (RowStatus.FAILED, problems.UPDATE_WOULD_REPLACE),
            OnConflict.SKIP: (RowStatus.SKIPPED, problems.KEPT),
        }[policy]
        words = problems.identifier_taken(values.identifier, existing.uuid, differs, outcome)
        return Verdict(status, words)
    if dry_run:
        return Verdict(RowStatus.VALID, problems.would_update(existing.uuid, differs))
    return Verdict(RowStatus.IMPORTED, str(existing.uuid), update=True, copy=not same_file)
