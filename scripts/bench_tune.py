#!/usr/bin/python3
"""Report of scripts/bench_tune.sh: per regime, the grid's medians, the best fixed configuration,
the head-to-head of auto against it (target >= 0.95), what auto chose, and peak RSS.

  bench_tune.py RUNS.jsonl [--delay-ms MS] [--memory-mb MB] [--json FILE]
  bench_tune.py RUNS.jsonl --best REGIME      (prints the best fixed configuration's settings)
"""
import argparse
import collections
import json
import re
import statistics
import sys

from bench_common import per_round

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


def best_fixed(rows, regime):
    fixed = [r for (g, c), r in rows.items() if g == regime and not c.startswith("auto")]
    return max(fixed, key=lambda r: r["median"]) if fixed else None


def head_to_head(rows, regime, runs):
    """The final rounds: auto and the best fixed configuration, alternately."""
    auto, best = rows.get((regime + "-final", "auto")), rows.get((regime + "-final", "best fixed"))
    if not auto or not best:
        return None
    sets = next(r["sets"] for r in runs if r["regime"] == regime + "-final" and r["config"] == "best fixed")
    ratio = auto["median"] / best["median"]
    print(f"  head-to-head, {auto['runs']} alternating rounds: auto {auto['median']:.0f} images/s "
          f"(min {auto['min']:.0f}, max {auto['max']:.0f}), best fixed {' '.join(sets)} {best['median']:.0f} "
          f"(min {best['min']:.0f}, max {best['max']:.0f})")
    print(f"  target: auto / best fixed >= {TARGET}: measured {ratio:.3f}  {'met' if ratio >= TARGET else 'NOT met'}"
          f"; auto chose {choices(auto['tuned'])}")
    final = [r for r in runs if r["regime"] == regime + "-final"]
    paired = [a / b for a, b in per_round(final, lambda r: r["config"] == "auto",
                                          lambda r: r["config"] == "best fixed")]
    ahead = sum(x >= 1 for x in paired)
    print(f"  per round, auto / best fixed: {' '.join(f'{x:.3f}' for x in paired)}"
          f"  (median {statistics.median(paired):.3f}; auto ahead in {ahead} of {len(paired)})")
    return {"final_auto_median": auto["median"], "final_best_median": best["median"], "final_best_sets": sets,
            "ratio": ratio, "met": ratio >= TARGET, "auto_chose": choices(auto["tuned"]),
            "round_ratios": paired, "round_ratio_median": statistics.median(paired)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("runs")
    ap.add_argument("--delay-ms", default="2")
    ap.add_argument("--memory-mb", default="64")
    ap.add_argument("--best")
    ap.add_argument("--json")
    args = ap.parse_args()
    runs = [json.loads(line) for line in open(args.runs) if line.strip()]
    rows = summarize(runs)
    if args.best:
        best = best_fixed(rows, args.best)
        print(" ".join(next(r["sets"] for r in runs if r["regime"] == args.best and r["config"] == best["config"])))
        return 0
    rounds = len({r["round"] for r in runs if not r["regime"].endswith("-final")})
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
        best = best_fixed(rows, regime)
        auto = mine.get("auto")
        print(f"  grid's best fixed: {best['config']}: {best['median']:.0f} images/s "
              f"(min {best['min']:.0f}, max {best['max']:.0f})")
        res = {"regime": regime, "best_fixed": best["config"], "best_fixed_median": best["median"]}
        if auto:
            print(f"  auto in the grid rounds: {auto['median']:.0f} images/s (min {auto['min']:.0f}, "
                  f"max {auto['max']:.0f}; {auto['median'] / best['median']:.3f}x the grid's best); "
                  f"peak RSS {auto['peak_rss_mib']:.0f} MiB")
            res.update(grid_auto_median=auto["median"], auto_peak_rss_mib=auto["peak_rss_mib"])
        final = head_to_head(rows, regime, runs)
        if final:
            res.update(final)
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
