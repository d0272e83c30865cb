"""Copying a source file into storage while hashing it, in one pass over its bytes; its type.

Where the source and the storage are the same S3 service, S3 makes the copy itself (imports.s3).
"""

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO

import filetype
from django.core.files import File
from django.core.files.storage import default_storage
from django.utils.text import get_valid_filename

from .sources import FilesystemSource, Source, SourceFile, SourceUnreadable

CHUNK_BYTES = 1024 * 1024
SNIFF_BYTES = 8192
UNKNOWN_CONTENT_TYPE = "application/octet-stream"


@dataclass(frozen=True)
class FileFacts:
    sha256: str
    size: int
    content_type: str


class HashingReader:
    """A read-only file that hashes, counts and keeps the first bytes of what passes through."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self._reset()

    def _reset(self) -> None:
        self.hash = hashlib.sha256()
        self.size = 0
        self.head = b""

    def read(self, size: int = -1) -> bytes:
        try:
            data = self.raw.read(size)
        except OSError as error:
            # Only the source is read here: a storage that fails to write raises elsewhere.
            raise SourceUnreadable() from error
        self.hash.update(data)
        if len(self.head) < SNIFF_BYTES:
            self.head += data[: SNIFF_BYTES - len(self.head)]
        self.size += len(data)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        # Storages rewind before reading; only a rewind to the start keeps the hash honest.
        if (offset, whence) != (0, 0):
            raise OSError("a hashing reader can only rewind to the start")
        position = self.raw.seek(0)
        self._reset()
        return position

    def seekable(self) -> bool:
        # Uploaders that think they can seek jump to the end for a size, skipping the hash.
        return False

    @property
    def closed(self) -> bool:
        return self.raw.closed

    def tell(self) -> int:
        return self.size

    def facts(self) -> FileFacts:
        return FileFacts(self.hash.hexdigest(), self.size, sniff_content_type(self.head))


def sniff_content_type(head: bytes) -> str:
    """The MIME type told by the file's first bytes, not by its name."""
    return filetype.guess_mime(head) or UNKNOWN_CONTENT_TYPE


def content_type_problems(sniffed: str, declared: str, allowed: Sequence[str]) -> list[str]:
    """Every problem with a file's sniffed type: not allowed, or not the one the row declares.

    `allowed` holds exact types (`application/pdf`) or wildcards (`image/*`, `*/*`); an empty
    `declared` means the row declares none. Types compare case-insensitively, parameters apart.
    """
    sniffed = _media_type(sniffed)
    kind = sniffed.partition("/")[0]
    problems = []
    if not {sniffed, f"{kind}/*", "*/*"} & {_media_type(pattern) for pattern in allowed}:
        problems.append(f"the file's type is {sniffed}, which is not allowed here")
    if declared.strip() and _media_type(declared) != sniffed:
        problems.append(f"content_type says {declared.strip()} but the file is {sniffed}")
    return problems


def _media_type(text: str) -> str:
    """`type/subtype` alone, lowercase: `Text/HTML; charset=UTF-8` is `text/html`."""
    return text.partition(";")[0].strip().lower()


def file_facts(raw: BinaryIO) -> FileFacts:
    """Hash and sniff a file without storing it."""
    reader = HashingReader(raw)
    while reader.read(CHUNK_BYTES):
        pass
    return reader.facts()


def file_store(raw: BinaryIO, name: str) -> tuple[str, FileFacts]:
    """Store a file under `name` (overwriting a copy of an earlier try) and return its facts."""
    reader = HashingReader(raw)
    stored_name = default_storage.save(name, File(reader, name=name))
    return stored_name, reader.facts()


def file_read(source: Source, located: SourceFile) -> FileFacts:
    """Hash and sniff a row's file without storing it."""
    with source.open(located) as raw:
        return file_facts(raw)


def file_copy(source: Source, located: SourceFile, name: str) -> tuple[str, FileFacts]:
    """Store a row's file under `name`, reading its bytes once, and return the stored name.

    Raises SourceProblem when the file changed since it was resolved, SourceUnreadable when
    it cannot be read.
    """
    if not isinstance(source, FilesystemSource):
        from .s3 import s3_copy_server_side  # here: a folder source never pays for boto3

        if copied := s3_copy_server_side(source, located, name, default_storage):
            return copied
    with source.open(located) as raw:
        try:
            return file_store(raw, name)
        except SourceUnreadable:
            default_storage.delete(name)  # what was written before the read failed
            raise


def stored_name(folder: str, row_number: int, file_name: str) -> str:
    """A name unique per (folder, row); each attempt at a batch has a folder of its own."""
    safe = get_valid_filename(file_name)[-100:] or "file"
    return f"documents/{folder}/{row_number:08d}-{safe}"
