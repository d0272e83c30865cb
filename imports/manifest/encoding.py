"""A manifest's encoding: detection by byte-order mark or strict decoding, refusal of binary files.

Holds the encodings a manifest may be in (CHARSETS), their byte-order marks, and open_text.
"""

import codecs
import io
import re
from dataclasses import dataclass
from typing import BinaryIO, TextIO

from ..errors import ManifestEmpty, ManifestUndecodable

# The Python codecs a manifest may be in, with their HTTP charset. A byte-order mark, when a file
# has one, is kept apart from the codec, so that the report can write it back.
CHARSETS = {
    "utf-8": "utf-8",
    "utf-16-le": "utf-16",  # "utf-16" and not "utf-16le": that label says there is no mark
    "utf-16-be": "utf-16",
    "cp1252": "windows-1252",
}
NAMES = {"utf-8": "UTF-8", "utf-16-le": "UTF-16", "utf-16-be": "UTF-16", "cp1252": "Windows-1252"}
BOM_ENCODINGS = ("utf-8", "utf-16-le", "utf-16-be")
# Tried in order on a file without a byte-order mark. Windows-1252 decodes Latin-1 text too, and
# leaves undefined only five bytes that no text uses.
GUESSED_ENCODINGS = ("utf-8", "cp1252")
# Control characters other than tab, CR and LF: no manifest holds them, and they are what gives a
# binary file away once a single-byte code page has decoded its bytes into characters.
CONTROL_CHARACTER = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
CHUNK_BYTES = 1024 * 1024


def byte_order_mark(encoding: str) -> bytes:
    return "\ufeff".encode(encoding)


@dataclass(frozen=True)
class _BadByte:
    offset: int  # from the start of the file
    control: str = ""  # the control character the bytes decoded to, if they decoded

    def __str__(self) -> str:
        if self.control:
            return f"control character 0x{ord(self.control):02x} at byte offset {self.offset}"
        return f"first bad byte at offset {self.offset}"


def detect_encoding(raw: BinaryIO) -> tuple[str, bool]:
    """Name the manifest's encoding and whether a byte-order mark leads; refuse what is not text.

    A byte-order mark decides (UTF-8, UTF-16 LE or BE); without one, the first of UTF-8 and
    Windows-1252 in which the whole file is text wins. Each try decodes the whole file strictly,
    in chunks.
    """
    head = raw.read(len(codecs.BOM_UTF8))
    raw.seek(0)
    if not head:
        raise ManifestEmpty()
    marked = next((e for e in BOM_ENCODINGS if head.startswith(byte_order_mark(e))), None)
    failures = []
    for encoding in (marked,) if marked else GUESSED_ENCODINGS:
        start = len(byte_order_mark(encoding)) if marked else 0
        bad = _first_bad_byte(raw, encoding, start=start)
        if bad is None:
            return encoding, bool(marked)
        failures.append(f"{NAMES[encoding]} text ({bad})")
    if marked:
        raise ManifestUndecodable(
            f"The manifest starts with a {NAMES[marked]} byte-order mark but is not {failures[0]}."
        )
    raise ManifestUndecodable(f"The manifest is neither {' nor '.join(failures)}.")


def _first_bad_byte(raw: BinaryIO, encoding: str, *, start: int) -> _BadByte | None:
    """Decode the file from `start` strictly, a chunk at a time; where does it stop being text?"""
    decoder = codecs.getincrementaldecoder(encoding)()
    raw.seek(start)
    offset = start  # where the next chunk starts in the file
    try:
        while True:
            chunk = raw.read(CHUNK_BYTES)
            # The text decoded next begins at the bytes the decoder still holds from before.
            text_start = offset - len(decoder.getstate()[0])
            undecodable_at = None
            try:
                text = decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                # The text before the bad byte may hold a control character, which comes first.
                text = exc.object[: exc.start].decode(encoding)
                undecodable_at = text_start + exc.start
            if control := CONTROL_CHARACTER.search(text):
                before = text[: control.start()].encode(encoding)
                return _BadByte(text_start + len(before), control.group())
            if undecodable_at is not None:
                return _BadByte(undecodable_at)
            if not chunk:
                return None
            offset += len(chunk)
    finally:
        raw.seek(0)


def open_text(raw: BinaryIO, encoding: str, *, bom: bool) -> TextIO:
    """The manifest as text from its start, past any byte-order mark."""
    raw.seek(len(byte_order_mark(encoding)) if bom else 0)
    # newline="" keeps line breaks inside quoted fields for the csv reader to handle.
    return io.TextIOWrapper(raw, encoding=encoding, newline="")
