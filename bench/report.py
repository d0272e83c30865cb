"""The benchmark's figures as text: medians and spreads of repeated runs, ratios, targets."""

import statistics

# Issue 14's targets: at most this many times the floor on a RAM filesystem; the large import's
# rows/s at least this fraction of the small one's, its peak PSS at most this many times it and
# under LARGE_PSS_MAX_MIB; PostgreSQL + Redis at most this many times the embedded time.
TMPFS_FLOOR_TARGET = 5.0
LARGE_SPEED_TARGET = 0.90
LARGE_PSS_TARGET = 1.10
LARGE_PSS_MAX_MIB = 300
POSTGRES_TARGET = 1.5


def spread(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def median_run(runs: list[dict]) -> dict:
    """The run whose import time is the median (the lower of the two middle ones if even)."""
    ordered = sorted(runs, key=lambda run: run["upload_to_finished_s"])
    return ordered[(len(ordered) - 1) // 2]


def summaries(results: dict) -> list[dict]:
    """Per place, stack and worker count: min, median and max over the repeated runs."""
    groups: dict[tuple, list[dict]] = {}
    for run in results["imports"]:
        groups.setdefault((run["where"], run["stack"], run["workers"]), []).append(run)
    return [
        {
            "where": where,
            "stack": stack,
            "workers": workers,
            "runs": len(runs),
            "finished": sum(run["status"] == "finished" for run in runs),
            "median_repeat": median_run(runs)["repeat"],
            **{
                name: spread([run[name] for run in runs])
                for name in ("upload_to_finished_s", "rows_per_s", "ratio_to_floor")
            },
            "peak_pss_mib": spread([run["peak_pss_mib"] for run in runs]),
            "cpu_us_per_row": spread([run["cpu_us_per_row"] or 0 for run in runs]),
        }
        for (where, stack, workers), runs in groups.items()
    ]


def _summary(results: dict, where: str, stack: str, workers: int) -> dict | None:
    for summary in results["summaries"]:
        if (summary["where"], summary["stack"], summary["workers"]) == (where, stack, workers):
            return summary
    return None


def target_workers(results: dict) -> int:
    """The worker count the targets are about: 2, or the most measured."""
    workers = results["args"]["workers"]
    return 2 if 2 in workers else max(workers, default=0)


def large_figures(large: dict) -> dict | None:
    """The large run against the median of its reference runs, if both finished."""
    if "large_run" not in large:
        return None
    big, small = large["large_run"], median_run(large["small_runs"])
    return {
        "big": big,
        "small": small,
        "rows_per_s_vs_small": big["rows_per_s"] / small["rows_per_s"],
        "peak_pss_vs_small": big["peak_pss_mib"] / small["peak_pss_mib"],
    }


def ratios(results: dict) -> dict:
    """The figures the issues' targets are about, as ratios (of medians)."""
    out = {}
    workers = target_workers(results)
    places = list(results["places"])
    for where in places:
        if summary := _summary(results, where, "embedded", workers):
            out[f"{where}_import_vs_floor"] = summary["ratio_to_floor"]["median"]
            seconds = summary["upload_to_finished_s"]
            out[f"{where}_import_s_max_vs_min"] = seconds["max"] / seconds["min"]
    if figures := large_figures(results["large"]):
        out["large_rows_per_s_vs_small"] = figures["rows_per_s_vs_small"]
        out["large_peak_pss_vs_small"] = figures["peak_pss_vs_small"]
        out["large_peak_pss_mib"] = figures["big"]["peak_pss_mib"]
    for number, where in enumerate(places):
        postgres = _summary(results, where, "postgres", workers)
        embedded = _summary(results, where, "embedded", workers)
        if postgres and embedded:
            prefix = "" if number == 0 else f"{where}_"
            name = f"{prefix}postgres_time_vs_embedded"
            out[name] = (
                postgres["upload_to_finished_s"]["median"]
                / embedded["upload_to_finished_s"]["median"]
            )
    for where in places:
        for stack in results["stacks"]:
            one, two = _summary(results, where, stack, 1), _summary(results, where, stack, 2)
            if one and two:
                out[f"{where}_{stack}_two_workers_vs_one"] = (
                    two["rows_per_s"]["median"] / one["rows_per_s"]["median"]
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


COLUMNS = "  {:<22}{:>9}{:>10}{:>10}{:>9}{:>8}{:>10}{:>8}{:>8}{:>10}{:>8}{:>8}{:>8}"
COLUMN_NAMES = COLUMNS.format(
    "", "status", "create s", "upload s", "rows/s", "x floor",
    "peak RSS", "web", "worker", "peak PSS", "web CPU", "wrk CPU", "µs/row",
)  # fmt: skip
SPREAD = "  {:<22}{:>8}{:>8}{:>8}  {:>8}{:>8}{:>8}  {:>7}{:>7}{:>7}"


def table(results: dict) -> str:
    """The figures as text: seconds are to `finished`, memory in MiB over the service's tree."""
    args = results["args"]
    places = ", ".join(f"{where} on {kind}" for where, kind in results["places"].items())
    lines = [
        "",
        f"Bulk Import benchmark, {results['started_at']}, commit {results['commit'][:10]}"
        f"{' (dirty)' if results['dirty'] else ''}, {results['machine']['cpus']} cores,"
        f" took {results['bench_s']:.0f} s",
        f"Archive: {args['rows']:,} files x {args['file_bytes']:,} bytes; {places}",
    ]
    lines += _floor_lines(results)
    lines += _import_lines(results)
    lines += _large_lines(results["large"])
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
    lines += _target_lines(results)
    lines += ["", "Ratios"]
    lines += [f"  {name:<40}{value:>8.2f}" for name, value in results["ratios"].items()]
    return "\n".join(lines)


def _floor_lines(results: dict) -> list[str]:
    lines = [
        "",
        "Floor: best cp -r + the driver's INSERT   cp -r s  insert s   floor s    rows/s"
        "  (bulk_create s)",
    ]
    for floor in results["floors"]:
        orm = floor.get("orm_insert_s")
        lines.append(
            f"  {floor['where'] + ', ' + floor['stack']:<38}{floor['copy_s']:>10.2f}"
            f"{floor['insert_s']:>10.2f}{floor['floor_s']:>10.2f}{floor['rows_per_s']:>10,.0f}"
            f"{f'({orm:.2f})' if orm is not None else '':>17}"
        )
    copies = {floor["where"]: floor["copy_times_s"] for floor in results["floors"]}
    took = "; ".join(
        f"{where} {', '.join(f'{seconds:.2f}' for seconds in times)}"
        for where, times in copies.items()
    )
    lines.append(f"  (cp -r took {took} s; the floor takes the best)")
    return lines


def _import_lines(results: dict) -> list[str]:
    if not results["imports"]:
        return []
    args = results["args"]
    repeats = args["repeats"]
    runs = {}
    for run in results["imports"]:
        runs.setdefault((run["where"], run["stack"], run["workers"]), []).append(run)
    median = f", the median of {repeats} runs" if repeats > 1 else ""
    lines = [
        "",
        f"Whole import of {args['rows']:,} rows: where, stack, worker processes{median}",
        COLUMN_NAMES,
    ]
    for (where, stack, workers), group in runs.items():
        lines.append(_run_line(f"{where}, {stack}, {workers}", median_run(group)))
    if repeats > 1:
        lines += [
            "",
            f"Spread over {repeats} runs",
            SPREAD.format("", "upload s", "", "", "rows/s", "", "", "x floor", "", ""),
            SPREAD.format("", "min", "median", "max", "min", "median", "max", "min", "med", "max"),
        ]
        for summary in results["summaries"]:
            seconds, speed, ratio = (
                summary[name] for name in ("upload_to_finished_s", "rows_per_s", "ratio_to_floor")
            )
            lines.append(
                SPREAD.format(
                    f"{summary['where']}, {summary['stack']}, {summary['workers']}",
                    *(f"{seconds[key]:.2f}" for key in ("min", "median", "max")),
                    *(f"{speed[key]:,.0f}" for key in ("min", "median", "max")),
                    *(f"{ratio[key]:.2f}" for key in ("min", "median", "max")),
                )
            )
    return lines


def _large_lines(large: dict) -> list[str]:
    if not large:
        return []
    title = (
        f"Large whole import ({large['where']}, embedded, {large['workers']} worker processes),"
        f" files of {large['file_bytes']:,} bytes: rows"
    )
    if "skipped" in large:
        return ["", title, f"  skipped: {large['skipped']}"]
    big = large["large_run"]
    small_runs = large["small_runs"]
    small_name = f"{large['small_rows']:,}"
    if len(small_runs) > 1:
        small_name += f" (median of {len(small_runs)})"
    phases = ", ".join(f"{phase} {at:.1f}" for phase, at in big["phase_seen_at_s"].items())
    by_phase = ", ".join(
        f"{phase} {pss:.0f}" for phase, pss in phase_peak_pss(big).items() if pss is not None
    )
    return [
        "",
        title,
        COLUMN_NAMES,
        _run_line(small_name, median_run(small_runs)),
        _run_line(f"{large['rows']:,}", big),
        f"  (archive written in {large['archive_s']:.0f} s; the {large['rows']:,}-row import's"
        f" phases, first seen at seconds after the upload began: {phases};"
        f" its peak PSS in MiB from each phase to the next: {by_phase})",
    ]


def phase_peak_pss(run: dict) -> dict[str, float | None]:
    """The highest PSS sampled from each phase's first sighting to the next phase's (the
    upload's from its start)."""
    seen = [("upload", 0.0), *sorted(run["phase_seen_at_s"].items(), key=lambda item: item[1])]
    peaks = {}
    for number, (phase, start) in enumerate(seen):
        end = seen[number + 1][1] if number + 1 < len(seen) else float("inf")
        inside = [pss for at, pss, *_ in run.get("memory_series", []) if start <= at < end]
        peaks[phase] = max(inside, default=None)
    return peaks


def _verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def _target_lines(results: dict) -> list[str]:
    """One line per target of issue 14, in words."""
    lines = ["", "Targets (issue 14)"]
    workers = target_workers(results)
    floors = {(floor["where"], floor["stack"]): floor for floor in results["floors"]}
    tmpfs = _summary(results, "tmpfs", "embedded", workers)
    if tmpfs:
        ratio = tmpfs["ratio_to_floor"]
        lines.append(
            f"  tmpfs: import {tmpfs['upload_to_finished_s']['median']:.2f} s, floor "
            f"{floors[('tmpfs', 'embedded')]['floor_s']:.2f} s, ratio {ratio['median']:.1f} "
            f"(target <= {TMPFS_FLOOR_TARGET:.0f}): "
            f"{_verdict(ratio['median'] <= TMPFS_FLOOR_TARGET)}"
            + (
                f"; {tmpfs['runs']} runs, {ratio['min']:.1f} to {ratio['max']:.1f}"
                if tmpfs["runs"] > 1
                else ""
            )
        )
    else:
        lines.append("  tmpfs: not measured (--where)")
    large = results["large"]
    if figures := large_figures(large):
        big, small = figures["big"], figures["small"]
        speed, pss = figures["rows_per_s_vs_small"], figures["peak_pss_vs_small"]
        rows = f"{large['rows']:,} rows"
        lines.append(
            f"  {rows}: {big['rows_per_s']:,.0f} rows/s against {small['rows_per_s']:,.0f} at "
            f"{large['small_rows']:,}: {speed:.2f} (target >= {LARGE_SPEED_TARGET:.2f}): "
            f"{_verdict(speed >= LARGE_SPEED_TARGET and big['status'] == 'finished')}"
        )
        lines.append(
            f"  {rows}: peak PSS {big['peak_pss_mib']:.0f} MiB against "
            f"{small['peak_pss_mib']:.0f}: {pss:.2f} (target <= {LARGE_PSS_TARGET:.2f}, and "
            f"under {LARGE_PSS_MAX_MIB} MiB): "
            f"{_verdict(pss <= LARGE_PSS_TARGET and big['peak_pss_mib'] < LARGE_PSS_MAX_MIB)}"
            f"; {big['idle_pss_mib']:.0f} MiB before the import"
        )
    elif large:
        lines.append(f"  large import: {large.get('skipped', 'not measured')}")
    if "postgres_time_vs_embedded" in results["ratios"]:
        ratio = results["ratios"]["postgres_time_vs_embedded"]
        lines.append(
            f"  PostgreSQL + Redis ({next(iter(results['places']))}): {ratio:.2f}x the embedded "
            f"time (target <= {POSTGRES_TARGET}): {_verdict(ratio <= POSTGRES_TARGET)}"
        )
    if disk := _summary(results, "disk", "embedded", workers):
        seconds, speed, ratio = (
            disk[name] for name in ("upload_to_finished_s", "rows_per_s", "ratio_to_floor")
        )
        lines.append(
            f"  disk (never gated), min / median / max of {disk['runs']}: import "
            + " / ".join(f"{seconds[key]:.2f}" for key in ("min", "median", "max"))
            + " s, "
            + " / ".join(f"{speed[key]:,.0f}" for key in ("min", "median", "max"))
            + " rows/s, "
            + " / ".join(f"{ratio[key]:.1f}" for key in ("min", "median", "max"))
            + "x the floor"
        )
    return lines


def _run_line(name: str, run: dict) -> str:
    rss, cpu = run["peak_rss_mib"], run["cpu_s"]
    ratio = f"{run['ratio_to_floor']:.2f}" if "ratio_to_floor" in run else "-"
    per_row = run.get("cpu_us_per_row")
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
        f"{per_row:.0f}" if per_row else "-",
    )
