"""The floor an import is compared with: copying the archive's files, and inserting its rows.

Nothing an import does can be cheaper than `cp -r` of the same files on the same filesystem plus
inserting the same rows into the same kind of database straight through its driver (one
executemany of a prepared INSERT per batch, the values ready beforehand): the machine's limit.
"""

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

from service import PYTHON, ROOT, manage


def copy_seconds(archive: Path, parent: Path, repeats: int = 3) -> list[float]:
    """Wall times of `cp -r` of the archive into a fresh folder beside it, a few times.

    They vary (0.4 to 5 s for 10,000 files on a 2-core VM, all of it system time), so the
    floor takes the best.
    """
    times = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="floor-copy-", dir=parent) as target:
            os.sync()  # no dirty pages left from before to write back meanwhile
            started = time.perf_counter()
            subprocess.run(["cp", "-r", f"{archive}/.", target], check=True)
            times.append(time.perf_counter() - started)
    return times


def insert_seconds(
    manifest: Path, env: dict, size_bytes: int, chunk_rows: int, *, orm: bool = True
) -> dict[str, float]:
    """Seconds to insert the manifest's rows as documents in a freshly migrated database.

    `seconds`: through the driver, one executemany per chunk (floor_insert.py); `orm_seconds`
    (with `orm`): the same rows again through Document.objects.bulk_create, for reference.
    """
    manage(env, "migrate", "--noinput")
    os.sync()
    done = subprocess.run(
        [
            str(PYTHON),
            str(ROOT / "bench" / "floor_insert.py"),
            str(manifest),
            str(size_bytes),
            str(chunk_rows),
            *(["--orm"] if orm else []),
        ],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])
