"""A synthetic scanned archive: small PNG files in box/folder/scan folders, and its manifests.

Every file is unique (random bytes after a PNG signature and an IHDR chunk, so it sniffs as
image/png) and the manifests carry each file's SHA-256, so the service checks every checksum.
"""

import csv
import functools
import hashlib
import os
import random
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SCANS_PER_FOLDER = 100
FOLDERS_PER_BOX = 10
COLUMNS = ["identifier", "file_path", "title", "created_date", "box", "checksum"]


@dataclass(frozen=True, slots=True)
class ArchiveFile:
    path: str  # relative to the archive's root, as the manifest names it
    sha256: str
    box: int


@functools.cache
def png_head() -> bytes:
    """A PNG signature and an IHDR chunk: an A4 page at 300 dpi, greyscale."""
    ihdr = struct.pack(">IIBBBBB", 2480, 3508, 8, 0, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr
    return PNG_SIGNATURE + chunk + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))


def png_bytes(size_bytes: int, rng: random.Random) -> bytes:
    """png_head(), then random bytes up to `size_bytes`."""
    head = png_head()
    return head + rng.randbytes(max(0, size_bytes - len(head)))


def archive_write(root: Path, files: int, size_bytes: int, seed: int = 5) -> list[ArchiveFile]:
    """Write `files` unique scans under `root`: box-0001/folder-01/scan-000001.png, ...

    A folder is made once, and each file written with one os.open, os.write and os.close (a
    million files of 1 KB take about a minute on a RAM filesystem here; Path.write_bytes and a
    mkdir per file took twice that).
    """
    rng = random.Random(seed)
    written = []
    folder_made = ""
    create = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    for number in range(1, files + 1):
        box = (number - 1) // (SCANS_PER_FOLDER * FOLDERS_PER_BOX) + 1
        in_box = (number - 1) // SCANS_PER_FOLDER % FOLDERS_PER_BOX + 1
        folder = f"box-{box:04d}/folder-{in_box:02d}"
        if folder != folder_made:
            os.makedirs(root / folder, exist_ok=True)
            folder_made = folder
        relative = f"{folder}/scan-{number:06d}.png"
        data = png_bytes(size_bytes, rng)
        descriptor = os.open(f"{root}/{relative}", create, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(descriptor, view) :]
        finally:
            os.close(descriptor)
        written.append(ArchiveFile(relative, hashlib.sha256(data).hexdigest(), box))
    return written


def manifest_write(path: Path, files: list[ArchiveFile], rows: int, prefix: str = "SCAN") -> Path:
    """A manifest of `rows` rows with unique identifiers; past len(files), rows share files."""
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(COLUMNS)
        for number in range(1, rows + 1):
            scan = files[(number - 1) % len(files)]
            day = f"19{50 + number % 50:02d}-{number % 12 + 1:02d}-{number % 28 + 1:02d}"
            writer.writerow(
                [
                    f"{prefix}-{number:07d}",
                    scan.path,
                    f"Scan {number} from box {scan.box}",
                    day,
                    scan.box,
                    f"sha256:{scan.sha256}",
                ]
            )
    return path
