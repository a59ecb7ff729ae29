#!/usr/bin/python3
"""Report of scripts/bench_tune.sh: per regime, the grid's medians, the best fixed configuration,
the autotuner's ratio to it (target >= 0.95), what it chose, and peak RSS under limits.memory_mb.

  bench_tune.py RUNS.jsonl [--delay-ms MS] [--memory-mb MB] [--json FILE]
"""
import argparse
import collections
import json
import re
import statistics
import sys

TARGET = 0.95
REGIMES = {"decode": "decode-bound (plain directory, warm page cache)",
           "latency": "latency-bound (slowfs, {delay} ms per getattr/open/read)"}


def summarize(runs):
    groups = collections.defaultdict(list)
    for r in runs:
        groups[(r["regime"], r["config"])].append(r)
    rows = {}
    for key, rs in groups.items():
        ips = [r["images_per_second"] for r in rs]
        rows[key] = {"regime": key[0], "config": key[1], "runs": len(rs), "median": statistics.median(ips),
                     "min": min(ips), "max": max(ips), "failed": sum(r["failed"] for r in rs),
                     "peak_rss_mib": max(r["peak_rss_kib"] for r in rs) / 1024,
                     "tuned": [r["tuned"] for r in rs]}
    return rows


def grid_table(rows, regime):
    """decoders x loader threads down, io_depth across, for the io_uring grid."""
    cells = {}
    for (reg, config), row in rows.items():
        m = re.fullmatch(r"io_uring dec=(\d+) ld=(\d+) depth=(\d+)", config)
        if reg == regime and m:
            dec, ld, depth = map(int, m.groups())
            cells[(dec, ld, depth)] = row["median"]
    if not cells:
        return []
    depths = sorted({k[2] for k in cells})
    lines = [f"  {'decoders, loaders':<20}" + "".join(f"{'depth ' + str(d):>11}" for d in depths)]
    for dec, ld in sorted({(k[0], k[1]) for k in cells}):
        lines.append(f"  {f'{dec} dec, {ld} ld':<20}" +
                     "".join(f"{cells[(dec, ld, d)]:>11.0f}" if (dec, ld, d) in cells else f"{'-':>11}"
                             for d in depths))
    return lines


def choices(tuned):
    """What auto ended on, over the rounds: e.g. 'decoders 2, io_depth 128 (3 changes)'."""
    def span(key):
        vals = sorted({t[key] for t in tuned})
        return str(vals[0]) if len(vals) == 1 else f"{vals[0]}..{vals[-1]}"
    text = f"decoders {span('decoder_threads')}, loader threads {span('loader_threads')}"
    if any(t["io_depth"] for t in tuned):
        text += f", io_depth {span('io_depth')}"
    changes = statistics.median(t["changes"] for t in tuned)
    return text + f" ({changes:g} changes, median)"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("runs")
    ap.add_argument("--delay-ms", default="2")
    ap.add_argument("--memory-mb", default="64")
    ap.add_argument("--json")
    args = ap.parse_args()
    runs = [json.loads(line) for line in open(args.runs) if line.strip()]
    rows = summarize(runs)
    rounds = len({r["round"] for r in runs})
    images = max(r["images"] for r in runs)
    print(f"{images} images, median of {rounds} interleaved rounds; failed items over all runs: "
          f"{sum(r['failed'] for r in runs)}")
    results = []
    capped = f"auto memory_mb={args.memory_mb}"
    for regime, title in REGIMES.items():
        mine = {c: r for (g, c), r in rows.items() if g == regime}
        if not mine:
            continue
        print(f"\n{title.format(delay=args.delay_ms)}: images/s, io_uring grid")
        for line in grid_table(rows, regime):
            print(line)
        for config, r in sorted(mine.items()):
            if config.startswith("pread"):
                print(f"  {config:<20} {r['median']:>10.0f}")
        fixed = {c: r for c, r in mine.items() if not c.startswith("auto")}
        best = max(fixed.values(), key=lambda r: r["median"])
        auto = mine.get("auto")
        print(f"  best fixed: {best['config']}: {best['median']:.0f} images/s "
              f"(min {best['min']:.0f}, max {best['max']:.0f})")
        res = {"regime": regime, "best_fixed": best["config"], "best_fixed_median": best["median"]}
        if auto:
            ratio = auto["median"] / best["median"]
            print(f"  auto: {auto['median']:.0f} images/s (min {auto['min']:.0f}, max {auto['max']:.0f}); "
                  f"chose {choices(auto['tuned'])}; peak RSS {auto['peak_rss_mib']:.0f} MiB")
            print(f"  target: auto / best fixed >= {TARGET}: measured {ratio:.3f}  "
                  f"{'met' if ratio >= TARGET else 'NOT met'}")
            res.update(auto_median=auto["median"], ratio=ratio, met=ratio >= TARGET,
                       auto_chose=choices(auto["tuned"]), auto_peak_rss_mib=auto["peak_rss_mib"])
        if capped in mine:
            c = mine[capped]
            print(f"  auto under limits.memory_mb = {args.memory_mb}: {c['median']:.0f} images/s, chose "
                  f"{choices(c['tuned'])}; peak RSS {c['peak_rss_mib']:.0f} MiB")
            res.update(capped_median=c["median"], capped_peak_rss_mib=c["peak_rss_mib"])
        results.append(res)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"results": results, "summary": [dict(r, tuned=None) for r in rows.values()],
                       "runs": runs}, f, indent=1)
        print(f"json: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
