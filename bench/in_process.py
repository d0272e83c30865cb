"""The import's own work in one process, CPU seconds per stage: where a whole import's time goes.

    .venv/bin/python bench/in_process.py [--rows 10000] [--repeats 3] [--profile cumulative]

Writes an archive of `--rows` files (as `bench/run.py` does) in `--tmpfs`, then, on the embedded
defaults in a fresh DATA_DIR there, runs what the web server and the workers would run, one
after the other and with no Celery in between: the upload, `import_split` (counting and
staging), every batch's `batch_run`, then `import_finish` (the report). Prints the best CPU
seconds of each over `--repeats` runs, and µs a row for staging and the batches.

No processes, no broker, no polling: a change's effect on the Python path shows here without
the noise of scheduling, and `--profile` (a `pstats` sort key) prints cProfile's view of the
batches. `docs/performance.md` shows its output for each change of issue 14.
"""

import argparse
import hashlib
import io
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from archive import archive_write, manifest_write
from service import base_env

ROOT = Path(__file__).resolve().parents[1]


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000, help="archive files and import rows")
    parser.add_argument("--file-bytes", type=int, default=8192, help="size of each file")
    parser.add_argument("--repeats", type=int, default=3, help="runs; the best of each stage")
    parser.add_argument("--tmpfs", type=Path, default=Path("/dev/shm"), help="where it all lives")
    parser.add_argument("--profile", metavar="SORT", help="cProfile the batches, sorted by SORT")
    return parser.parse_args()


def django_setup(data_dir: Path, source: Path) -> None:
    # The embedded defaults, as bench/run.py's services get them: no inherited stack or IMPORT_*.
    environment = base_env(DATA_DIR=str(data_dir), IMPORT_SOURCE=str(source))
    os.environ.clear()
    os.environ.update(environment)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    logging.disable(logging.INFO)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def import_once(manifest: bytes, profile) -> dict[str, float]:
    """One import, stage by stage: CPU seconds of each, and the rows it processed."""
    from imports.batches import batch_run
    from imports.lifecycle import Upload, import_create, import_finish, import_upload
    from imports.models import Batch
    from imports.staging import import_split

    seconds = {}
    started = time.process_time()
    job = import_create()
    import_upload(job, lambda: Upload(io.BytesIO(manifest), hashlib.sha256(manifest).hexdigest()))
    seconds["upload"] = time.process_time() - started
    started = time.process_time()
    import_split(str(job.pk))
    seconds["split"] = time.process_time() - started
    batch_ids = list(Batch.objects.filter(import_job=job).values_list("pk", flat=True))
    started = time.process_time()
    if profile:
        profile.enable()
    for batch_id in batch_ids:
        batch_run(batch_id)
    if profile:
        profile.disable()
    seconds["batches"] = time.process_time() - started
    started = time.process_time()
    import_finish(str(job.pk))
    seconds["finish"] = time.process_time() - started
    job.refresh_from_db()
    if job.imported_rows != job.processed_rows:
        raise SystemExit(f"{job.failed_rows} rows failed: the measurement would not be the path")
    seconds["rows"] = job.processed_rows
    return seconds


def main() -> None:
    args = arguments()
    work = Path(tempfile.mkdtemp(prefix="bulk-import-in-process-", dir=args.tmpfs))
    try:
        files = archive_write(work / "archive", args.rows, args.file_bytes)
        manifest = manifest_write(work / "manifest.csv", files, len(files)).read_bytes()
        django_setup(work / "data", work / "archive")
        from imports.models import Document

        profile = None
        if args.profile:
            import cProfile

            profile = cProfile.Profile()
        best: dict[str, float] = {}
        runs = 1 if profile else args.repeats
        for _ in range(runs):
            Document.objects.all().delete()
            shutil.rmtree(work / "data" / "media", ignore_errors=True)
            for stage, value in import_once(manifest, profile).items():
                best[stage] = min(best.get(stage, value), value)
        rows = best["rows"]
        print(
            f"rows {rows:.0f} best of {runs}: upload {best['upload']:.2f}"
            f" split {best['split']:.2f} ({best['split'] / rows * 1e6:.0f} us/row)"
            f" batches {best['batches']:.2f} ({best['batches'] / rows * 1e6:.0f} us/row)"
            f" finish+report {best['finish']:.2f} cpu s"
        )
        if profile:
            import pstats

            pstats.Stats(profile).sort_stats(args.profile).print_stats(40)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
