"""Where the archive's files come from: safe resolution of a row's path, size, and reading.

A row's path is resolved against the source (a directory, or a prefix in an S3 bucket) and
must stay inside it: absolute paths, `..` climbing out and symlinks leading out are refused.
Only regular files are read: a directory, FIFO, socket or device is refused by what it is, and
a file with more than one hard link unless IMPORT_ALLOW_HARD_LINKS says so (another of its names
may lie outside the source, and a link count cannot tell where).
Problems are worded with the row's own `file_path`, never with where the source lives.
"""

import os
import stat
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
                    found = path.stat()  # never an open: a FIFO would wait for a writer
                except OSError:
                    raise SourceProblem.about(file_path, UNREADABLE) from None
                if (words := file_problem(found)) is not None:
                    raise SourceProblem.about(file_path, words)
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
        """The file's bytes, through a descriptor proven to be a regular file with one link.

        What was resolved may have been replaced since. So the last name is not followed if it
        became a symlink, the open does not block if it became a FIFO, and the checks resolve
        made are made again on the descriptor that will be read: nothing else can be read.
        A file found changed only here is unreadable: this row's own file_path is not known.
        """
        try:
            descriptor = os.open(path, OPEN_FLAGS)
        except OSError as error:
            raise SourceUnreadable() from error
        try:
            if file_problem(os.fstat(descriptor)) is not None:
                raise SourceUnreadable()
            os.set_blocking(descriptor, True)
            return os.fdopen(descriptor, "rb")
        except OSError as error:
            os.close(descriptor)
            raise SourceUnreadable() from error
        except BaseException:
            os.close(descriptor)
            raise


# Read-only; never through a last-name symlink; never waiting, as a FIFO's open would.
OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC

SPECIAL_FILES = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)

HARD_LINKED = (
    "the file has other hard links, which may lead outside the source; "
    "set IMPORT_ALLOW_HARD_LINKS=true to accept them"
)


def file_problem(found: os.stat_result) -> str | None:
    """Why a file found on disk may not be imported, in plain words; None when it may."""
    if stat.S_ISDIR(found.st_mode):
        return "is a directory, not a file"
    if not stat.S_ISREG(found.st_mode):
        kind = next((words for is_kind, words in SPECIAL_FILES if is_kind(found.st_mode)), None)
        return f"is {kind}, not a regular file" if kind else "is not a regular file"
    if found.st_nlink > 1 and not settings.IMPORT_ALLOW_HARD_LINKS:
        return HARD_LINKED
    return None


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
