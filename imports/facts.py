"""What reading a file tells, learned in one pass over its bytes: its SHA-256, size and type.

The type is sniffed from the first bytes, never taken from the file's name.
"""

import hashlib
from dataclasses import dataclass
from typing import BinaryIO

import filetype

from .errors import SourceUnreadable

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


def file_facts(raw: BinaryIO) -> FileFacts:
    """Hash and sniff a file without storing it."""
    reader = HashingReader(raw)
    while reader.read(CHUNK_BYTES):
        pass
    return reader.facts()
