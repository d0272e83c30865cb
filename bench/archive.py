"""A synthetic scanned archive: small PNG files in box/folder/scan folders, and its manifests.

Every file is unique (random bytes after a PNG signature and an IHDR chunk, so it sniffs as
image/png) and the manifests carry each file's SHA-256, so the service checks every checksum.
"""

import csv
import hashlib
import random
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SCANS_PER_FOLDER = 100
FOLDERS_PER_BOX = 10
COLUMNS = ["identifier", "file_path", "title", "created_date", "box", "checksum"]


@dataclass(frozen=True)
class ArchiveFile:
    path: str  # relative to the archive's root, as the manifest names it
    sha256: str
    box: int


def png_bytes(size_bytes: int, rng: random.Random) -> bytes:
    """A PNG signature, an IHDR chunk (an A4 page at 300 dpi, greyscale), then random bytes."""
    ihdr = struct.pack(">IIBBBBB", 2480, 3508, 8, 0, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr
    head = PNG_SIGNATURE + chunk + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return head + rng.randbytes(max(0, size_bytes - len(head)))


def archive_write(root: Path, files: int, size_bytes: int, seed: int = 5) -> list[ArchiveFile]:
    """Write `files` unique scans under `root`: box-0001/folder-01/scan-000001.png, ..."""
    rng = random.Random(seed)
    written = []
    for number in range(1, files + 1):
        box = (number - 1) // (SCANS_PER_FOLDER * FOLDERS_PER_BOX) + 1
        folder = (number - 1) // SCANS_PER_FOLDER % FOLDERS_PER_BOX + 1
        relative = f"box-{box:04d}/folder-{folder:02d}/scan-{number:06d}.png"
        data = png_bytes(size_bytes, rng)
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
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
