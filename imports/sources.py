"""Where the archive's files come from: safe resolution of a row's path, size, and reading.

A row's path is resolved against the source and must stay inside it: absolute paths, `..`
climbing out and symlinks leading out are refused. Problems are worded with the row's own
`file_path`, never with where the source lives.
"""

import os
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from django.conf import settings

from .errors import SourceMisconfigured


class SourceProblem(Exception):
    """A row's file cannot be used; the message is a plain-words row comment."""


class FilesystemSource:
    """Files under a directory on this machine (or a mount every worker shares)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def check(self) -> None:
        """Refuse to start an import on a source that is not a readable directory."""
        if not (self.root.is_dir() and os.access(self.root, os.R_OK | os.X_OK)):
            raise SourceMisconfigured()

    def resolve(self, file_path: str) -> Path:
        """The file a row names, proven to lie inside the source."""
        relative = PurePosixPath(file_path.replace("\\", "/"))
        if "\x00" in file_path or relative.is_absolute() or Path(file_path).is_absolute():
            raise SourceProblem(f"file_path {file_path!r}: path outside source")
        root = self.root.resolve()
        try:
            path = (root / relative).resolve(strict=True)
        except FileNotFoundError:
            if not (root / relative).resolve().is_relative_to(root):
                raise SourceProblem(f"file_path {file_path!r}: path outside source") from None
            raise SourceProblem(f"file_path {file_path!r}: no such file") from None
        except (OSError, RuntimeError):
            raise SourceProblem(f"file_path {file_path!r}: the file cannot be read") from None
        if not path.is_relative_to(root):
            raise SourceProblem(f"file_path {file_path!r}: path outside source")
        if not path.is_file():
            raise SourceProblem(f"file_path {file_path!r}: is a directory, not a file")
        return path

    def size(self, path: Path) -> int:
        return path.stat().st_size

    def open(self, path: Path) -> BinaryIO:
        return path.open("rb")


def source_from_settings() -> FilesystemSource:
    return FilesystemSource(settings.IMPORT_SOURCE)
