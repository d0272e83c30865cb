"""Files under a directory on this machine (or a mount every worker shares).

A row's path is resolved against the directory and must stay inside it: `..` climbing out and
symlinks leading out are refused. Only regular files are read: a directory, FIFO, socket or
device is refused by what it is, and a file with more than one hard link unless
IMPORT_ALLOW_HARD_LINKS says so (another of its names may lie outside the source, and a link
count cannot tell where).
"""

import os
import stat
from functools import cached_property
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.core.files.storage import Storage

from ..errors import SourceMisconfigured, SourceProblem, SourceUnreadable
from ..problems import (
    HARD_LINKED,
    IS_DIRECTORY,
    NO_SUCH_FILE,
    NOT_REGULAR,
    OUTSIDE_SOURCE,
    UNREADABLE,
    special_file,
)
from .base import relative_path, spellings


class FilesystemSource:
    """Files under a directory on this machine (or a mount every worker shares)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._real_folders: dict[str, str | None] = {}

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
            if (inside := self._existing_inside(spelling, file_path)) is not None:
                path = Path(inside)
                try:
                    found = path.stat()  # never an open: a FIFO would wait for a writer
                except OSError:
                    raise SourceProblem.about(file_path, UNREADABLE) from None
                if (words := file_problem(found, self._hard_links_allowed)) is not None:
                    raise SourceProblem.about(file_path, words)
                return path
        raise SourceProblem.about(file_path, NO_SUCH_FILE)

    @cached_property
    def _resolved_root(self) -> str:
        # Once per source, which lives for one batch: not once per row.
        return str(self.root.resolve())

    @cached_property
    def _hard_links_allowed(self) -> bool:
        # A setting, read once per source (per batch): a lazy setting costs a lookup per read.
        return settings.IMPORT_ALLOW_HARD_LINKS

    def _existing_inside(self, spelling: str, file_path: str) -> str | None:
        """Where `spelling` leads, or None if nothing is there; refuses leading out.

        A batch's rows share few folders, so each folder is resolved once per source (that is,
        per batch), and then a row's own name is only looked at: a link, `.` or `..` is
        followed in full, as is every name in a folder that is not there or leads out.
        """
        relative = relative_path(spelling, file_path)
        folder, _, name = relative.rpartition("/")
        real_folder = self._real_folder(folder)
        if real_folder is None or name in ("", ".", ".."):
            return _existing_inside(self._resolved_root, relative, file_path)
        candidate = os.path.join(real_folder, name)
        try:
            if not stat.S_ISLNK(os.lstat(candidate).st_mode):
                return candidate
        except FileNotFoundError:
            return None
        except OSError:
            raise SourceProblem.about(file_path, UNREADABLE) from None
        return _existing_inside(self._resolved_root, relative, file_path)

    def _real_folder(self, folder: str) -> str | None:
        """The folder resolved, when it is there and inside the source; None otherwise."""
        if folder not in self._real_folders:
            try:
                real = os.path.realpath(os.path.join(self._resolved_root, folder), strict=True)
            except OSError:
                real = None
            self._real_folders[folder] = (
                real if real and _inside(real, self._resolved_root) else None
            )
        return self._real_folders[folder]

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
            if file_problem(os.fstat(descriptor), self._hard_links_allowed) is not None:
                raise SourceUnreadable()
            os.set_blocking(descriptor, True)
            return os.fdopen(descriptor, "rb")
        except OSError as error:
            os.close(descriptor)
            raise SourceUnreadable() from error
        except BaseException:
            os.close(descriptor)
            raise

    def server_side_copy(self, path: Path, name: str, storage: Storage) -> None:
        """Never: a folder's bytes are copied through this process."""
        return None


# Read-only; never through a last-name symlink; never waiting, as a FIFO's open would.
OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC

SPECIAL_FILES = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def file_problem(found: os.stat_result, hard_links_allowed: bool) -> str | None:
    """Why a file found on disk may not be imported, in plain words; None when it may."""
    if stat.S_ISDIR(found.st_mode):
        return IS_DIRECTORY
    if not stat.S_ISREG(found.st_mode):
        kind = next((words for is_kind, words in SPECIAL_FILES if is_kind(found.st_mode)), None)
        return special_file(kind) if kind else NOT_REGULAR
    if found.st_nlink > 1 and not hard_links_allowed:
        return HARD_LINKED
    return None


def _existing_inside(root: str, relative: str, file_path: str) -> str | None:
    """Where `relative` leads under `root`, or None if nothing is there; refuses leading out.

    On strings, not Paths: a Path costs more to build than the lookups it stands for.
    """
    joined = os.path.join(root, relative)
    try:
        path = os.path.realpath(joined, strict=True)
    except FileNotFoundError:
        # A missing target is judged by where it would be, so a dangling link out is refused.
        if not _inside(os.path.realpath(joined), root):
            raise SourceProblem.about(file_path, OUTSIDE_SOURCE) from None
        return None
    except OSError:  # a loop of links among them
        raise SourceProblem.about(file_path, UNREADABLE) from None
    if not _inside(path, root):
        raise SourceProblem.about(file_path, OUTSIDE_SOURCE)
    return path


def _inside(path: str, root: str) -> bool:
    """Whether `path` is `root` or lies below it (both resolved)."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)
