"""Benchmark of Bulk Import (issue 5): whole imports against the floor, dry runs, memory.

    .venv/bin/python bench/run.py [--rows 10000] [--dry-run-rows 100000,1000000] ...

A benchmark, not a test: it never fails on a number. It prints a table and writes the figures
to var/bench/<timestamp>.json and var/bench/latest.json, to compare runs between commits.
See docs/performance.md for what each figure means.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from archive import archive_write, manifest_write
from floor import copy_seconds, insert_seconds
from service import ROOT, base_env, fresh_data_dir, service_running, stack_env, task_seconds


def sizes(text: str) -> list[int]:
    return [int(part.replace("_", "")) for part in text.split(",") if part.strip()]


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000, help="archive files and import rows")
    parser.add_argument("--file-bytes", type=int, default=8192, help="size of each file")
    parser.add_argument(
        "--workers", type=sizes, default=[2, 1], help="WORKER_CONCURRENCY values to import with"
    )
    parser.add_argument(
        "--dry-run-rows", type=sizes, default=[100_000, 1_000_000], help="dry-run manifest sizes"
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
    parser.add_argument("--tmp-dir", type=Path, help="where the archive and services live")
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "bench")
    parser.add_argument("--timeout", type=float, default=7200, help="seconds per import")
    return parser.parse_args()


def stacks_chosen(choice: str) -> list[str]:
    stack_set = bool(os.environ.get("DATABASE_URL") and os.environ.get("CELERY_BROKER_URL"))
    if choice == "auto":
        return ["embedded", "postgres"] if stack_set else ["embedded"]
    chosen = [stack.strip() for stack in choice.split(",")]
    if "postgres" in chosen and not stack_set:
        sys.exit("--stacks postgres needs DATABASE_URL and CELERY_BROKER_URL")
    return chosen


def service_env(stack_vars: dict, args: argparse.Namespace, **settings) -> dict[str, str]:
    if args.batch_size:
        settings.setdefault("IMPORT_BATCH_SIZE", str(args.batch_size))
    return base_env(**stack_vars, **{name: str(value) for name, value in settings.items()})


def measure_floor(copy_s: float, manifest: Path, stack: str, args, work: Path) -> dict:
    """The archive's cp -r plus a bulk insert of its rows into a fresh database of `stack`."""
    with stack_env(stack) as stack_vars, fresh_data_dir(work, "floor") as data_dir:
        env = service_env(stack_vars, args, DATA_DIR=data_dir)
        insert_s = insert_seconds(manifest, env, args.file_bytes, args.batch_size or 500)
    floor_s = copy_s + insert_s
    return {
        "copy_s": copy_s,
        "insert_s": insert_s,
        "floor_s": floor_s,
        "rows_per_s": args.rows / floor_s,
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
        env = service_env(stack_vars, args, **{"IMPORT_SOURCE": source, **env_settings})
        with service_running(data_dir, env) as service:
            os.sync()  # start with no dirty pages from the last measurement
            figures = service.import_run(manifest, options, timeout_s=args.timeout)
        figures["tasks"] = task_seconds(service.log_path.read_text(errors="replace"))
    figures["rows_per_s"] = figures["rows"] / figures["upload_to_finished_s"]
    return figures


def measure_whole_imports(archive, manifest, stack, floor, args, work) -> list[dict]:
    runs = []
    for workers in args.workers:
        say(f"{stack}: whole import of {args.rows:,} rows, {workers} worker process(es)")
        run = measure_import(
            archive, manifest, {}, {"WORKER_CONCURRENCY": workers}, stack, args, work
        )
        run.update(
            stack=stack,
            workers=workers,
            ratio_to_floor=run["upload_to_finished_s"] / floor["floor_s"],
        )
        runs.append(run)
        say(
            f"  {run['status']}: {run['rows_per_s']:,.0f} rows/s, "
            f"{run['ratio_to_floor']:.1f}x the floor"
        )
    return runs


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


def ratios(results: dict) -> dict:
    """The figures the issue's targets are about, as ratios."""
    out = {}
    imports = {(run["stack"], run["workers"]): run for run in results["imports"]}
    for stack in results["stacks"]:
        one, two = imports.get((stack, 1)), imports.get((stack, 2))
        if one and two:
            out[f"{stack}_two_workers_vs_one"] = two["rows_per_s"] / one["rows_per_s"]
    best = max(results["args"]["workers"], default=0)
    if ("postgres", best) in imports and ("embedded", best) in imports:
        out["postgres_time_vs_embedded"] = (
            imports[("postgres", best)]["upload_to_finished_s"]
            / imports[("embedded", best)]["upload_to_finished_s"]
        )
    dry = results["dry_runs"]
    if len(dry) >= 2:
        out["dry_run_peak_rss_largest_vs_smallest"] = (
            dry[-1]["peak_rss_mib"]["total"] / dry[0]["peak_rss_mib"]["total"]
        )
        out["dry_run_peak_pss_largest_vs_smallest"] = (
            dry[-1]["peak_pss_mib"] / dry[0]["peak_pss_mib"]
        )
    s3 = results["s3"]
    if len(s3) >= 2:
        out["s3_most_threads_vs_one"] = s3[-1]["rows_per_s"] / s3[0]["rows_per_s"]
    return out


COLUMNS = "  {:<16}{:>9}{:>10}{:>10}{:>9}{:>8}{:>10}{:>8}{:>8}{:>10}{:>8}{:>8}"
COLUMN_NAMES = COLUMNS.format(
    "", "status", "create s", "upload s", "rows/s", "x floor",
    "peak RSS", "web", "worker", "peak PSS", "web CPU", "wrk CPU",
)  # fmt: skip


def table(results: dict) -> str:
    """The figures as text: seconds are to `finished`, memory in MiB over web + worker."""
    args = results["args"]
    lines = [
        "",
        f"Bulk Import benchmark, {results['started_at']}, commit {results['commit'][:10]}"
        f"{' (dirty)' if results['dirty'] else ''}, {results['machine']['cpus']} cores,"
        f" took {results['bench_s']:.0f} s",
        f"Archive: {args['rows']:,} files x {args['file_bytes']:,} bytes",
        "",
        "Floor             cp -r s  insert s   floor s    rows/s",
    ]
    for stack, floor in results["floor"].items():
        lines.append(
            f"  {stack:<16}{floor['copy_s']:>8.2f}{floor['insert_s']:>10.2f}"
            f"{floor['floor_s']:>10.2f}{floor['rows_per_s']:>10,.0f}"
        )
    copies = ", ".join(f"{seconds:.2f}" for seconds in results["copy_times_s"])
    lines.append(f"  (cp -r took {copies} s; the floor takes the best)")
    lines += ["", f"Whole import of {args['rows']:,} rows: stack, worker processes", COLUMN_NAMES]
    for run in results["imports"]:
        lines.append(_run_line(f"{run['stack']}, {run['workers']}", run))
    if results["dry_runs"]:
        lines += ["", "Dry run (embedded), manifest rows", COLUMN_NAMES]
        lines += [_run_line(f"{run['manifest_rows']:,}", run) for run in results["dry_runs"]]
    if results["s3"]:
        lines += [
            "",
            f"S3 source (moto + {args['s3_latency_ms']} ms per request), {args['s3_rows']:,} "
            "rows, one worker process: IMPORT_COPY_THREADS",
            COLUMN_NAMES,
        ]
        lines += [_run_line(str(run["copy_threads"]), run) for run in results["s3"]]
    lines += ["", "Ratios"]
    lines += [f"  {name:<40}{value:>8.2f}" for name, value in results["ratios"].items()]
    return "\n".join(lines)


def _run_line(name: str, run: dict) -> str:
    rss, cpu = run["peak_rss_mib"], run["cpu_s"]
    ratio = f"{run['ratio_to_floor']:.2f}" if "ratio_to_floor" in run else "-"
    return COLUMNS.format(
        name,
        run["status"][:9],
        f"{run['create_to_finished_s']:.2f}",
        f"{run['upload_to_finished_s']:.2f}",
        f"{run['rows_per_s']:,.0f}",
        ratio,
        f"{rss.get('total', 0):.0f}",
        f"{rss.get('web', 0):.0f}",
        f"{rss.get('worker', 0):.0f}",
        f"{run['peak_pss_mib']:.0f}",
        f"{cpu.get('web_user', 0) + cpu.get('web_system', 0):.1f}",
        f"{cpu.get('worker_user', 0) + cpu.get('worker_system', 0):.1f}",
    )


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
            name: value for name, value in vars(args).items() if name not in ("tmp_dir", "out")
        },
        "load_average_at_start": os.getloadavg(),
        "stacks": stacks,
        "floor": {},
        "imports": [],
        "dry_runs": [],
        "s3": [],
    }
    with tempfile.TemporaryDirectory(prefix="bulk-import-bench-", dir=args.tmp_dir) as tmp:
        work = Path(tmp)
        say(f"writing an archive of {args.rows:,} files in {work}")
        clock = time.monotonic()
        archive = work / "archive"
        files = archive_write(archive, args.rows, args.file_bytes)
        manifest = manifest_write(work / "manifest.csv", files, len(files))
        results["archive_s"] = time.monotonic() - clock
        say("floor: cp -r of the archive, 3 times")
        results["copy_times_s"] = copy_seconds(archive, work)
        for stack in stacks:
            say(f"{stack}: floor: bulk insert of the manifest's rows")
            copy_s = min(results["copy_times_s"])
            floor = results["floor"][stack] = measure_floor(copy_s, manifest, stack, args, work)
            results["imports"] += measure_whole_imports(archive, manifest, stack, floor, args, work)
        results["dry_runs"] = measure_dry_runs(archive, files, args, work)
        if args.s3_rows:
            results["s3"] = measure_s3_imports(archive, files, args, work)
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
