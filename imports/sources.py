"""Where the archive's files come from: safe resolution of a row's path, size, and reading.

A row's path is resolved against the source (a directory, or a prefix in an S3 bucket) and
must stay inside it: absolute paths, `..` climbing out and symlinks leading out are refused.
Problems are worded with the row's own `file_path`, never with where the source lives.
"""

import os
import unicodedata
from functools import cached_property
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import BinaryIO, Protocol

from django.conf import settings

from .errors import SourceMisconfigured


class SourceProblem(Exception):
    """A row's file cannot be used; the message is a plain-words row comment."""

    @classmethod
    def about(cls, file_path: str, words: str) -> "SourceProblem":
        """A row comment naming the row's own file_path, never where the source lives."""
        return cls(f"file_path {file_path!r}: {words}")


UNREADABLE = "the file cannot be read"


class SourceUnreadable(Exception):
    """Reading a row's file failed (permissions, an I/O error): that row fails, not the import.

    It carries no words: the row's comment must quote the row's own file_path, which only the
    row knows, never the resolved path.
    """


class SourceUnavailable(Exception):
    """The source itself failed (a timeout or a dropped connection to S3), not a row's file.

    Its task is retried with growing delays; if the source stays away, the import ends in error,
    to be resumed.
    """


class SourceFile(Protocol):
    """A file a row names, as its source resolved it: a Path, or an imports.s3.S3Object."""

    @property
    def name(self) -> str: ...


class Source(Protocol):
    """Where rows' files are read: a folder (FilesystemSource) or a bucket (imports.s3.S3Source)."""

    def check(self) -> None: ...

    def resolve(self, file_path: str) -> SourceFile: ...

    def size(self, located: SourceFile) -> int: ...

    def open(self, located: SourceFile) -> BinaryIO: ...


class FilesystemSource:
    """Files under a directory on this machine (or a mount every worker shares)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def check(self) -> None:
        """Refuse to start an import on a source that is not a readable directory."""
        if not (self.root.is_dir() and os.access(self.root, os.R_OK | os.X_OK)):
            raise SourceMisconfigured()

    def resolve(self, file_path: str) -> Path:
        """The file a row names, proven to lie inside the source.

        A name typed on one system may be stored in the other Unicode form (macOS writes
        decomposed NFD, most others composed NFC), so when the path as written leads nowhere
        its NFC and NFD spellings are tried, each under the same checks.
        """
        for spelling in spellings(file_path):
            if (path := _existing_inside(self._resolved_root, spelling, file_path)) is not None:
                try:
                    is_file = path.is_file()
                except OSError:  # is_file answers False only for a few errors, raises the rest
                    raise SourceProblem.about(file_path, UNREADABLE) from None
                if not is_file:
                    raise SourceProblem.about(file_path, "is a directory, not a file")
                return path
        raise SourceProblem.about(file_path, "no such file")

    @cached_property
    def _resolved_root(self) -> Path:
        # Once per source, which lives for one batch: not once per row.
        return self.root.resolve()

    def size(self, path: Path) -> int:
        try:
            return path.stat().st_size
        except OSError as error:
            raise SourceUnreadable() from error

    def open(self, path: Path) -> BinaryIO:
        try:
            return path.open("rb")
        except OSError as error:
            raise SourceUnreadable() from error


def spellings(file_path: str) -> list[str]:
    """The path as written, then its NFC and NFD spellings where they differ from it."""
    normalized = [unicodedata.normalize(form, file_path) for form in ("NFC", "NFD")]
    return list(dict.fromkeys([file_path, *normalized]))


def relative_path(spelling: str, file_path: str) -> str:
    """`spelling` with `/` between folders; refused when it holds NUL or is absolute anywhere.

    Manifests come from Windows too, so `C:\\x` and `\\\\server\\share` count as absolute.
    """
    if "\x00" in spelling or PureWindowsPath(spelling).is_absolute():
        raise SourceProblem.about(file_path, "path outside source")
    relative = spelling.replace("\\", "/")
    if relative.startswith("/"):
        raise SourceProblem.about(file_path, "path outside source")
    return relative


def _existing_inside(root: Path, spelling: str, file_path: str) -> Path | None:
    """Where `spelling` leads under `root`, or None if nothing is there; refuses leading out."""
    relative = PurePosixPath(relative_path(spelling, file_path))
    try:
        path = (root / relative).resolve(strict=True)
    except FileNotFoundError:
        # A missing target is judged by where it would be, so a dangling link out is refused.
        if not (root / relative).resolve().is_relative_to(root):
            raise SourceProblem.about(file_path, "path outside source") from None
        return None
    except (OSError, RuntimeError):
        raise SourceProblem.about(file_path, UNREADABLE) from None
    if not path.is_relative_to(root):
        raise SourceProblem.about(file_path, "path outside source")
    return path


def source_from_settings() -> Source:
    """The source IMPORT_SOURCE names: `s3://bucket/prefix`, or else a directory."""
    location = str(settings.IMPORT_SOURCE)
    if location.startswith("s3://"):
        # Imported here: boto3 costs every process about 15 MB, and most never use S3.
        from .s3 import S3Source

        return S3Source.from_url(location)
    return FilesystemSource(location)
