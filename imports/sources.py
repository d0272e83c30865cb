"""Where the archive's files come from: safe resolution of a row's path, size, and reading.

A row's path is resolved against the source and must stay inside it: absolute paths, `..`
climbing out and symlinks leading out are refused. Problems are worded with the row's own
`file_path`, never with where the source lives.
"""

import os
import unicodedata
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
        """The file a row names, proven to lie inside the source.

        A name typed on one system may be stored in the other Unicode form (macOS writes
        decomposed NFD, most others composed NFC), so when the path as written leads nowhere
        its NFC and NFD spellings are tried, each under the same checks.
        """
        root = self.root.resolve()
        for spelling in _spellings(file_path):
            if (path := _existing_inside(root, spelling, file_path)) is not None:
                if not path.is_file():
                    raise _problem(file_path, "is a directory, not a file")
                return path
        raise _problem(file_path, "no such file")

    def size(self, path: Path) -> int:
        return path.stat().st_size

    def open(self, path: Path) -> BinaryIO:
        return path.open("rb")


def _spellings(file_path: str) -> list[str]:
    """The path as written, then its NFC and NFD spellings where they differ from it."""
    normalized = [unicodedata.normalize(form, file_path) for form in ("NFC", "NFD")]
    return list(dict.fromkeys([file_path, *normalized]))


def _existing_inside(root: Path, spelling: str, file_path: str) -> Path | None:
    """Where `spelling` leads under `root`, or None if nothing is there; refuses leading out."""
    relative = PurePosixPath(spelling.replace("\\", "/"))
    if "\x00" in spelling or relative.is_absolute() or Path(spelling).is_absolute():
        raise _problem(file_path, "path outside source")
    try:
        path = (root / relative).resolve(strict=True)
    except FileNotFoundError:
        # A missing target is judged by where it would be, so a dangling link out is refused.
        if not (root / relative).resolve().is_relative_to(root):
            raise _problem(file_path, "path outside source") from None
        return None
    except (OSError, RuntimeError):
        raise _problem(file_path, "the file cannot be read") from None
    if not path.is_relative_to(root):
        raise _problem(file_path, "path outside source")
    return path


def _problem(file_path: str, words: str) -> SourceProblem:
    """A row comment naming the row's own file_path, never where the source lives."""
    return SourceProblem(f"file_path {file_path!r}: {words}")


def source_from_settings() -> FilesystemSource:
    return FilesystemSource(settings.IMPORT_SOURCE)
