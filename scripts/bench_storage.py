#!/usr/bin/python3
"""Report of scripts/bench_storage.sh: medians per configuration, the io_depth and thread curves,
how many pread threads match one io_uring loader, and the slow-storage target, judged on the
back-to-back pairs when there are any (on the rounds otherwise): the median of the pairs' ratios,
with a bootstrap interval, "met" only when all of the interval reaches the target.

  bench_storage.py RUNS.jsonl [--json FILE] [--plot FILE]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

from bench_common import bootstrap_interval, per_round, verdict

TARGET = 0.9  # 2 ms storage, one io_uring loader at io_depth 64, against the plain directory


def median_by(runs, key):
    groups = {}
    for r in runs:
        groups.setdefault(key(r), []).append(r["images_per_second"])
    return {k: statistics.median(v) for k, v in groups.items()}


def fmt_row(label, keys, values):
    cells = "".join(f"{values[k]:>8.0f}" if k in values else f"{'-':>8}" for k in keys)
    return f"{label:<12}{cells}"


def round_ratios(runs):
    """The target ratio within each round: how much of the spread is the machine drifting."""
    def slow(r):
        return (r["storage"] == "slowfs" and r["system"] == "ringfeed" and r["backend"] == "io_uring"
                and r["delay_ms"] == 2.0 and r["io_depth"] == 64)
    return [s / p for p, s in per_round(runs, lambda r: r["storage"] == "plain", slow)]


def target_pairs(runs):
    """(plain, slowfs 2 ms) images/s of each back-to-back pair."""
    return per_round(runs, lambda r: r["storage"] == "pair_plain", lambda r: r["storage"] == "pair_slowfs")


def print_target(runs, plain, fuse0, at2):
    """Prints the target; returns what it is judged on: {"target_ratio", "target_interval",
    "target_verdict"} (None each without runs for it)."""
    print("\ntarget: 2 ms storage, 1 io_uring loader, io_depth 64 / plain directory, same config "
          f">= {TARGET}")
    judged = {"target_ratio": None, "target_interval": None, "target_verdict": None}
    pairs = target_pairs(runs)
    if pairs:
        p = statistics.median(a for a, _ in pairs)
        s = statistics.median(b for _, b in pairs)
        per = [b / a for a, b in pairs]
        ratio = statistics.median(per)
        interval = bootstrap_interval(per, statistics.median)
        judged = {"target_ratio": ratio, "target_interval": list(interval),
                  "target_verdict": verdict(interval, TARGET)}
        print(f"  {len(pairs)} pairs run back to back: plain {p:.0f}, slowfs {s:.0f} images/s (medians; "
              f"{s / p:.3f}x)")
        print(f"  per pair: {' '.join(f'{x:.3f}' for x in per)}")
        print(f"  ({sum(x >= TARGET for x in per)} of {len(per)} pairs at or above {TARGET})")
        print(f"  median pair: measured {ratio:.3f}x, 95 % bootstrap interval {interval[0]:.3f}-{interval[1]:.3f}"
              f"  {judged['target_verdict']}")
    if at2 and plain:
        ratio = at2 / plain
        label = "rounds above (one plain run per round, minutes before)"
        if judged["target_ratio"] is None:
            judged = {"target_ratio": ratio, "target_interval": None,
                      "target_verdict": "met" if ratio >= TARGET else "NOT met"}
            print(f"  {label}: measured {ratio:.3f}x  {judged['target_verdict']} (one ratio of medians, no interval)")
        else:
            print(f"  {label}: {ratio:.3f}x")
        if fuse0:
            print(f"  (against slowfs at 0 ms, which pays the same FUSE CPU cost: {at2 / fuse0:.3f}x)")
        paired = round_ratios(runs)
        if paired:
            print(f"  per round, against that round's plain run: {' '.join(f'{x:.3f}' for x in paired)}"
                  f"  (median {statistics.median(paired):.3f})")
    return judged


def print_grid(runs, grid, images, failed):
    """Prints the grid (medians, curves, pread threads to match); returns its summary for the JSON
    and the arguments of plot()."""
    rounds = len({r["round"] for r in grid})
    plain = median_by([r for r in runs if r["storage"] == "plain"], lambda r: 0).get(0)
    cold = median_by([r for r in runs if r["storage"] == "cold"], lambda r: r.get("direct_io", False))
    uring = median_by([r for r in runs if r["storage"] == "slowfs" and r["system"] == "ringfeed"
                       and r["backend"] == "io_uring"], lambda r: (r["delay_ms"], r["io_depth"]))
    pread = median_by([r for r in runs if r["system"] == "ringfeed" and r["backend"] == "pread"],
                      lambda r: (r["delay_ms"], r["loader_threads"]))
    pool = median_by([r for r in runs if r["system"] == "pil_pool"], lambda r: (r["delay_ms"], r["workers"]))
    delays = sorted({d for d, _ in uring if d > 0})
    depths = sorted({k for d, k in uring if d > 0})
    threads = sorted({t for _, t in pread})

    print(f"{images} images, median of {rounds} rounds; failed items over all runs: {failed}")
    print(f"plain directory (warm page cache), io_uring, 1 loader, io_depth 64: {plain:.0f} images/s")
    fuse0 = uring.get((0.0, 64))
    if fuse0:
        print(f"slowfs at 0 ms (FUSE's own cost, no latency), same config:      {fuse0:.0f} images/s "
              f"({fuse0 / plain:.2f}x plain)")
    for direct, v in sorted(cold.items()):
        print(f"plain directory, cold page cache, {'O_DIRECT' if direct else 'buffered'}:{'':<22}{v:.0f} images/s")
    print("\nio_uring, 1 loader thread: images/s by io_depth")
    print(fmt_row("delay", depths, {k: k for k in depths}))
    for d in delays:
        print(fmt_row(f"{d:g} ms", depths, {k: v for (dd, k), v in uring.items() if dd == d}))
    print("\npread backend: images/s by loader.threads")
    print(fmt_row("delay", threads, {t: t for t in threads}))
    for d in delays:
        print(fmt_row(f"{d:g} ms", threads, {t: v for (dd, t), v in pread.items() if dd == d}))
    if pool:
        print("\nPIL thread pool (read + decode + resize + normalise) over slowfs: images/s by workers")
        for (d, w), v in sorted(pool.items()):
            print(f"  {d:g} ms, {w} workers: {v:.0f}")

    print("\npread threads to match one io_uring loader at io_depth 64 (>= 0.95x its images/s)")
    match = {}
    for d in delays:
        ref = uring.get((d, 64))
        if ref is None:
            print(f"  {d:g} ms: no io_uring run at io_depth 64 to compare with (--depths without 64)")
            continue
        need = next((t for t in threads if pread.get((d, t), 0) >= 0.95 * ref), None)
        match[d] = need
        print(f"  {d:g} ms: io_uring {ref:.0f} images/s; pread "
              + (f"needs {need} threads" if need else f"does not get there with up to {threads[-1]} threads"))

    summary = {"rounds": rounds, "plain": plain, "slowfs_0ms": fuse0,
               "cold": {("direct_io" if k else "buffered"): v for k, v in cold.items()},
               "io_uring": [{"delay_ms": d, "io_depth": k, "images_per_second": v} for (d, k), v in
                            sorted(uring.items())],
               "pread": [{"delay_ms": d, "loader_threads": t, "images_per_second": v} for (d, t), v in
                         sorted(pread.items())],
               "pil_pool": [{"delay_ms": d, "workers": w, "images_per_second": v} for (d, w), v in
                            sorted(pool.items())],
               "pread_threads_to_match": {str(d): t for d, t in match.items()},
               **print_target(runs, plain, fuse0, uring.get((2.0, 64)))}
    return summary, (plain, fuse0, delays, uring, pread, depths, threads)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("runs")
    ap.add_argument("--json")
    ap.add_argument("--plot")
    args = ap.parse_args()
    runs = [json.loads(line) for line in open(args.runs) if line.strip()]
    failed = sum(r.get("failed", 0) for r in runs)
    grid = [r for r in runs if not r["storage"].startswith("pair_")]
    images = max(r["images"] for r in runs)
    summary, curves = {"images": images, "failed": failed}, None
    if grid:
        more, curves = print_grid(runs, grid, images, failed)
        summary.update(more)
    else:  # --repeat 0: the pairs alone
        print(f"{images} images; failed items over all runs: {failed}")
        summary.update(print_target(runs, None, None, None))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({**summary, "runs": runs}, f, indent=1)
        print(f"json: {args.json}")
    if args.plot and curves:
        plot(args.plot, *curves)
        print(f"plot: {args.plot}")
    return 0


def plot(path, plain, fuse0, delays, uring, pread, depths, threads):
    refs = [f"{plain:.1f} with lines dashtype 2 title 'plain directory'"]
    if fuse0:
        refs.append(f"{fuse0:.1f} with lines lw 2 lc rgb 'gray40' dashtype 3 title 'slowfs at 0 ms'")
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for name, table, xs in (("uring", uring, depths), ("pread", pread, threads)):
            for d in delays:
                fn = os.path.join(tmp, f"{name}-{d:g}.dat")
                with open(fn, "w") as f:
                    for x in xs:
                        if (d, x) in table:
                            f.write(f"{x} {table[(d, x)]:.1f}\n")
                files[(name, d)] = fn
        lines = [
            "set terminal pngcairo size 1100,450 font ',10' noenhanced",
            f"set output '{path}'",
            "set multiplot layout 1,2",
            "set logscale x 2", "set key bottom right", "set grid", "set ylabel 'images/s'",
            "set yrange [0:*]",
            "set title 'io_uring, 1 loader thread'", "set xlabel 'loader.io_depth'",
            "plot " + ", ".join([f"'{files[('uring', d)]}' with linespoints title '{d:g} ms'" for d in delays]
                                + refs),
            "set title 'pread backend'", "set xlabel 'loader.threads'",
            "plot " + ", ".join([f"'{files[('pread', d)]}' with linespoints title '{d:g} ms'" for d in delays]
                                + refs),
            "unset multiplot",
        ]
        subprocess.run(["gnuplot"], input="\n".join(lines), text=True, check=True)


if __name__ == "__main__":
    sys.exit(main())
