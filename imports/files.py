"""Copying a source file into storage while hashing it, in one pass over its bytes; its type."""

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO

import filetype
from django.core.files import File
from django.core.files.storage import default_storage
from django.utils.text import get_valid_filename

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
        data = self.raw.read(size)
        self.hash.update(data)
        if len(self.head) < SNIFF_BYTES:
            self.head += data[: SNIFF_BYTES - len(self.head)]
        self.size += len(data)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        # Storages rewind before reading; only a rewind to the start keeps the hash honest.
        if (offset, whence) != (0, 0):
            raise OSError("a hashing reader can only rewind to the start")
        self._reset()
        return self.raw.seek(0)

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


def stored_name(import_uuid: str, row_number: int, file_name: str) -> str:
    """A name unique per (import, row): a redelivered batch rewrites its own copy, no other."""
    safe = get_valid_filename(file_name)[-100:] or "file"
    return f"documents/{import_uuid}/{row_number:08d}-{safe}"
