"""Every problem a manifest row can have, in the plain words of its report comment.

Worded here once: the checks that find them (rows, sources, batches) say which, never how. A
comment names the row's own values (its `file_path` as written), never where the source lives.
"""

from collections.abc import Sequence

NO_SUCH_FILE = "no such file"
OUTSIDE_SOURCE = "path outside source"
UNREADABLE = "the file cannot be read"
IS_DIRECTORY = "is a directory, not a file"
NOT_REGULAR = "is not a regular file"
CHANGED_WHILE_READ = "the file changed while being read"
HARD_LINKED = (
    "the file has other hard links, which may lead outside the source; "
    "set IMPORT_ALLOW_HARD_LINKS=true to accept them"
)


def about_file(file_path: str, words: str) -> str:
    """A problem with the row's file, naming it as the row does."""
    return f"file_path {file_path!r}: {words}"


def special_file(kind: str) -> str:
    return f"is {kind}, not a regular file"


def file_too_large(file_path: str, size: int, limit: int) -> str:
    return about_file(file_path, f"the file has {size} bytes, more than the {limit} allowed")


def fields_count(found: int, width: int) -> str:
    return f"the row has {found} fields where the header has {width}"


def empty(column: str) -> str:
    return f"{column} is empty"


def too_long(column: str, limit: int) -> str:
    return f"{column} is longer than {limit} characters"


def file_name_too_long(limit: int) -> str:
    return f"the file name is longer than {limit} characters"


def not_a_date(text: str) -> str:
    return f"created_date {text!r} is not a date (YYYY-MM-DD)"


def not_a_checksum(text: str) -> str:
    return f"checksum {text!r} is not a SHA-256 hex digest (64 hex digits)"


def not_a_language(language: str) -> str:
    return f"language {language!r} is not an ISO 639 code"


def not_a_confidentiality(confidentiality: str, allowed: Sequence[str]) -> str:
    return f"confidentiality {confidentiality!r} is not one of " + ", ".join(allowed)


def repeated_identifier(identifier: str, first_row: int) -> str:
    return f"identifier {identifier!r} already appears earlier in the manifest (row {first_row})"


def checksum_mismatch(expected: str, actual: str) -> str:
    return f"checksum mismatch: the manifest says {expected}, the file's SHA-256 is {actual}"


def content_type_not_allowed(sniffed: str) -> str:
    return f"the file's type is {sniffed}, which is not allowed here"


def content_type_differs(declared: str, sniffed: str) -> str:
    return f"content_type says {declared} but the file is {sniffed}"


def identical_document(document_uuid: object) -> str:
    return f"identical document {document_uuid} is already imported"


def identifier_taken(identifier: str, document_uuid: object, differs: str, outcome: str) -> str:
    """A row whose identifier is a document it differs from, and what on_conflict made of it."""
    return (
        f"identifier {identifier!r} is already used by document {document_uuid} "
        f"({differs}); {outcome}"
    )


FILE_DIFFERS = "its file differs"
METADATA_DIFFERS = "its metadata differs"
UPDATE_WOULD_REPLACE = "on_conflict=update would replace it"
KEPT = "kept as it is (on_conflict=skip)"


def would_update(document_uuid: object, differs: str) -> str:
    return f"would update document {document_uuid} ({differs})"
