"""What every source is: where a row's path is resolved, its size read and its bytes opened.

A row's path must stay inside the source: absolute paths (POSIX or Windows) and NUL are refused
here, before any source looks; each source refuses climbing out its own way.
"""

import unicodedata
from pathlib import PureWindowsPath
from typing import BinaryIO, Protocol

from django.core.files.storage import Storage

from ..errors import SourceProblem
from ..facts import FileFacts
from ..problems import OUTSIDE_SOURCE


class SourceFile(Protocol):
    """A file a row names, as its source resolved it: a Path, or an S3Object."""

    @property
    def name(self) -> str: ...


class Source(Protocol):
    """Where rows' files are read: a folder (FilesystemSource) or a bucket (S3Source)."""

    def check(self) -> None:
        """Raise SourceMisconfigured unless the source can be read at all."""

    def resolve(self, file_path: str) -> SourceFile:
        """The file a row names, proven inside the source; SourceProblem otherwise."""

    def size(self, located: SourceFile) -> int: ...

    def open(self, located: SourceFile) -> BinaryIO: ...

    def server_side_copy(
        self, located: SourceFile, name: str, storage: Storage
    ) -> tuple[str, FileFacts] | None:
        """Have the storage's service copy the file itself, hashing it on the way; None when
        it cannot, and the bytes must pass through this process."""


def spellings(file_path: str) -> list[str]:
    """The path as written, then its NFC and NFD spellings where they differ from it."""
    normalized = [unicodedata.normalize(form, file_path) for form in ("NFC", "NFD")]
    return list(dict.fromkeys([file_path, *normalized]))


def relative_path(spelling: str, file_path: str) -> str:
    """`spelling` with `/` between folders; refused when it holds NUL or is absolute anywhere.

    Manifests come from Windows too, so `C:\\x` and `\\\\server\\share` count as absolute.
    """
    if "\x00" in spelling or _windows_absolute(spelling):
        raise SourceProblem.about(file_path, OUTSIDE_SOURCE)
    relative = spelling.replace("\\", "/")
    if relative.startswith("/"):
        raise SourceProblem.about(file_path, OUTSIDE_SOURCE)
    return relative


def _windows_absolute(spelling: str) -> bool:
    """Whether Windows takes the path as absolute (`C:\\x`, `\\\\server\\share`).

    Only a drive or two separators can start one, so only such a path is parsed: parsing
    every row's path cost more than the rest of its checks.
    """
    head = spelling[:2]
    drive = head[1:] == ":"
    two_separators = len(head) == 2 and head[0] in "\\/" and head[1] in "\\/"
    return (drive or two_separators) and PureWindowsPath(spelling).is_absolute()
