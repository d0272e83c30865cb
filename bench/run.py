"""Benchmark of Bulk Import (issues 5 and 14): whole imports against the floor, memory, scale.

    .venv/bin/python bench/run.py [--rows 10000] [--where tmpfs,disk] [--large-rows 1000000] ...

Whole imports of the archive on a RAM filesystem (`--tmpfs`, where the CPU is the limit and the
figures are stable) and on the disk (`--tmp-dir`, where the kernel's file creation is noisy),
each `--repeats` times against the floor measured in the same place; a whole import of a million
small files beside one of 10,000; dry runs; an S3 source.

A benchmark, not a test: it never fails on a number. It prints a table and writes the figures
to var/bench/<timestamp>.json and var/bench/latest.json, to compare runs between commits.
See docs/performance.md for what each figure means.
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

from archive import archive_write, manifest_write
from floor import copy_seconds, insert_seconds
from report import ratios, summaries, table
from service import ROOT, base_env, fresh_data_dir, service_running, stack_env, task_seconds

LARGE_WORKERS = 2  # the million-row import and its reference, as issue 14 sets them
PAGE_BYTES = 4096


def sizes(text: str) -> list[int]:
    return [int(part.replace("_", "")) for part in text.split(",") if part.strip()]


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000, help="archive files and import rows")
    parser.add_argument("--file-bytes", type=int, default=8192, help="size of each file")
    parser.add_argument(
        "--workers", type=sizes, default=[2], help="WORKER_CONCURRENCY values to import with"
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs of each whole import (median and spread)"
    )
    parser.add_argument(
        "--where",
        default="tmpfs,disk",
        help="where the whole imports run: tmpfs (--tmpfs), disk (--tmp-dir), or both",
    )
    parser.add_argument(
        "--tmpfs", type=Path, default=Path("/dev/shm"), help="a folder on a RAM filesystem"
    )
    parser.add_argument(
        "--tmp-dir", type=Path, help="a folder on the disk (default: the system's temporary one)"
    )
    parser.add_argument(
        "--large-rows", type=int, default=1_000_000, help="rows of the large whole import; 0: skip"
    )
    parser.add_argument(
        "--large-file-bytes", type=int, default=1024, help="file size of the large import"
    )
    parser.add_argument(
        "--dry-run-rows", type=sizes, default=[100_000], help="dry-run manifest sizes"
    )
    parser.add_argument("--batch-size", type=int, help="IMPORT_BATCH_SIZE (default: the service's)")
    parser.add_argument(
        "--stacks",
        default="auto",
        help="embedded, postgres, or both (auto: postgres too when DATABASE_URL and "
        "CELERY_BROKER_URL are set)",
    )
    parser.add_argument("--s3-rows", type=int, default=500, help="rows of the S3 import; 0: skip")
    parser.add_argument("--s3-latency-ms", type=int, default=20, help="delay per S3 request")
    parser.add_argument(
        "--s3-threads", type=sizes, default=[1, 2, 4], help="IMPORT_COPY_THREADS values"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "bench")
    parser.add_argument("--timeout", type=float, default=7200, help="seconds per import")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args


def stacks_chosen(choice: str) -> list[str]:
    stack_set = bool(os.environ.get("DATABASE_URL") and os.environ.get("CELERY_BROKER_URL"))
    if choice == "auto":
        return ["embedded", "postgres"] if stack_set else ["embedded"]
    chosen = [stack.strip() for stack in choice.split(",")]
    if "postgres" in chosen and not stack_set:
        sys.exit("--stacks postgres needs DATABASE_URL and CELERY_BROKER_URL")
    return chosen


def places_chosen(args: argparse.Namespace) -> dict[str, Path]:
    """The folders the whole imports run in, by name: `tmpfs` first, then `disk`."""
    folders = {"tmpfs": args.tmpfs, "disk": args.tmp_dir or Path(tempfile.gettempdir())}
    chosen = [place.strip() for place in args.where.split(",") if place.strip()]
    if not chosen or any(place not in folders for place in chosen):
        sys.exit(f"--where takes tmpfs, disk or both, not {args.where!r}")
    return {place: folders[place] for place in folders if place in chosen}


def filesystem(path: Path) -> str:
    """The type of the filesystem `path` is on (tmpfs, ext4, ...), from /proc/mounts."""
    path, best, kind = path.resolve(), "", "unknown"
    with open("/proc/mounts") as mounts:
        for line in mounts:
            mount_point, fs_type = line.split()[1:3]
            if path.is_relative_to(mount_point) and len(mount_point) >= len(best):
                best, kind = mount_point, fs_type
    return kind


def service_env(stack_vars: dict, args: argparse.Namespace, work: Path, **settings) -> dict:
    """The service's environment: the stack's variables, TMPDIR in `work`, and `settings`."""
    if args.batch_size:
        settings.setdefault("IMPORT_BATCH_SIZE", str(args.batch_size))
    settings["TMPDIR"] = work
    return base_env(**stack_vars, **{name: str(value) for name, value in settings.items()})


def measure_floor(where, copy_times, manifest, rows, stack, args, work) -> dict:
    """The archive's best cp -r plus the driver's insert of its rows into a fresh database."""
    with stack_env(stack) as stack_vars, fresh_data_dir(work, "floor") as data_dir:
        env = service_env(stack_vars, args, work, DATA_DIR=data_dir)
        inserts = insert_seconds(manifest, env, args.file_bytes, args.batch_size or 500)
    copy_s = min(copy_times)
    floor_s = copy_s + inserts["seconds"]
    return {
        "where": where,
        "stack": stack,
        "copy_s": copy_s,
        "copy_times_s": copy_times,
        "insert_s": inserts["seconds"],
        "orm_insert_s": inserts.get("orm_seconds"),
        "floor_s": floor_s,
        "rows_per_s": rows / floor_s,
    }


def measure_import(
    source: Path | str,
    manifest: Path,
    options: dict,
    env_settings: dict,
    stack: str,
    args,
    work: Path,
) -> dict:
    """One import through the HTTP API on a fresh service; seconds, rows/s and peak memory."""
    with stack_env(stack) as stack_vars, fresh_data_dir(work, "service") as data_dir:
        settings = {"IMPORT_SOURCE": source, **env_settings}
        env = service_env(stack_vars, args, work, **settings)
        with service_running(data_dir, env) as service:
            os.sync()  # start with no dirty pages from the last measurement
            figures = service.import_run(manifest, options, timeout_s=args.timeout)
        figures["tasks"] = task_seconds(service.log_path.read_text(errors="replace"))
    figures["rows_per_s"] = figures["rows"] / figures["upload_to_finished_s"]
    cpu = sum(figures["cpu_s"].values())
    figures["cpu_us_per_row"] = cpu / figures["rows"] * 1e6 if figures["rows"] else None
    return figures


def measure_whole_imports(where, archive, manifest, stack, floor, args, work) -> list[dict]:
    runs = []
    for workers in args.workers:
        for repeat in range(1, args.repeats + 1):
            say(
                f"{where}, {stack}: whole import of {args.rows:,} rows, {workers} worker "
                f"process(es), run {repeat} of {args.repeats}"
            )
            settings = {"WORKER_CONCURRENCY": workers}
            run = measure_import(archive, manifest, {}, settings, stack, args, work)
            run.update(
                where=where,
                stack=stack,
                workers=workers,
                repeat=repeat,
                ratio_to_floor=run["upload_to_finished_s"] / floor["floor_s"],
            )
            runs.append(run)
            say(
                f"  {run['status']}: {run['upload_to_finished_s']:.2f} s, "
                f"{run['rows_per_s']:,.0f} rows/s, {run['ratio_to_floor']:.1f}x the floor"
            )
    return runs


def measure_place(where: str, work: Path, stacks: list[str], args, results: dict) -> tuple:
    """The archive, the floor and the whole imports in `work`; the archive and its files."""
    say(f"{where}: writing an archive of {args.rows:,} files in {work}")
    clock = time.monotonic()
    archive = work / "archive"
    files = archive_write(archive, args.rows, args.file_bytes)
    manifest = manifest_write(work / "manifest.csv", files, len(files))
    results["archive_s"][where] = time.monotonic() - clock
    say(f"{where}: floor: cp -r of the archive, 3 times")
    copy_times = copy_seconds(archive, work)
    for stack in stacks:
        say(f"{where}, {stack}: floor: the driver's insert of the manifest's rows")
        floor = measure_floor(where, copy_times, manifest, len(files), stack, args, work)
        results["floors"].append(floor)
        say(
            f"  cp -r {floor['copy_s']:.2f} s + insert {floor['insert_s']:.2f} s "
            f"= {floor['floor_s']:.2f} s (bulk_create: {floor['orm_insert_s']:.2f} s)"
        )
        results["imports"] += measure_whole_imports(
            where, archive, manifest, stack, floor, args, work
        )
    return archive, files


def large_space(rows: int, file_bytes: int) -> int:
    """Bytes a large import takes on a RAM filesystem: every file twice (the archive and the
    service's copies), in whole pages, and about 2 KiB a row for the database and the inodes."""
    pages = -(-max(file_bytes, 1) // PAGE_BYTES)
    return rows * (2 * pages * PAGE_BYTES + 2048)


def memory_available() -> int:
    with open("/proc/meminfo") as lines:
        for line in lines:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def measure_large(where: str, parent: Path, args) -> dict:
    """A whole import of --large-rows small files, and of the first --rows of them (the
    reference, --repeats times), each with 2 worker processes on the embedded defaults."""
    rows, small_rows = args.large_rows, min(args.rows, args.large_rows)
    large = {
        "where": where,
        "rows": rows,
        "small_rows": small_rows,
        "file_bytes": args.large_file_bytes,
        "workers": LARGE_WORKERS,
    }
    needed = large_space(rows, args.large_file_bytes)
    free = shutil.disk_usage(parent).free
    if filesystem(parent) in ("tmpfs", "ramfs"):  # its files are held in memory
        free = min(free, memory_available())
    if needed * 1.2 > free:
        large["skipped"] = (
            f"needs about {needed / 2**30:.1f} GiB in {parent}, {free / 2**30:.1f} GiB free"
        )
        say(f"large import skipped: {large['skipped']}")
        return large
    with tempfile.TemporaryDirectory(prefix="large-", dir=parent) as tmp:
        work = Path(tmp)
        say(f"{where}: writing an archive of {rows:,} files of {args.large_file_bytes:,} bytes")
        clock = time.monotonic()
        files = archive_write(work / "archive", rows, args.large_file_bytes)
        manifest = manifest_write(work / "manifest.csv", files, rows)
        small_manifest = manifest_write(work / "small.csv", files, small_rows)
        large["archive_s"] = time.monotonic() - clock
        say(f"  in {large['archive_s']:.0f} s")
        del files
        settings = {"WORKER_CONCURRENCY": LARGE_WORKERS}
        large["small_runs"] = []
        for repeat in range(1, args.repeats + 1):
            say(f"{where}: reference import of {small_rows:,} rows, run {repeat}")
            run = measure_import(
                work / "archive", small_manifest, {}, settings, "embedded", args, work
            )
            large["small_runs"].append(run)
            say(f"  {run['status']}: {run['rows_per_s']:,.0f} rows/s")
        say(f"{where}: whole import of {rows:,} rows")
        large["large_run"] = measure_import(
            work / "archive", manifest, {}, settings, "embedded", args, work
        )
        run = large["large_run"]
        say(
            f"  {run['status']}: {run['rows_per_s']:,.0f} rows/s, "
            f"peak PSS {run['peak_pss_mib']:.0f} MiB"
        )
        clock = time.monotonic()
    large["cleanup_s"] = time.monotonic() - clock
    return large


def measure_dry_runs(archive, files, args, work) -> list[dict]:
    """Dry runs of manifests of each size (rows share the archive's files), embedded."""
    runs = []
    for rows in args.dry_run_rows:
        say(f"embedded: dry run of {rows:,} rows")
        manifest = manifest_write(work / f"dry-run-{rows}.csv", files, rows, prefix="DRY")
        run = measure_import(archive, manifest, {"dry_run": True}, {}, "embedded", args, work)
        run.update(manifest_rows=rows, manifest_bytes=manifest.stat().st_size)
        manifest.unlink()
        runs.append(run)
        say(
            f"  {run['status']}: {run['rows_per_s']:,.0f} rows/s in "
            f"{run['upload_to_finished_s']:.0f} s, peak RSS {run['peak_rss_mib']['total']:.0f} MiB"
        )
    return runs


def measure_s3_imports(archive, files, args, work) -> list[dict]:
    """Imports from S3 with a delay per request, at each IMPORT_COPY_THREADS; one worker."""
    from s3 import s3_source

    files = files[: args.s3_rows]
    manifest = manifest_write(work / "s3.csv", files, len(files), prefix="S3")
    runs = []
    say(f"S3 source: uploading {len(files):,} files to moto")
    with s3_source(archive, [f.path for f in files], args.s3_latency_ms, work) as s3_vars:
        for threads in args.s3_threads:
            say(f"S3 source, {args.s3_latency_ms} ms per request: {threads} copy thread(s)")
            settings = {**s3_vars, "IMPORT_COPY_THREADS": threads, "WORKER_CONCURRENCY": 1}
            run = measure_import(
                s3_vars["IMPORT_SOURCE"], manifest, {}, settings, "embedded", args, work
            )
            run.update(copy_threads=threads, latency_ms=args.s3_latency_ms)
            runs.append(run)
            say(f"  {run['status']}: {run['rows_per_s']:,.0f} rows/s")
    return runs


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
    return done.stdout.strip()


def results_write(results: dict, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{results['started_at'].replace(':', '')}.json"
    text = json.dumps(results, indent=2, default=str)
    path.write_text(text)
    (out / "latest.json").write_text(text)
    return path


def main() -> None:
    args = arguments()
    started = time.monotonic()
    stacks = stacks_chosen(args.stacks)
    places = places_chosen(args)
    results = {
        "started_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": git("rev-parse", "HEAD"),
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "args": {
            name: value
            for name, value in vars(args).items()
            if name not in ("tmp_dir", "tmpfs", "out")
        },
        "load_average_at_start": os.getloadavg(),
        "stacks": stacks,
        "places": {where: filesystem(folder) for where, folder in places.items()},
        "archive_s": {},
        "floors": [],
        "imports": [],
        "large": {},
        "dry_runs": [],
        "s3": [],
    }
    for where, kind in results["places"].items():
        if where == "tmpfs" and kind not in ("tmpfs", "ramfs"):
            say(f"warning: --tmpfs {places[where]} is on {kind}, not a RAM filesystem")
    with ExitStack() as cleanup:
        works = {
            where: Path(
                cleanup.enter_context(
                    tempfile.TemporaryDirectory(prefix="bulk-import-bench-", dir=folder)
                )
            )
            for where, folder in places.items()
        }
        archives = {}
        for where, work in works.items():
            archives[where] = measure_place(where, work, stacks, args, results)
        if args.large_rows:
            where = next(iter(works))
            results["large"] = measure_large(where, works[where], args)
        # The dry runs and the S3 source as before: on the disk, unless only tmpfs is chosen.
        where = "disk" if "disk" in works else next(iter(works))
        archive, files = archives[where]
        results["dry_runs"] = measure_dry_runs(archive, files, args, works[where])
        if args.s3_rows:
            results["s3"] = measure_s3_imports(archive, files, args, works[where])
    results["summaries"] = summaries(results)
    results["ratios"] = ratios(results)
    results["bench_s"] = time.monotonic() - started
    results["load_average_at_end"] = os.getloadavg()
    path = results_write(results, args.out)
    print(table(results))
    print(
        f"\nFigures written to {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}"
        " and latest.json beside it."
    )


if __name__ == "__main__":
    main()
